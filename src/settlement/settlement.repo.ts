// Settlement SQL. The run's stages are set-based: one statement per stage over a
// bounded chunk of parties, never a query per merchant.
import { sql, type Kdb, type Tx } from '../platform/db.ts';
import { CHECK_BACKOFF_LITERAL, type ClaimOptions } from '../platform/check-schedule.ts';

type Q = Kdb | Tx;

export interface PartyRow {
  party_id: string; kind: 'merchant' | 'utility'; mch_no: string; bureau: string | null; name: string; cycle: string;
  min_payout_fen: bigint; confirm: 'auto' | 'operator'; if_code: string; account_no: string; account_name: string | null; bank_name: string | null;
}
export interface OrderFeeRow {
  pay_order_id: string; mch_no: string; if_code: string; category: string; gross_fen: bigint; fee_fen: bigint; channel_cost_fen: bigint;
  fee_rule: string; cost_rule: string; utility_party: string | null; utility_fen: bigint; splits: string | null; refunded_fen: bigint;
  fee_returned_fen: bigint; cost_returned_fen: bigint; paid_at: Date;
}
export interface EntryRow {
  id: bigint; party_id: string; kind: string; ref: string; amount_fen: bigint; available_on: string | null; settlement_id: string | null; created_at: Date;
}
export interface NewEntry { party_id: string; kind: string; ref: string; amount_fen: bigint; available_on: string | null; settlement_id?: string | null }
export interface HoldRow { ref: string; party_id: string; mch_no: string; amount_fen: bigint; reason: string; note: string | null; state: string; created_at: Date; released_at: Date | null }
export interface BatchRow { batch_id: string; settle_date: string; state: string; max_entry_id: bigint; settlements: number; net_fen: bigint; created_at: Date; built_at: Date | null }
export interface SettlementRow {
  settlement_id: string; batch_id: string; party_id: string; gross_fen: bigint; fee_fen: bigint; refund_fen: bigint; other_fen: bigint;
  hold_fen: bigint; net_fen: bigint; entries: number; state: string; created_at: Date;
}
export interface PayoutRow {
  payout_id: string; settlement_id: string; party_id: string; amount_fen: bigint; if_code: string; account_no: string; account_name: string | null;
  bank_name: string | null; state: 'created' | 'sent' | 'success' | 'failed'; attempts: number; channel_no: string | null; err_code: string | null;
  err_msg: string | null; created_at: Date; finished_at: Date | null;
}

const DATE = sql`to_char(available_on, 'YYYY-MM-DD')`;

/** Read-only look at the payment center's merchants (a merchant must exist to be configured or paid). */
export async function merchantExists(q: Q, mchNo: string): Promise<boolean> {
  return (await sql`SELECT 1 FROM pay_merchants WHERE mch_no = ${mchNo}`.execute(q)).rows.length > 0;
}

// --- rules and parties ---------------------------------------------------------------

export async function upsertFeeRule(q: Q, r: { mch_no: string; app_id: string; way_code: string; category: string; rule: string }) {
  await sql`INSERT INTO settle_fee_rules (mch_no, app_id, way_code, category, rule) VALUES (${r.mch_no}, ${r.app_id}, ${r.way_code}, ${r.category}, ${r.rule})
    ON CONFLICT (mch_no, app_id, way_code, category) DO UPDATE SET rule = EXCLUDED.rule, updated_at = now()`.execute(q);
}

/** The fee rules that could apply to an order, most specific first. */
export async function findFeeRules(q: Q, mchNo: string, appId: string, wayCode: string, category: string): Promise<Array<{ app_id: string; way_code: string; category: string; rule: string }>> {
  const r = await sql<{ app_id: string; way_code: string; category: string; rule: string }>`SELECT app_id, way_code, category, rule FROM settle_fee_rules
    WHERE mch_no = ${mchNo} AND app_id IN (${appId}, '*') AND way_code IN (${wayCode}, '*') AND category IN (${category}, '*')
    ORDER BY (category <> '*') DESC, (app_id <> '*') DESC, (way_code <> '*') DESC LIMIT 1`.execute(q);
  return r.rows;
}

export async function listFeeRules(q: Q, mchNo: string) {
  return (await sql<{ app_id: string; way_code: string; category: string; rule: string }>`SELECT app_id, way_code, category, rule FROM settle_fee_rules WHERE mch_no = ${mchNo} ORDER BY 1, 2, 3 LIMIT 200`.execute(q)).rows;
}

export async function upsertChannelCostRule(q: Q, ifCode: string, rule: string) {
  await sql`INSERT INTO settle_channel_cost_rules (if_code, rule) VALUES (${ifCode}, ${rule}) ON CONFLICT (if_code) DO UPDATE SET rule = EXCLUDED.rule, updated_at = now()`.execute(q);
}

export async function findChannelCostRule(q: Q, ifCode: string): Promise<string | null> {
  return (await sql<{ rule: string }>`SELECT rule FROM settle_channel_cost_rules WHERE if_code = ${ifCode}`.execute(q)).rows[0]?.rule ?? null;
}

const PARTY_COLS = sql`party_id, kind, mch_no, bureau, name, cycle, min_payout_fen, confirm, if_code, account_no, account_name, bank_name`;

export async function findParty(q: Q, partyId: string): Promise<PartyRow | null> {
  return (await sql<PartyRow>`SELECT ${PARTY_COLS} FROM settle_parties WHERE party_id = ${partyId}`.execute(q)).rows[0] ?? null;
}

export async function listParties(q: Q, mchNo: string): Promise<PartyRow[]> {
  return (await sql<PartyRow>`SELECT ${PARTY_COLS} FROM settle_parties WHERE mch_no = ${mchNo} ORDER BY party_id LIMIT 100`.execute(q)).rows;
}

/** Inserts a party if absent (default settings); returns it. */
export async function ensureParty(q: Q, p: Omit<PartyRow, 'min_payout_fen' | 'confirm' | 'account_name' | 'bank_name'>): Promise<PartyRow> {
  await sql`INSERT INTO settle_parties (party_id, kind, mch_no, bureau, name, cycle, if_code, account_no)
    VALUES (${p.party_id}, ${p.kind}, ${p.mch_no}, ${p.bureau}, ${p.name}, ${p.cycle}, ${p.if_code}, ${p.account_no})
    ON CONFLICT (party_id) DO NOTHING`.execute(q);
  return (await findParty(q, p.party_id)) as PartyRow;
}

export async function upsertParty(q: Q, p: PartyRow): Promise<void> {
  await sql`INSERT INTO settle_parties (party_id, kind, mch_no, bureau, name, cycle, min_payout_fen, confirm, if_code, account_no, account_name, bank_name)
    VALUES (${p.party_id}, ${p.kind}, ${p.mch_no}, ${p.bureau}, ${p.name}, ${p.cycle}, ${p.min_payout_fen}, ${p.confirm}, ${p.if_code}, ${p.account_no}, ${p.account_name}, ${p.bank_name})
    ON CONFLICT (party_id) DO UPDATE SET name = EXCLUDED.name, cycle = EXCLUDED.cycle, min_payout_fen = EXCLUDED.min_payout_fen,
      confirm = EXCLUDED.confirm, if_code = EXCLUDED.if_code, account_no = EXCLUDED.account_no, account_name = EXCLUDED.account_name,
      bank_name = EXCLUDED.bank_name, updated_at = now()`.execute(q);
}

// --- order fees and entries ------------------------------------------------------------

export async function insertOrderFee(q: Q, f: Omit<OrderFeeRow, 'refunded_fen' | 'fee_returned_fen' | 'cost_returned_fen'>): Promise<boolean> {
  const r = await sql`INSERT INTO settle_order_fees (pay_order_id, mch_no, if_code, category, gross_fen, fee_fen, channel_cost_fen, fee_rule, cost_rule, utility_party, utility_fen, splits, paid_at)
    VALUES (${f.pay_order_id}, ${f.mch_no}, ${f.if_code}, ${f.category}, ${f.gross_fen}, ${f.fee_fen}, ${f.channel_cost_fen}, ${f.fee_rule}, ${f.cost_rule}, ${f.utility_party}, ${f.utility_fen}, ${f.splits}, ${f.paid_at})
    ON CONFLICT (pay_order_id) DO NOTHING`.execute(q);
  return Number(r.numAffectedRows ?? 0n) === 1;
}

export async function findOrderFee(q: Q, payOrderId: string, forUpdate = false): Promise<OrderFeeRow | null> {
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  return (await sql<OrderFeeRow>`SELECT * FROM settle_order_fees WHERE pay_order_id = ${payOrderId}${lock}`.execute(q)).rows[0] ?? null;
}

export async function updateOrderFeeRefund(q: Q, payOrderId: string, refunded: bigint, feeReturned: bigint, costReturned: bigint) {
  await sql`UPDATE settle_order_fees SET refunded_fen = ${refunded}, fee_returned_fen = ${feeReturned}, cost_returned_fen = ${costReturned} WHERE pay_order_id = ${payOrderId}`.execute(q);
}

/** Inserts entries; an entry already there (same party, kind, ref) is left as it is. */
export async function insertEntries(q: Q, entries: NewEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const values = entries.map((e) => sql`(${e.party_id}, ${e.kind}, ${e.ref}, ${e.amount_fen}, ${e.available_on}::date, ${e.settlement_id ?? null})`);
  await sql`INSERT INTO settle_entries (party_id, kind, ref, amount_fen, available_on, settlement_id) VALUES ${sql.join(values)} ON CONFLICT (party_id, kind, ref) DO NOTHING`.execute(q);
}

export async function listEntries(q: Q, partyId: string, fromDay: string, toDay: string, limit: number): Promise<EntryRow[]> {
  return (await sql<EntryRow>`SELECT id, party_id, kind, ref, amount_fen, ${DATE} AS available_on, settlement_id, created_at FROM settle_entries
    WHERE party_id = ${partyId} AND created_at >= (${fromDay}::date::timestamp AT TIME ZONE 'Asia/Shanghai')
      AND created_at < ((${toDay}::date + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
    ORDER BY id LIMIT ${limit}`.execute(q)).rows;
}

export async function sumEntriesBefore(q: Q, partyId: string, day: string): Promise<bigint> {
  return (await sql<{ s: bigint }>`SELECT coalesce(sum(amount_fen), 0)::int8 AS s FROM settle_entries
    WHERE party_id = ${partyId} AND created_at < (${day}::date::timestamp AT TIME ZONE 'Asia/Shanghai')`.execute(q)).rows[0].s;
}

export async function sumEntries(q: Q, partyId: string): Promise<bigint> {
  return (await sql<{ s: bigint }>`SELECT coalesce(sum(amount_fen), 0)::int8 AS s FROM settle_entries WHERE party_id = ${partyId}`.execute(q)).rows[0].s;
}

/** Manual cycle: an operator makes a party's unscheduled entries available on a day. */
export async function releaseManual(q: Q, partyId: string, day: string): Promise<number> {
  const r = await sql`UPDATE settle_entries SET available_on = ${day}::date WHERE party_id = ${partyId} AND available_on IS NULL AND settlement_id IS NULL`.execute(q);
  return Number(r.numAffectedRows ?? 0n);
}

// --- holds -------------------------------------------------------------------------------

export async function insertHold(q: Q, h: { ref: string; party_id: string; mch_no: string; amount_fen: bigint; reason: string; note: string | null }): Promise<boolean> {
  const r = await sql`INSERT INTO settle_holds (ref, party_id, mch_no, amount_fen, reason, note) VALUES (${h.ref}, ${h.party_id}, ${h.mch_no}, ${h.amount_fen}, ${h.reason}, ${h.note})
    ON CONFLICT (ref) DO NOTHING`.execute(q);
  return Number(r.numAffectedRows ?? 0n) === 1;
}

export async function findHold(q: Q, ref: string): Promise<HoldRow | null> {
  return (await sql<HoldRow>`SELECT * FROM settle_holds WHERE ref = ${ref}`.execute(q)).rows[0] ?? null;
}

export async function releaseHold(q: Q, ref: string): Promise<boolean> {
  const r = await sql`UPDATE settle_holds SET state = 'released', released_at = now() WHERE ref = ${ref} AND state = 'open'`.execute(q);
  return Number(r.numAffectedRows ?? 0n) === 1;
}

export async function listHolds(q: Q, partyId: string | null, limit: number): Promise<HoldRow[]> {
  const where = partyId ? sql`WHERE party_id = ${partyId}` : sql`WHERE state = 'open'`;
  return (await sql<HoldRow>`SELECT * FROM settle_holds ${where} ORDER BY created_at DESC LIMIT ${limit}`.execute(q)).rows;
}

// --- batches and the run --------------------------------------------------------------------

export async function lockRun(q: Tx): Promise<void> {
  await sql`SELECT one FROM settle_run_lock FOR UPDATE`.execute(q);
}

/** The batch of a date: created with the entry-id watermark if absent. */
export async function ensureBatch(q: Tx, batchId: string, day: string): Promise<BatchRow> {
  await sql`INSERT INTO settle_batches (batch_id, settle_date, state, max_entry_id)
    SELECT ${batchId}, ${day}::date, 'building', coalesce((SELECT max(id) FROM settle_entries), 0)
    ON CONFLICT (settle_date) DO NOTHING`.execute(q);
  return (await findBatch(q, day)) as BatchRow;
}

export async function findBatch(q: Q, day: string): Promise<BatchRow | null> {
  return (await sql<BatchRow>`SELECT batch_id, to_char(settle_date, 'YYYY-MM-DD') AS settle_date, state, max_entry_id, settlements, net_fen, created_at, built_at
    FROM settle_batches WHERE settle_date = ${day}::date`.execute(q)).rows[0] ?? null;
}

/** Chunk boundaries: every `size`-th party id with open entries (a bounded number of chunks). */
export async function partyChunkBounds(q: Q, day: string, maxEntryId: bigint, size: number): Promise<string[]> {
  const r = await sql<{ party_id: string }>`SELECT party_id FROM (
      SELECT party_id, row_number() OVER (ORDER BY party_id) AS n FROM (
        SELECT DISTINCT party_id FROM settle_entries WHERE settlement_id IS NULL AND available_on <= ${day}::date AND id <= ${maxEntryId}) d) x
    WHERE (n - 1) % ${size} = 0 ORDER BY party_id`.execute(q);
  return r.rows.map((x) => x.party_id);
}

/**
 * One stage over a chunk [lo, hi): aggregate each party's available, unsettled entries
 * (up to the batch's watermark), subtract open holds, insert a settlement where the net
 * reaches the party's minimum, and bind those entries to it — one statement, so the
 * aggregate and the binding see the same rows.
 */
export async function settleChunk(q: Tx, b: { batchId: string; day: string; maxEntryId: bigint; lo: string; hi: string | null; idPrefix: string }): Promise<number> {
  const hi = b.hi === null ? sql`TRUE` : sql`e.party_id < ${b.hi}`;
  const r = await sql<{ n: bigint }>`WITH agg AS (
      SELECT e.party_id,
        coalesce(sum(e.amount_fen) FILTER (WHERE e.kind IN ('payment', 'split_in', 'utility_in', 'clawback_in')), 0) AS gross,
        coalesce(-sum(e.amount_fen) FILTER (WHERE e.kind IN ('fee', 'fee_return')), 0) AS fee,
        coalesce(-sum(e.amount_fen) FILTER (WHERE e.kind IN ('refund', 'clawback_out')), 0) AS refund,
        coalesce(sum(e.amount_fen) FILTER (WHERE e.kind IN ('split_out', 'utility_out', 'payout', 'payout_return', 'hold_back', 'hold_forward')), 0) AS other,
        sum(e.amount_fen) AS total, count(*) AS n
      FROM settle_entries e
      WHERE e.settlement_id IS NULL AND e.available_on <= ${b.day}::date AND e.id <= ${b.maxEntryId} AND e.party_id >= ${b.lo} AND ${hi}
      GROUP BY e.party_id),
    held AS (
      SELECT h.party_id, sum(h.amount_fen) AS hold FROM settle_holds h JOIN agg USING (party_id) WHERE h.state = 'open' GROUP BY h.party_id),
    calc AS (
      SELECT agg.*, coalesce(held.hold, 0) AS hold, agg.total - coalesce(held.hold, 0) AS net, p.confirm, p.account_no
      FROM agg JOIN settle_parties p USING (party_id) LEFT JOIN held USING (party_id)
      WHERE agg.total - coalesce(held.hold, 0) >= p.min_payout_fen),
    ins AS (
      INSERT INTO settle_settlements (settlement_id, batch_id, party_id, gross_fen, fee_fen, refund_fen, other_fen, hold_fen, net_fen, entries, state)
      SELECT ${b.idPrefix} || md5(calc.party_id), ${b.batchId}, calc.party_id, calc.gross, calc.fee, calc.refund, calc.other, calc.hold, calc.net, calc.n,
        -- never pay to nowhere: without a bank account the settlement waits for an operator
        CASE WHEN calc.confirm = 'auto' AND calc.account_no <> '' THEN 'paying' ELSE 'awaiting_confirm' END
      FROM calc
      ON CONFLICT (batch_id, party_id) DO NOTHING
      RETURNING settlement_id, party_id),
    bound AS (
      UPDATE settle_entries e SET settlement_id = ins.settlement_id FROM ins
      WHERE e.party_id = ins.party_id AND e.settlement_id IS NULL AND e.available_on <= ${b.day}::date AND e.id <= ${b.maxEntryId}
        AND e.party_id >= ${b.lo} AND ${hi} -- the chunk's range again, so the scan stays inside it
      RETURNING 1),
    -- What a hold keeps back is carried: out of this settlement, into an open entry.
    carried AS (
      INSERT INTO settle_entries (party_id, kind, ref, amount_fen, available_on, settlement_id)
      SELECT ins.party_id, c.kind, ins.settlement_id, c.amount, ${b.day}::date, CASE WHEN c.kind = 'hold_back' THEN ins.settlement_id END
      FROM ins JOIN calc USING (party_id)
      CROSS JOIN LATERAL (VALUES ('hold_back', -calc.hold), ('hold_forward', calc.hold)) AS c(kind, amount)
      WHERE calc.hold > 0
      RETURNING 1)
    SELECT (SELECT count(*) FROM ins)::int8 AS n, (SELECT count(*) FROM bound)::int8 AS bound, (SELECT count(*) FROM carried)::int8 AS carried`.execute(q);
  return Number(r.rows[0].n);
}

export type SettlementsToPay = { batchId: string; lo: string; hi: string | null } | { settlementId: string };

/** Settlements being paid that have no payout yet (a batch chunk, or one), with where to pay. */
export async function settlementsToPay(q: Q, which: SettlementsToPay): Promise<Array<SettlementRow & { if_code: string; account_no: string; account_name: string | null; bank_name: string | null }>> {
  const where = 'settlementId' in which ? sql`s.settlement_id = ${which.settlementId}`
    : sql`s.batch_id = ${which.batchId} AND s.party_id >= ${which.lo} AND ${which.hi === null ? sql`TRUE` : sql`s.party_id < ${which.hi}`}`;
  return (await sql<SettlementRow & { if_code: string; account_no: string; account_name: string | null; bank_name: string | null }>`
    SELECT s.*, p.if_code, p.account_no, p.account_name, p.bank_name FROM settle_settlements s JOIN settle_parties p USING (party_id)
    LEFT JOIN settle_payouts o ON o.settlement_id = s.settlement_id
    WHERE ${where} AND s.state = 'paying' AND o.payout_id IS NULL
    ORDER BY s.party_id`.execute(q)).rows;
}

/**
 * Payout rows and their ledger-mirroring entries for the settlements being paid that have
 * none yet (after their ledger holds were placed and any short ones marked): one
 * statement, no parameters per row. The payout id is the settlement id with a P.
 */
export async function insertPayoutsFor(q: Q, which: SettlementsToPay, day: string): Promise<number> {
  const where = 'settlementId' in which ? sql`s.settlement_id = ${which.settlementId}`
    : sql`s.batch_id = ${which.batchId} AND s.party_id >= ${which.lo} AND ${which.hi === null ? sql`TRUE` : sql`s.party_id < ${which.hi}`}`;
  const r = await sql<{ n: bigint }>`WITH pay AS (
      INSERT INTO settle_payouts (payout_id, settlement_id, party_id, amount_fen, if_code, account_no, account_name, bank_name, state)
      SELECT 'P' || substr(s.settlement_id, 2), s.settlement_id, s.party_id, s.net_fen, p.if_code, p.account_no, p.account_name, p.bank_name, 'created'
      FROM settle_settlements s JOIN settle_parties p USING (party_id) LEFT JOIN settle_payouts o ON o.settlement_id = s.settlement_id
      WHERE ${where} AND s.state = 'paying' AND o.payout_id IS NULL
      RETURNING payout_id, settlement_id, party_id, amount_fen),
    entries AS (
      INSERT INTO settle_entries (party_id, kind, ref, amount_fen, available_on, settlement_id)
      SELECT party_id, 'payout', payout_id, -amount_fen, ${day}::date, settlement_id FROM pay
      RETURNING 1)
    SELECT (SELECT count(*) FROM pay)::int8 AS n, (SELECT count(*) FROM entries)::int8 AS e`.execute(q);
  return Number(r.rows[0].n);
}

/** A settlement the ledger could not cover: marked short, its entries freed for a later run. */
export async function markShort(q: Q, settlementIds: string[]): Promise<void> {
  if (settlementIds.length === 0) return;
  await sql`UPDATE settle_entries SET settlement_id = NULL WHERE settlement_id IN (${sql.join(settlementIds)})`.execute(q);
  await sql`UPDATE settle_settlements SET state = 'short', updated_at = now() WHERE settlement_id IN (${sql.join(settlementIds)})`.execute(q);
}

export async function finishBatch(q: Q, batchId: string): Promise<BatchRow> {
  await sql`UPDATE settle_batches b SET state = 'built', built_at = coalesce(built_at, now()),
      settlements = (SELECT count(*) FROM settle_settlements s WHERE s.batch_id = b.batch_id AND s.state <> 'short'),
      net_fen = (SELECT coalesce(sum(net_fen), 0) FROM settle_settlements s WHERE s.batch_id = b.batch_id AND s.state <> 'short')
    WHERE batch_id = ${batchId}`.execute(q);
  return (await sql<BatchRow>`SELECT batch_id, to_char(settle_date, 'YYYY-MM-DD') AS settle_date, state, max_entry_id, settlements, net_fen, created_at, built_at FROM settle_batches WHERE batch_id = ${batchId}`.execute(q)).rows[0];
}

export async function findSettlement(q: Q, id: string, forUpdate = false): Promise<SettlementRow | null> {
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  return (await sql<SettlementRow>`SELECT * FROM settle_settlements WHERE settlement_id = ${id}${lock}`.execute(q)).rows[0] ?? null;
}

export async function listSettlements(q: Q, f: { batchId?: string; partyId?: string }, limit: number): Promise<SettlementRow[]> {
  const where = f.batchId ? sql`batch_id = ${f.batchId}` : f.partyId ? sql`party_id = ${f.partyId}` : sql`TRUE`;
  return (await sql<SettlementRow>`SELECT * FROM settle_settlements WHERE ${where} ORDER BY created_at DESC, party_id LIMIT ${limit}`.execute(q)).rows;
}

export async function setSettlementState(q: Q, id: string, state: string): Promise<void> {
  await sql`UPDATE settle_settlements SET state = ${state}, updated_at = now() WHERE settlement_id = ${id}`.execute(q);
}

// --- payouts --------------------------------------------------------------------------------

export async function findPayout(q: Q, id: string, forUpdate = false): Promise<PayoutRow | null> {
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  return (await sql<PayoutRow>`SELECT * FROM settle_payouts WHERE payout_id = ${id}${lock}`.execute(q)).rows[0] ?? null;
}

export async function findPayoutBySettlement(q: Q, settlementId: string): Promise<PayoutRow | null> {
  return (await sql<PayoutRow>`SELECT * FROM settle_payouts WHERE settlement_id = ${settlementId}`.execute(q)).rows[0] ?? null;
}

/** The settlement date of a payout's batch. */
export async function payoutSettleDate(q: Q, payoutId: string): Promise<string> {
  return (await sql<{ d: string }>`SELECT to_char(b.settle_date, 'YYYY-MM-DD') AS d FROM settle_payouts p JOIN settle_settlements s USING (settlement_id)
    JOIN settle_batches b ON b.batch_id = s.batch_id WHERE p.payout_id = ${payoutId}`.execute(q)).rows[0].d;
}

export async function openPayouts(q: Q, states: Array<'created' | 'sent'>, limit: number): Promise<PayoutRow[]> {
  return (await sql<PayoutRow>`SELECT * FROM settle_payouts WHERE state IN (${sql.join(states)}) ORDER BY created_at, payout_id LIMIT ${limit}`.execute(q)).rows;
}

/** Claims the open payouts due for a check and moves each to its next check (see payment.repo claimDue). */
export async function claimDuePayouts(q: Q, o: ClaimOptions): Promise<PayoutRow[]> {
  const due = o.forceBefore ? sql`(next_check_at <= ${o.now} OR created_at <= ${o.forceBefore})` : sql`next_check_at <= ${o.now}`;
  return (await sql<PayoutRow>`UPDATE settle_payouts AS c
    SET next_check_at = ${o.now}::timestamptz + make_interval(secs => (${CHECK_BACKOFF_LITERAL}::int4[])[least(c.check_attempts + 1, cardinality(${CHECK_BACKOFF_LITERAL}::int4[]))]),
      check_attempts = c.check_attempts + 1
    FROM (SELECT payout_id FROM settle_payouts WHERE state IN ('created', 'sent') AND ${due}
      ORDER BY next_check_at LIMIT ${o.limit} FOR UPDATE SKIP LOCKED) AS d
    WHERE c.payout_id = d.payout_id RETURNING c.*`.execute(q)).rows;
}

export async function updatePayout(q: Q, id: string, f: Partial<Pick<PayoutRow, 'state' | 'attempts' | 'channel_no' | 'err_code' | 'err_msg' | 'finished_at'>>): Promise<void> {
  const sets = Object.entries(f).map(([k, v]) => sql`${sql.ref(k)} = ${v}`);
  await sql`UPDATE settle_payouts SET ${sql.join(sets)}, updated_at = now() WHERE payout_id = ${id}`.execute(q);
}

export async function listPayouts(q: Q, partyId: string, limit: number): Promise<PayoutRow[]> {
  return (await sql<PayoutRow>`SELECT * FROM settle_payouts WHERE party_id = ${partyId} ORDER BY created_at DESC LIMIT ${limit}`.execute(q)).rows;
}

// --- calendar --------------------------------------------------------------------------------

export async function listOverrides(q: Q): Promise<Array<{ day: string; kind: 'workday' | 'holiday'; note: string }>> {
  return (await sql<{ day: string; kind: 'workday' | 'holiday'; note: string }>`SELECT to_char(day, 'YYYY-MM-DD') AS day, kind, note FROM settle_calendar_overrides ORDER BY day LIMIT 5000`.execute(q)).rows;
}

export async function upsertOverrides(q: Q, rows: Array<{ day: string; kind: string; note: string }>): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((r) => sql`(${r.day}::date, ${r.kind}, ${r.note})`);
  await sql`INSERT INTO settle_calendar_overrides (day, kind, note) VALUES ${sql.join(values)}
    ON CONFLICT (day) DO UPDATE SET kind = EXCLUDED.kind, note = EXCLUDED.note`.execute(q);
}

// --- reads for loss prevention (src/risk) ------------------------------------------------

export interface PayoutCheck { payout_id: string; settlement_id: string; party_id: string; payout_fen: bigint; net_fen: bigint | null; payout_state: string; settlement_state: string | null; updated_at: Date }

/** Payouts changed at or after `since`, each with its settlement (null when missing), oldest first. */
export async function payoutsWithSettlementsSince(q: Q, since: Date, limit: number): Promise<PayoutCheck[]> {
  const result = await sql<PayoutCheck>`
    SELECT p.payout_id, p.settlement_id, p.party_id, p.amount_fen AS payout_fen, s.net_fen, p.state AS payout_state,
      s.state AS settlement_state, p.updated_at
    FROM settle_payouts p LEFT JOIN settle_settlements s ON s.settlement_id = p.settlement_id
    WHERE p.updated_at >= ${since} ORDER BY p.updated_at LIMIT ${limit}`.execute(q);
  return result.rows;
}

/** Payouts still created/sent after `openMaxS`. */
export async function stuckPayouts(q: Q, now: Date, openMaxS: number, limit: number): Promise<PayoutRow[]> {
  const result = await sql<PayoutRow>`
    SELECT * FROM settle_payouts WHERE state IN ('created', 'sent') AND created_at < ${new Date(now.getTime() - openMaxS * 1000)}
    ORDER BY state, created_at LIMIT ${limit}`.execute(q);
  return result.rows;
}
