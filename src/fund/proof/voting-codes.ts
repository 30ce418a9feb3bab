// Voting codes (表决码): the fund center issues one per unit per application, prints or
// mails it to the owner, and the code proves the ballot — the register does not hold it,
// so a property company or committee that reads the register cannot forge it. Random
// (12 characters from 30 unambiguous ones, ~59 bits), shown once, stored as an HMAC,
// single use, at most VOTING_CODE_FAILURES_MAX wrong tries, expires.
import { randomInt, timingSafeEqual } from 'node:crypto';
import type { Tx } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Pii } from '../register/pii.ts';
import * as repo from './proof.repo.ts';

const ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';
const CODE_CHARS = 12;
export const VOTING_CODE_TTL_S = 60 * 86400;
export const VOTING_CODE_FAILURES_MAX = 5;

export const votingCodeErrors = {
  required: () => new AppError('FUND_VOTE_PROOF_REQUIRED', 403, '表决须有业主本人证明：短信验证登录的业主本人，或维修资金中心发放的表决码（votingCode）/ a vote needs the owner\'s proof: an owner session signed in with the SMS code, or the voting code the fund center issued (votingCode)'),
  invalid: () => new AppError('FUND_VOTING_CODE_INVALID', 403, '表决码不正确 / the voting code is wrong'),
  used: () => new AppError('FUND_VOTING_CODE_USED', 409, '表决码已使用；如需更改表决，请联系维修资金中心重新发放 / the voting code was used already: ask the fund center for a new one to change the vote'),
  expired: () => new AppError('FUND_VOTING_CODE_EXPIRED', 403, '表决码已过期，请联系维修资金中心重新发放 / the voting code has expired: ask the fund center for a new one'),
  locked: () => new AppError('FUND_VOTING_CODE_LOCKED', 403, `表决码错误次数过多（${VOTING_CODE_FAILURES_MAX} 次），已锁定，请联系维修资金中心重新发放 / too many wrong voting codes for this unit: ask the fund center for a new one`),
};

/** A fresh code, formatted XXXX-XXXX-XXXX. */
export function newVotingCode(): string {
  let s = '';
  for (let i = 0; i < CODE_CHARS; i += 1) s += ALPHABET[randomInt(0, ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
}

export const normalizeVotingCode = (code: string) => code.toUpperCase().replace(/[\s-]/g, '');

export const votingCodeHash = (pii: Pii, applicationId: string, unitId: string, code: string) => pii.mac('voting-code', `${applicationId}:${unitId}:${normalizeVotingCode(code)}`);

/**
 * Checks and consumes the unit's voting code inside the vote's transaction. A wrong code
 * returns 'wrong' after counting it (the caller commits, then refuses), so the count
 * survives the refusal; every other refusal throws.
 */
export async function consumeVotingCode(tx: Tx, pii: Pii, v: { applicationId: string; unitId: string; code: string; at: Date }): Promise<'ok' | 'wrong'> {
  const row = await repo.findVotingCode(tx, v.applicationId, v.unitId, true);
  if (!row) throw votingCodeErrors.invalid();
  if (row.failures >= VOTING_CODE_FAILURES_MAX) throw votingCodeErrors.locked();
  if (row.used_at !== null) throw votingCodeErrors.used();
  if (row.expires_at <= v.at) throw votingCodeErrors.expired();
  const given = Buffer.from(votingCodeHash(pii, v.applicationId, v.unitId, v.code), 'hex');
  if (normalizeVotingCode(v.code).length !== CODE_CHARS || !timingSafeEqual(given, Buffer.from(row.code_hash, 'hex'))) {
    await repo.addVotingCodeFailure(tx, v.applicationId, v.unitId);
    return 'wrong';
  }
  await repo.useVotingCode(tx, v.applicationId, v.unitId, v.at);
  return 'ok';
}
