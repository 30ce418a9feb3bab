// All SQL of owners' proofs: voting codes, SMS one-time codes, the SMS outbox and the
// sign-in failure counters. Times come from the injected clock (passed in as Dates).
import { sql, type Kdb, type Tx } from '../../platform/db.ts';

type Q = Kdb | Tx;

// --- voting codes ----------------------------------------------------------------------

export interface VotingCodeRow { application_id: string; unit_id: string; code_hash: string; issued_by: string; issued_at: Date; expires_at: Date; failures: number; used_at: Date | null }

export async function upsertVotingCodes(q: Q, applicationId: string, codes: Array<{ unitId: string; codeHash: string }>, issuedBy: string, issuedAt: Date, expiresAt: Date): Promise<void> {
  if (codes.length === 0) return;
  await sql`INSERT INTO fund_voting_codes (application_id, unit_id, code_hash, issued_by, issued_at, expires_at)
    SELECT ${applicationId}, x.unit_id, x.code_hash, ${issuedBy}, ${issuedAt}, ${expiresAt}
    FROM unnest(${codes.map((c) => c.unitId)}::text[], ${codes.map((c) => c.codeHash)}::text[]) AS x(unit_id, code_hash)
    ON CONFLICT (application_id, unit_id) DO UPDATE SET code_hash = EXCLUDED.code_hash, issued_by = EXCLUDED.issued_by,
      issued_at = EXCLUDED.issued_at, expires_at = EXCLUDED.expires_at, failures = 0, used_at = NULL`.execute(q);
}

export async function findVotingCode(q: Q, applicationId: string, unitId: string, forUpdate = false): Promise<VotingCodeRow | null> {
  const lock = forUpdate ? sql`FOR UPDATE` : sql``;
  return (await sql<VotingCodeRow>`SELECT * FROM fund_voting_codes WHERE application_id = ${applicationId} AND unit_id = ${unitId} ${lock}`.execute(q)).rows[0] ?? null;
}

export async function addVotingCodeFailure(q: Q, applicationId: string, unitId: string): Promise<void> {
  await sql`UPDATE fund_voting_codes SET failures = failures + 1 WHERE application_id = ${applicationId} AND unit_id = ${unitId}`.execute(q);
}

export async function useVotingCode(q: Q, applicationId: string, unitId: string, at: Date): Promise<boolean> {
  const r = await sql`UPDATE fund_voting_codes SET used_at = ${at} WHERE application_id = ${applicationId} AND unit_id = ${unitId} AND used_at IS NULL`.execute(q);
  return Number(r.numAffectedRows ?? 0) === 1;
}

// --- SMS one-time codes ------------------------------------------------------------------

export interface SmsCodeRow { id: string; unit_id: string; owner_index: number; purpose: string; code_hash: string; failures: number; expires_at: Date; used_at: Date | null; created_at: Date }

export async function insertSmsCode(q: Q, c: { id: string; unitId: string; ownerIndex: number; purpose: string; codeHash: string; expiresAt: Date; createdAt: Date }): Promise<void> {
  await sql`INSERT INTO fund_sms_codes (id, unit_id, owner_index, purpose, code_hash, expires_at, created_at)
    VALUES (${c.id}, ${c.unitId}, ${c.ownerIndex}, ${c.purpose}, ${c.codeHash}, ${c.expiresAt}, ${c.createdAt})`.execute(q);
}

/** Earlier unused codes of the unit stop working when a new one is sent. */
export async function retireSmsCodes(q: Q, unitId: string, at: Date): Promise<void> {
  await sql`UPDATE fund_sms_codes SET used_at = ${at} WHERE unit_id = ${unitId} AND used_at IS NULL`.execute(q);
}

export async function findSmsCode(q: Q, id: string, forUpdate = false): Promise<SmsCodeRow | null> {
  const lock = forUpdate ? sql`FOR UPDATE` : sql``;
  return (await sql<SmsCodeRow>`SELECT * FROM fund_sms_codes WHERE id = ${id} ${lock}`.execute(q)).rows[0] ?? null;
}

export async function addSmsCodeFailure(q: Q, id: string): Promise<number> {
  const r = await sql<{ failures: number }>`UPDATE fund_sms_codes SET failures = failures + 1 WHERE id = ${id} RETURNING failures`.execute(q);
  return r.rows[0]?.failures ?? 0;
}

export async function useSmsCode(q: Q, id: string, at: Date): Promise<boolean> {
  const r = await sql`UPDATE fund_sms_codes SET used_at = ${at} WHERE id = ${id} AND used_at IS NULL`.execute(q);
  return Number(r.numAffectedRows ?? 0) === 1;
}

// --- the SMS outbox (development / test sender) -----------------------------------------

export interface OutboxRow { id: bigint; phone_masked: string; phone_hash: string; ref: string; body: string; created_at: Date }

export async function insertOutbox(q: Q, m: { phoneMasked: string; phoneHash: string; ref: string; body: string; at: Date }): Promise<void> {
  await sql`INSERT INTO fund_sms_outbox (phone_masked, phone_hash, ref, body, created_at) VALUES (${m.phoneMasked}, ${m.phoneHash}, ${m.ref}, ${m.body}, ${m.at})`.execute(q);
}

export async function listOutbox(q: Q, ref: string | null, limit: number): Promise<OutboxRow[]> {
  return (await sql<OutboxRow>`SELECT * FROM fund_sms_outbox WHERE (${ref}::text IS NULL OR ref = ${ref}) ORDER BY id DESC LIMIT ${limit}`.execute(q)).rows;
}

// --- sign-in failure counters (fixed window, lock-out) ------------------------------------

export interface LimitRow { key: string; window_start: Date; failures: number; locked_until: Date | null }

export async function findLimits(q: Q, keys: string[]): Promise<LimitRow[]> {
  if (keys.length === 0) return [];
  return (await sql<LimitRow>`SELECT * FROM fund_signin_limits WHERE key = ANY(${keys}::text[])`.execute(q)).rows;
}

/**
 * Counts one failure under key in one statement (safe under concurrency): a window older
 * than windowMs starts again at 1; reaching maxFailures locks the key until now + lockMs.
 */
export async function addFailure(q: Q, key: string, now: Date, windowMs: number, maxFailures: number, lockMs: number): Promise<LimitRow> {
  const windowEdge = new Date(now.getTime() - windowMs);
  const lockUntil = new Date(now.getTime() + lockMs);
  const r = await sql<LimitRow>`INSERT INTO fund_signin_limits AS l (key, window_start, failures, locked_until)
    VALUES (${key}, ${now}, 1, CASE WHEN 1 >= ${maxFailures}::int THEN ${lockUntil}::timestamptz ELSE NULL END)
    ON CONFLICT (key) DO UPDATE SET
      window_start = CASE WHEN l.window_start <= ${windowEdge}::timestamptz THEN ${now}::timestamptz ELSE l.window_start END,
      failures = CASE WHEN l.window_start <= ${windowEdge}::timestamptz THEN 1 ELSE l.failures + 1 END,
      locked_until = CASE
        WHEN (CASE WHEN l.window_start <= ${windowEdge}::timestamptz THEN 1 ELSE l.failures + 1 END) >= ${maxFailures}::int
          THEN GREATEST(COALESCE(l.locked_until, ${lockUntil}::timestamptz), ${lockUntil}::timestamptz)
        ELSE l.locked_until END
    RETURNING *`.execute(q);
  return r.rows[0];
}

export async function clearLimit(q: Q, key: string): Promise<void> {
  await sql`DELETE FROM fund_signin_limits WHERE key = ${key}`.execute(q);
}

/** One attempt less (a success that had been counted in advance); never below zero, never unlocks. */
export async function forgiveOne(q: Q, key: string): Promise<void> {
  await sql`UPDATE fund_signin_limits SET failures = GREATEST(failures - 1, 0) WHERE key = ${key}`.execute(q);
}
