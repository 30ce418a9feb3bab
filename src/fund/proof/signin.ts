// The owner's H5 sign-in, two steps. 1: the certificate number and an owner's name (what
// the register holds) → a 6-digit code is sent by SMS to that owner's phone on record.
// 2: the code → an owner session for that one unit (proof 'sms'). Failures count per
// unit and per IP (fund_signin_limits) and lock both out; SMS sends per unit are
// bounded; a code expires, is single use and allows a few wrong tries.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { transact, type Database } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { issueToken } from '../access.ts';
import * as reg from '../register/register.repo.ts';
import { maskName } from '../register/model.ts';
import { maskPhone, type Pii } from '../register/pii.ts';
import { LockedError, type Limiter } from './limiter.ts';
import type { SmsSender } from './sms.ts';
import * as repo from './proof.repo.ts';

export const SMS_CODE_TTL_S = 300;
export const SMS_CODE_FAILURES_MAX = 5;
export const OWNER_SESSION_S = 1800;

export const signinErrors = {
  mismatch: () => new AppError('FUND_SIGNIN_MISMATCH', 403, '产权证号或业主姓名不符 / the certificate number or owner name does not match'),
  noPhone: () => new AppError('FUND_SIGNIN_NO_PHONE', 409, '登记信息中没有该业主的手机号，无法发送验证码；请到维修资金中心登记手机号，表决可使用中心寄发的表决码 / no phone is on record for this owner: have the fund center record it; to vote, use the voting code the center sends'),
  smsTooMany: (retryAfterS: number) => new LockedError('FUND_SMS_TOO_MANY', `验证码发送过于频繁，请 ${Math.ceil(retryAfterS / 60)} 分钟后再试 / too many codes sent for this house: try again in ${retryAfterS} s`, retryAfterS),
  codeInvalid: () => new AppError('FUND_SMS_CODE_INVALID', 403, '短信验证码不正确 / the SMS code is wrong'),
  codeExpired: () => new AppError('FUND_SMS_CODE_EXPIRED', 403, '短信验证码已失效，请重新获取 / the SMS code has expired or was used: request a new one'),
  unitNotFound: () => new AppError('FUND_UNIT_NOT_FOUND', 404, '房屋不存在 / no such house'),
};

export interface SigninDeps { db: Database; clock: Clock; pii: Pii; sms: SmsSender; limiter: Limiter }

export type OwnerSignin = ReturnType<typeof createOwnerSignin>;

export function createOwnerSignin(deps: SigninDeps) {
  const { db, pii, limiter } = deps;
  const now = () => new Date(Number(deps.clock.nowNs() / 1_000_000n));
  const keyed = (unitId: string, ip: string) => [{ key: `unit:${unitId}`, rule: 'unit' as const }, { key: `ip:${ip}`, rule: 'ip' as const }];
  const codeHash = (id: string, code: string) => pii.mac('sms-code', `${id}:${code}`);

  /** Step 1: checks the register's proof and sends the SMS code. */
  async function start(input: { unitId: string; certNo: string; ownerName: string; ip: string }): Promise<{ challengeId: string; phoneMasked: string }> {
    const unit = await reg.findUnit(db.kysely, input.unitId);
    if (!unit) throw signinErrors.unitNotFound();
    await limiter.attempt(keyed(unit.id, input.ip));
    const ownerIndex = unit.cert_no !== null && input.certNo === unit.cert_no ? unit.owners.findIndex((o) => o.name === input.ownerName) : -1;
    if (ownerIndex < 0) throw signinErrors.mismatch();
    const phone = pii.open(unit.owners[ownerIndex]).phone;
    if (!phone) throw signinErrors.noPhone();
    await limiter.attempt([{ key: `sms:${unit.id}`, rule: 'smsPerUnit' }], signinErrors.smsTooMany); // counts sends
    const challengeId = `sc_${randomBytes(12).toString('hex')}`;
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const at = now();
    await transact(db, async (tx) => {
      await repo.retireSmsCodes(tx, unit.id, at);
      await repo.insertSmsCode(tx, { id: challengeId, unitId: unit.id, ownerIndex, purpose: 'sign_in', codeHash: codeHash(challengeId, code), expiresAt: new Date(at.getTime() + SMS_CODE_TTL_S * 1000), createdAt: at });
    });
    await deps.sms.send({ phone, ref: unit.id, text: `【住宅专项维修资金】验证码 ${code}，${SMS_CODE_TTL_S / 60} 分钟内有效，用于登录 ${unit.estate_name}${unit.building_name}幢${unit.stair}单元${unit.room_no}。如非本人操作请忽略。` });
    return { challengeId, phoneMasked: maskPhone(phone) };
  }

  /** Step 2: the SMS code → an owner session for this one unit. */
  async function finish(input: { unitId: string; challengeId: string; code: string; ip: string }): Promise<{ token: string; sessionId: string; subject: string; expiresAt: Date }> {
    await limiter.attempt(keyed(input.unitId, input.ip));
    const at = now();
    const row = /^sc_[0-9a-f]{24}$/.test(input.challengeId) ? await repo.findSmsCode(db.kysely, input.challengeId) : null;
    if (!row || row.unit_id !== input.unitId || row.used_at !== null || row.expires_at <= at || row.failures >= SMS_CODE_FAILURES_MAX) throw signinErrors.codeExpired();
    const given = Buffer.from(codeHash(row.id, input.code.trim()), 'hex');
    if (!/^\d{6}$/.test(input.code.trim()) || !timingSafeEqual(given, Buffer.from(row.code_hash, 'hex'))) {
      await repo.addSmsCodeFailure(db.kysely, row.id);
      throw signinErrors.codeInvalid();
    }
    if (!(await repo.useSmsCode(db.kysely, row.id, at))) throw signinErrors.codeExpired();
    const unit = await reg.findUnit(db.kysely, row.unit_id);
    const owner = unit?.owners[row.owner_index];
    if (!unit || !owner) throw signinErrors.codeExpired();
    await limiter.forgive(keyed(unit.id, input.ip));
    const sessionId = `os_${randomBytes(12).toString('hex')}`;
    const subject = `owner:${maskName(owner.name)}#${row.owner_index + 1}:${unit.id}`;
    const expiresAt = new Date(at.getTime() + OWNER_SESSION_S * 1000);
    const token = await issueToken(db, { role: 'owner', subject, estateIds: null, unitIds: [unit.id], expiresAt, proof: 'sms', sessionId });
    await reg.audit(db.kysely, subject, 'owner.sign_in', `unit:${unit.id}`, { proof: 'sms', sessionId, ownerIndex: row.owner_index, ip: input.ip });
    return { token, sessionId, subject, expiresAt };
  }

  return { start, finish };
}
