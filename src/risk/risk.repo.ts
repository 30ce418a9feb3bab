// All SQL of loss prevention: watermarks, alerts, rules, blocklists, order checks.
// Other modules' data is read only through their exported `reads`.
import { sql, type Kdb, type Tx } from '../platform/db.ts';

type Q = Kdb | Tx;

export async function getMark(q: Q, monitor: string): Promise<string | null> {
  const r = await sql<{ mark: string }>`SELECT mark FROM risk_watermarks WHERE monitor = ${monitor}`.execute(q);
  return r.rows[0]?.mark ?? null;
}

export async function setMark(q: Q, monitor: string, mark: string): Promise<void> {
  await sql`INSERT INTO risk_watermarks (monitor, mark) VALUES (${monitor}, ${mark})
    ON CONFLICT (monitor) DO UPDATE SET mark = excluded.mark, updated_at = now()`.execute(q);
}

export interface AlertRow {
  id: bigint; monitor: string; subject: string; mch_no: string | null; amount_fen: bigint | null; summary: string; details: string;
  hold_ref: string | null; state: 'open' | 'acked'; seen_count: number; first_seen_at: Date; last_seen_at: Date;
  posted_at: Date | null; acked_at: Date | null; acked_note: string | null;
}

export interface NewAlert { monitor: string; subject: string; mch_no: string | null; amount_fen: bigint | null; summary: string; details: string; hold_ref: string | null }

/** Inserts the alert, or bumps the one already there; `created` says which. */
export async function upsertAlert(q: Q, a: NewAlert): Promise<{ row: AlertRow; created: boolean }> {
  const r = await sql<AlertRow & { created: boolean }>`
    INSERT INTO risk_alerts (monitor, subject, mch_no, amount_fen, summary, details, hold_ref)
    VALUES (${a.monitor}, ${a.subject}, ${a.mch_no}, ${a.amount_fen}, ${a.summary}, ${a.details}, ${a.hold_ref})
    ON CONFLICT (monitor, subject) DO UPDATE SET seen_count = risk_alerts.seen_count + 1, last_seen_at = now(),
      details = excluded.details
    RETURNING *, (xmax = 0) AS created`.execute(q);
  const { created, ...row } = r.rows[0];
  return { row, created };
}

export async function markPosted(q: Q, id: bigint): Promise<void> {
  await sql`UPDATE risk_alerts SET posted_at = now() WHERE id = ${id.toString()}::int8`.execute(q);
}

export async function listAlerts(q: Q, f: { state?: string; monitor?: string }, limit: number): Promise<AlertRow[]> {
  const r = await sql<AlertRow>`
    SELECT * FROM risk_alerts WHERE (${f.state ?? null}::text IS NULL OR state = ${f.state ?? null})
      AND (${f.monitor ?? null}::text IS NULL OR monitor = ${f.monitor ?? null})
    ORDER BY id DESC LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function ackAlert(q: Q, id: bigint, note: string | null): Promise<AlertRow | null> {
  const r = await sql<AlertRow>`
    UPDATE risk_alerts SET state = 'acked', acked_at = coalesce(acked_at, now()), acked_note = coalesce(${note}, acked_note)
    WHERE id = ${id.toString()}::int8 RETURNING *`.execute(q);
  return r.rows[0] ?? null;
}

export async function openAlertCounts(q: Q): Promise<Array<{ monitor: string; n: number }>> {
  const r = await sql<{ monitor: string; n: number }>`SELECT monitor, count(*)::int4 AS n FROM risk_alerts WHERE state = 'open' GROUP BY monitor`.execute(q);
  return r.rows;
}

// --- rules -------------------------------------------------------------------------------

export type RuleAction = 'refuse' | 'hold';
export interface RuleRow {
  mch_no: string;
  single_max_fen: bigint | null; single_action: RuleAction;
  daily_max_fen: bigint | null; daily_action: RuleAction;
  velocity_max: number | null; velocity_window_s: number; velocity_action: RuleAction;
  pattern_factor: number | null; pattern_samples: number; pattern_action: RuleAction;
  updated_at: Date;
}

/** The merchant's own rules, else the default row ('*'). */
export async function findRules(q: Q, mchNo: string): Promise<RuleRow | null> {
  const r = await sql<RuleRow>`SELECT * FROM risk_rules WHERE mch_no IN (${mchNo}, '*') ORDER BY (mch_no = '*') LIMIT 1`.execute(q);
  return r.rows[0] ?? null;
}

export async function upsertRules(q: Q, r: Omit<RuleRow, 'updated_at'>): Promise<RuleRow> {
  const res = await sql<RuleRow>`
    INSERT INTO risk_rules (mch_no, single_max_fen, single_action, daily_max_fen, daily_action, velocity_max, velocity_window_s,
      velocity_action, pattern_factor, pattern_samples, pattern_action)
    VALUES (${r.mch_no}, ${r.single_max_fen}, ${r.single_action}, ${r.daily_max_fen}, ${r.daily_action}, ${r.velocity_max},
      ${r.velocity_window_s}, ${r.velocity_action}, ${r.pattern_factor}, ${r.pattern_samples}, ${r.pattern_action})
    ON CONFLICT (mch_no) DO UPDATE SET single_max_fen = excluded.single_max_fen, single_action = excluded.single_action,
      daily_max_fen = excluded.daily_max_fen, daily_action = excluded.daily_action, velocity_max = excluded.velocity_max,
      velocity_window_s = excluded.velocity_window_s, velocity_action = excluded.velocity_action,
      pattern_factor = excluded.pattern_factor, pattern_samples = excluded.pattern_samples, pattern_action = excluded.pattern_action,
      updated_at = now()
    RETURNING *`.execute(q);
  return res.rows[0];
}

export async function listRules(q: Q, limit: number): Promise<RuleRow[]> {
  return (await sql<RuleRow>`SELECT * FROM risk_rules ORDER BY mch_no LIMIT ${limit}`.execute(q)).rows;
}

// --- blocklist ---------------------------------------------------------------------------

export type BlockKind = 'ip' | 'payer' | 'merchant';
export interface BlockRow { kind: BlockKind; value: string; reason: string; created_at: Date }

export async function findBlocks(q: Q, keys: Array<{ kind: BlockKind; value: string }>): Promise<BlockRow[]> {
  if (keys.length === 0) return [];
  const r = await sql<BlockRow>`SELECT * FROM risk_blocklist WHERE (kind, value) IN (${sql.join(keys.map((k) => sql`(${k.kind}, ${k.value})`))})`.execute(q);
  return r.rows;
}

export async function addBlock(q: Q, b: { kind: BlockKind; value: string; reason: string }): Promise<void> {
  await sql`INSERT INTO risk_blocklist (kind, value, reason) VALUES (${b.kind}, ${b.value}, ${b.reason})
    ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason`.execute(q);
}

export async function removeBlock(q: Q, kind: BlockKind, value: string): Promise<boolean> {
  const r = await sql`DELETE FROM risk_blocklist WHERE kind = ${kind} AND value = ${value}`.execute(q);
  return Number(r.numAffectedRows ?? 0n) > 0;
}

export async function listBlocks(q: Q, limit: number): Promise<BlockRow[]> {
  return (await sql<BlockRow>`SELECT * FROM risk_blocklist ORDER BY kind, value LIMIT ${limit}`.execute(q)).rows;
}

// --- order checks ------------------------------------------------------------------------

export interface OrderCheckRow { mch_no: string; mch_order_no: string; amount_fen: bigint; payer_ip: string | null; payer_account: string | null; hold_rules: string | null; held: boolean; checked_at: Date }

export async function findCheck(q: Q, mchNo: string, mchOrderNo: string, forUpdate = false): Promise<OrderCheckRow | null> {
  const r = forUpdate
    ? await sql<OrderCheckRow>`SELECT * FROM risk_order_checks WHERE mch_no = ${mchNo} AND mch_order_no = ${mchOrderNo} FOR UPDATE`.execute(q)
    : await sql<OrderCheckRow>`SELECT * FROM risk_order_checks WHERE mch_no = ${mchNo} AND mch_order_no = ${mchOrderNo}`.execute(q);
  return r.rows[0] ?? null;
}

export async function insertCheck(q: Q, c: Omit<OrderCheckRow, 'held'>): Promise<void> {
  await sql`INSERT INTO risk_order_checks (mch_no, mch_order_no, amount_fen, payer_ip, payer_account, hold_rules, checked_at)
    VALUES (${c.mch_no}, ${c.mch_order_no}, ${c.amount_fen}, ${c.payer_ip}, ${c.payer_account}, ${c.hold_rules}, ${c.checked_at})
    ON CONFLICT (mch_no, mch_order_no) DO NOTHING`.execute(q);
}

export async function setHeld(q: Q, mchNo: string, mchOrderNo: string): Promise<void> {
  await sql`UPDATE risk_order_checks SET held = true WHERE mch_no = ${mchNo} AND mch_order_no = ${mchOrderNo}`.execute(q);
}

/** Orders checked for a payer key since `since`. */
export async function countPayerChecks(q: Q, key: { ip: string | null; account: string | null }, since: Date): Promise<{ byIp: number; byAccount: number }> {
  const r = await sql<{ by_ip: number; by_account: number }>`
    SELECT (SELECT count(*)::int4 FROM risk_order_checks WHERE ${key.ip}::text IS NOT NULL AND payer_ip = ${key.ip} AND checked_at >= ${since}) AS by_ip,
           (SELECT count(*)::int4 FROM risk_order_checks WHERE ${key.account}::text IS NOT NULL AND payer_account = ${key.account} AND checked_at >= ${since}) AS by_account`.execute(q);
  return { byIp: r.rows[0].by_ip, byAccount: r.rows[0].by_account };
}

/** Open alerts never posted to the webhook (failed posts, alerts raised inside another transaction). */
export async function unpostedAlerts(q: Q, limit: number): Promise<AlertRow[]> {
  return (await sql<AlertRow>`SELECT * FROM risk_alerts WHERE state = 'open' AND posted_at IS NULL ORDER BY id LIMIT ${limit}`.execute(q)).rows;
}
