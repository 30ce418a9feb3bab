// All SQL of deposits: bills, batches, pay-order links, counter payments, refunds,
// receipts, the fund merchant, and household balances read set-wise from the ledger.
import { sql, type Kdb, type Tx } from '../../platform/db.ts';
import type { Basis } from './formula.ts';

type Q = Kdb | Tx;

export type BillKind = 'first_deposit' | 'top_up';
export type BillState = 'unpaid' | 'paid' | 'cancelled';
export interface BillRow {
  id: string; unit_id: string; estate_id: string; city: string; kind: BillKind; amount_fen: bigint; basis: Basis; state: BillState;
  batch_id: string | null; paid_via: 'payment' | 'batch' | 'counter' | null; paid_ref: string | null; paid_at: Date | null;
  receipt_no: string | null; created_at: Date;
}
export interface BatchRow { id: string; estate_id: string; payer: string; amount_fen: bigint; bill_count: number; bill_ids: string[]; state: 'open' | 'paid' | 'cancelled'; paid_at: Date | null; created_at: Date }
export interface PayLinkRow { pay_order_id: string; mch_order_no: string; bill_id: string | null; batch_id: string | null; amount_fen: bigint; outcome: 'credited' | 'duplicate' | null; created_at: Date }
export interface CounterRow { bank_ref: string; bill_id: string; amount_fen: bigint; channel: 'counter' | 'transfer'; operator: string; created_at: Date }
export interface RefundRow {
  id: string; request_key: string; unit_id: string; reason: string; note: string; principal_fen: bigint; interest_fen: bigint;
  payee: string; operator: string; created_at: Date;
}
/** A household's balances: posted credit balance and pending debits (holds), principal and interest apart. */
export interface HouseholdBalance {
  unit_id: string; building_id: string; estate_id: string; area_m2e2: bigint;
  principal_fen: bigint; principal_held_fen: bigint; interest_fen: bigint; interest_held_fen: bigint;
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

// --- fund merchant ---------------------------------------------------------------------

export async function findFundMerchant(q: Q): Promise<{ mch_no: string; app_id: string } | null> {
  return (await sql<{ mch_no: string; app_id: string }>`SELECT mch_no, app_id FROM fund_merchant`.execute(q)).rows[0] ?? null;
}
export async function insertFundMerchant(q: Q, mchNo: string, appId: string): Promise<void> {
  await sql`INSERT INTO fund_merchant (one, mch_no, app_id) VALUES (true, ${mchNo}, ${appId}) ON CONFLICT (one) DO NOTHING`.execute(q);
}

// --- bills -------------------------------------------------------------------------------

export async function insertBills(q: Q, bills: Array<Pick<BillRow, 'id' | 'unit_id' | 'estate_id' | 'city' | 'kind' | 'amount_fen' | 'basis'>>): Promise<string[]> {
  if (bills.length === 0) return [];
  // A unit that already has a live bill of the kind keeps it (partial unique indexes).
  const r = await sql<{ id: string }>`INSERT INTO fund_bills (id, unit_id, estate_id, city, kind, amount_fen, basis, state)
    SELECT id, unit_id, estate_id, city, kind, amount_fen::int8, basis, 'unpaid'
    FROM jsonb_to_recordset(${json(bills)}::jsonb) AS x(id text, unit_id text, estate_id text, city text, kind text, amount_fen text, basis jsonb)
    ON CONFLICT DO NOTHING RETURNING id`.execute(q);
  return r.rows.map((x) => x.id);
}

export async function findBill(q: Q, id: string, forUpdate = false): Promise<BillRow | null> {
  const lock = forUpdate ? sql`FOR UPDATE` : sql``;
  return (await sql<BillRow>`SELECT * FROM fund_bills WHERE id = ${id} ${lock}`.execute(q)).rows[0] ?? null;
}

export async function findBillByReceipt(q: Q, receiptNo: string): Promise<BillRow | null> {
  return (await sql<BillRow>`SELECT * FROM fund_bills WHERE receipt_no = ${receiptNo}`.execute(q)).rows[0] ?? null;
}

export async function findBills(q: Q, ids: string[], forUpdate = false): Promise<BillRow[]> {
  if (ids.length === 0) return [];
  const lock = forUpdate ? sql`FOR UPDATE` : sql``;
  return (await sql<BillRow>`SELECT * FROM fund_bills WHERE id = ANY(${ids}::text[]) ORDER BY id ${lock}`.execute(q)).rows;
}

export async function listBills(q: Q, f: { unitIds?: string[]; estateId?: string; state?: BillState; kind?: BillKind; batchId?: string }, limit: number): Promise<BillRow[]> {
  return (await sql<BillRow>`SELECT * FROM fund_bills WHERE true
      AND (${f.unitIds ? f.unitIds : null}::text[] IS NULL OR unit_id = ANY(${f.unitIds ? f.unitIds : null}::text[]))
      AND (${f.estateId ?? null}::text IS NULL OR estate_id = ${f.estateId ?? null})
      AND (${f.state ?? null}::text IS NULL OR state = ${f.state ?? null})
      AND (${f.kind ?? null}::text IS NULL OR kind = ${f.kind ?? null})
      AND (${f.batchId ?? null}::text IS NULL OR batch_id = ${f.batchId ?? null})
    ORDER BY created_at, id LIMIT ${limit}`.execute(q)).rows;
}

export async function markBillsPaid(q: Q, ids: string[], via: 'payment' | 'batch' | 'counter', ref: string, at: Date, receiptNos: string[]): Promise<void> {
  await sql`UPDATE fund_bills b SET state = 'paid', paid_via = ${via}, paid_ref = ${ref}, paid_at = ${at}, receipt_no = x.receipt_no
    FROM (SELECT unnest(${ids}::text[]) AS id, unnest(${receiptNos}::text[]) AS receipt_no) x
    WHERE b.id = x.id AND b.state = 'unpaid'`.execute(q);
}

export async function setBillsBatch(q: Q, ids: string[], batchId: string | null): Promise<void> {
  await sql`UPDATE fund_bills SET batch_id = ${batchId} WHERE id = ANY(${ids}::text[])`.execute(q);
}

export async function cancelBill(q: Q, id: string): Promise<void> {
  await sql`UPDATE fund_bills SET state = 'cancelled' WHERE id = ${id} AND state = 'unpaid'`.execute(q);
}

export async function nextReceiptNos(q: Q, count: number): Promise<bigint[]> {
  if (count === 0) return [];
  return (await sql<{ n: bigint }>`SELECT nextval('fund_receipt_seq')::int8 AS n FROM generate_series(1, ${count}::int)`.execute(q)).rows.map((r) => r.n);
}

/** First deposits paid per unit (the base of the top-up threshold). */
export async function firstDepositsPaid(q: Q, unitIds: string[]): Promise<Map<string, bigint>> {
  if (unitIds.length === 0) return new Map();
  const r = await sql<{ unit_id: string; amount: bigint }>`SELECT unit_id, sum(amount_fen)::int8 AS amount FROM fund_bills
    WHERE unit_id = ANY(${unitIds}::text[]) AND kind = 'first_deposit' AND state = 'paid' GROUP BY unit_id`.execute(q);
  return new Map(r.rows.map((x) => [x.unit_id, x.amount]));
}

// --- batches -----------------------------------------------------------------------------

export async function insertBatch(q: Q, b: Omit<BatchRow, 'paid_at' | 'created_at' | 'state'>): Promise<void> {
  await sql`INSERT INTO fund_batches (id, estate_id, payer, amount_fen, bill_count, bill_ids, state)
    VALUES (${b.id}, ${b.estate_id}, ${b.payer}, ${b.amount_fen}, ${b.bill_count}, ${json(b.bill_ids)}::jsonb, 'open')`.execute(q);
}
export async function findBatch(q: Q, id: string, forUpdate = false): Promise<BatchRow | null> {
  const lock = forUpdate ? sql`FOR UPDATE` : sql``;
  return (await sql<BatchRow>`SELECT * FROM fund_batches WHERE id = ${id} ${lock}`.execute(q)).rows[0] ?? null;
}
export async function setBatchState(q: Q, id: string, state: 'paid' | 'cancelled', at: Date | null): Promise<void> {
  await sql`UPDATE fund_batches SET state = ${state}, paid_at = ${at} WHERE id = ${id}`.execute(q);
}

// --- pay-order links ---------------------------------------------------------------------

export async function insertPayLink(q: Q, l: Omit<PayLinkRow, 'outcome' | 'created_at'>): Promise<void> {
  await sql`INSERT INTO fund_pay_links (pay_order_id, mch_order_no, bill_id, batch_id, amount_fen)
    VALUES (${l.pay_order_id}, ${l.mch_order_no}, ${l.bill_id}, ${l.batch_id}, ${l.amount_fen}) ON CONFLICT (pay_order_id) DO NOTHING`.execute(q);
}
export async function linksOf(q: Q, f: { billId?: string; batchId?: string }): Promise<PayLinkRow[]> {
  return (await sql<PayLinkRow>`SELECT * FROM fund_pay_links WHERE (bill_id = ${f.billId ?? null} OR batch_id = ${f.batchId ?? null}) ORDER BY created_at, pay_order_id`.execute(q)).rows;
}
export async function setLinkOutcome(q: Q, payOrderId: string, outcome: 'credited' | 'duplicate'): Promise<void> {
  await sql`UPDATE fund_pay_links SET outcome = ${outcome} WHERE pay_order_id = ${payOrderId}`.execute(q);
}
export async function listDuplicateLinks(q: Q, limit: number): Promise<PayLinkRow[]> {
  return (await sql<PayLinkRow>`SELECT * FROM fund_pay_links WHERE outcome = 'duplicate' ORDER BY created_at LIMIT ${limit}`.execute(q)).rows;
}

// --- counter payments --------------------------------------------------------------------

export async function findCounter(q: Q, bankRef: string): Promise<CounterRow | null> {
  return (await sql<CounterRow>`SELECT * FROM fund_counter_payments WHERE bank_ref = ${bankRef}`.execute(q)).rows[0] ?? null;
}
export async function insertCounter(q: Q, c: Omit<CounterRow, 'created_at'>): Promise<void> {
  await sql`INSERT INTO fund_counter_payments (bank_ref, bill_id, amount_fen, channel, operator) VALUES (${c.bank_ref}, ${c.bill_id}, ${c.amount_fen}, ${c.channel}, ${c.operator})`.execute(q);
}

// --- refunds -----------------------------------------------------------------------------

export async function findRefundByKey(q: Q, key: string): Promise<RefundRow | null> {
  return (await sql<RefundRow>`SELECT * FROM fund_refunds WHERE request_key = ${key}`.execute(q)).rows[0] ?? null;
}
export async function insertRefund(q: Q, r: Omit<RefundRow, 'created_at'>): Promise<void> {
  await sql`INSERT INTO fund_refunds (id, request_key, unit_id, reason, note, principal_fen, interest_fen, payee, operator)
    VALUES (${r.id}, ${r.request_key}, ${r.unit_id}, ${r.reason}, ${r.note}, ${r.principal_fen}, ${r.interest_fen}, ${r.payee}, ${r.operator})`.execute(q);
}
export async function listRefunds(q: Q, unitId: string, limit: number): Promise<RefundRow[]> {
  return (await sql<RefundRow>`SELECT * FROM fund_refunds WHERE unit_id = ${unitId} ORDER BY created_at LIMIT ${limit}`.execute(q)).rows;
}

// --- household balances (set-wise from the ledger) ---------------------------------------

/** Balances of the units matching the filter (units without accounts show zero). */
export async function householdBalances(q: Q, f: { estateId?: string; buildingId?: string; unitIds?: string[] }, limit: number, afterId = ''): Promise<HouseholdBalance[]> {
  return (await sql<HouseholdBalance>`SELECT u.id AS unit_id, u.building_id, u.estate_id, u.area_m2e2,
      COALESCE(p.credits_posted - p.debits_posted, 0)::int8 AS principal_fen, COALESCE(p.debits_pending, 0)::int8 AS principal_held_fen,
      COALESCE(i.credits_posted - i.debits_posted, 0)::int8 AS interest_fen, COALESCE(i.debits_pending, 0)::int8 AS interest_held_fen
    FROM register_units u
      LEFT JOIN ledger_accounts p ON p.id = 'hh:' || u.id || ':principal'
      LEFT JOIN ledger_accounts i ON i.id = 'hh:' || u.id || ':interest'
    WHERE u.id > ${afterId}
      AND (${f.estateId ?? null}::text IS NULL OR u.estate_id = ${f.estateId ?? null})
      AND (${f.buildingId ?? null}::text IS NULL OR u.building_id = ${f.buildingId ?? null})
      AND (${f.unitIds ? f.unitIds : null}::text[] IS NULL OR u.id = ANY(${f.unitIds ? f.unitIds : null}::text[]))
    ORDER BY u.id LIMIT ${limit}`.execute(q)).rows;
}

export interface Rollup { key: string; units: bigint; area_m2e2: bigint; principal_fen: bigint; principal_held_fen: bigint; interest_fen: bigint; interest_held_fen: bigint }

/** Sums of household balances per building (by = 'building') or per estate, set-wise. */
export async function rollup(q: Q, by: 'building' | 'estate', f: { estateId?: string; estateIds?: string[] | null }): Promise<Rollup[]> {
  const key = by === 'building' ? sql`u.building_id` : sql`u.estate_id`;
  return (await sql<Rollup>`SELECT ${key} AS key, count(*)::int8 AS units, sum(u.area_m2e2)::int8 AS area_m2e2,
      COALESCE(sum(p.credits_posted - p.debits_posted), 0)::int8 AS principal_fen, COALESCE(sum(p.debits_pending), 0)::int8 AS principal_held_fen,
      COALESCE(sum(i.credits_posted - i.debits_posted), 0)::int8 AS interest_fen, COALESCE(sum(i.debits_pending), 0)::int8 AS interest_held_fen
    FROM register_units u
      LEFT JOIN ledger_accounts p ON p.id = 'hh:' || u.id || ':principal'
      LEFT JOIN ledger_accounts i ON i.id = 'hh:' || u.id || ':interest'
    WHERE (${f.estateId ?? null}::text IS NULL OR u.estate_id = ${f.estateId ?? null})
      AND (${f.estateIds ? f.estateIds : null}::text[] IS NULL OR u.estate_id = ANY(${f.estateIds ? f.estateIds : null}::text[]))
    GROUP BY ${key} ORDER BY ${key}`.execute(q)).rows;
}

/** Ledger movements on household accounts within [fromNs, toNs), summed by transfer code and side. */
export async function movementsByCode(q: Q, fromNs: bigint, toNs: bigint): Promise<Array<{ code: number; kind: 'principal' | 'interest'; side: 'credit' | 'debit'; transfers: bigint; amount: bigint }>> {
  return (await sql<{ code: number; kind: 'principal' | 'interest'; side: 'credit' | 'debit'; transfers: bigint; amount: bigint }>`
    SELECT t.code, CASE WHEN a.id LIKE '%:principal' THEN 'principal' ELSE 'interest' END AS kind,
      CASE WHEN a.id = t.credit_account_id THEN 'credit' ELSE 'debit' END AS side,
      count(*)::int8 AS transfers, sum(t.amount)::int8 AS amount
    FROM ledger_transfers t JOIN ledger_accounts a ON a.id IN (t.credit_account_id, t.debit_account_id)
    WHERE t.failure IS NULL AND t.ts >= ${fromNs} AND t.ts < ${toNs} AND a.code IN (3101, 3102)
      AND (t.flags & 10) = 0 -- posted movements: plain transfers and posts of pending ones (not holds, not voids)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`.execute(q)).rows;
}

/** Unit statement lines: the ledger entries of one unit's two accounts, in order. */
export async function unitEntries(q: Q, unitId: string, limit: number) {
  return (await sql<{ id: string; ts: bigint; code: number; amount: bigint; account_id: string; side: 'credit' | 'debit'; ref: string | null; status: number | null; flags: number; pending_id: string | null }>`
    SELECT t.id, t.ts, t.code, t.amount, a.id AS account_id, CASE WHEN a.id = t.credit_account_id THEN 'credit' ELSE 'debit' END AS side, t.ref, t.status, t.flags, t.pending_id
    FROM ledger_transfers t JOIN ledger_accounts a ON a.id IN (t.credit_account_id, t.debit_account_id)
    WHERE t.failure IS NULL AND (t.flags & 10) = 0 AND a.id IN (${'hh:' + unitId + ':principal'}, ${'hh:' + unitId + ':interest'})
    ORDER BY t.ts LIMIT ${limit}`.execute(q)).rows;
}

/** Household principal and interest totals from posted ledger movements before `beforeNs` (ties to balances). */
export async function householdTotalsBefore(q: Q, beforeNs: bigint): Promise<{ principal: bigint; interest: bigint }> {
  const r = await sql<{ kind: string; balance: bigint }>`SELECT CASE WHEN a.code = 3101 THEN 'principal' ELSE 'interest' END AS kind,
      COALESCE(sum(CASE WHEN a.id = t.credit_account_id THEN t.amount ELSE -t.amount END), 0)::int8 AS balance
    FROM ledger_transfers t JOIN ledger_accounts a ON a.id IN (t.credit_account_id, t.debit_account_id)
    WHERE t.failure IS NULL AND (t.flags & 10) = 0 AND t.ts < ${beforeNs} AND a.code IN (3101, 3102)
    GROUP BY 1`.execute(q);
  const get = (k: string) => r.rows.find((x) => x.kind === k)?.balance ?? 0n;
  return { principal: get('principal'), interest: get('interest') };
}

/** Sum of all household balances straight from the accounts (for tie-outs). */
export async function householdTotalsNow(q: Q): Promise<{ principal: bigint; interest: bigint }> {
  const r = await sql<{ principal: bigint; interest: bigint }>`SELECT
      COALESCE(sum(CASE WHEN code = 3101 THEN credits_posted - debits_posted END), 0)::int8 AS principal,
      COALESCE(sum(CASE WHEN code = 3102 THEN credits_posted - debits_posted END), 0)::int8 AS interest
    FROM ledger_accounts WHERE code IN (3101, 3102)`.execute(q);
  return r.rows[0];
}

/** Bills paid within [from, to), by how they were paid. */
export async function billsPaidBetween(q: Q, from: Date, to: Date): Promise<Array<{ paid_via: string; kind: string; bills: bigint; amount: bigint }>> {
  return (await sql<{ paid_via: string; kind: string; bills: bigint; amount: bigint }>`SELECT paid_via, kind, count(*)::int8 AS bills, sum(amount_fen)::int8 AS amount
    FROM fund_bills WHERE state = 'paid' AND paid_at >= ${from} AND paid_at < ${to} GROUP BY 1, 2 ORDER BY 1, 2`.execute(q)).rows;
}

/** For loss prevention: each city's units and repair applications (ids only), at most `limit` of each per city. */
export async function cityAccountOwners(q: Q, limit: number): Promise<Array<{ city: string; unit_ids: string[]; application_ids: string[] }>> {
  const result = await sql<{ city: string; unit_ids: string[] | null; application_ids: string[] | null }>`
    WITH cities AS (SELECT DISTINCT city FROM register_estates)
    SELECT c.city,
      (SELECT array_agg(id) FROM (SELECT u.id FROM register_units u JOIN register_estates e ON e.id = u.estate_id
         WHERE e.city = c.city ORDER BY u.id LIMIT ${limit}) x) AS unit_ids,
      (SELECT array_agg(id) FROM (SELECT a.id FROM fund_applications a WHERE a.city = c.city ORDER BY a.id LIMIT ${limit}) y) AS application_ids
    FROM cities c ORDER BY c.city`.execute(q);
  return result.rows.map((r) => ({ city: r.city, unit_ids: r.unit_ids ?? [], application_ids: r.application_ids ?? [] }));
}
