// SQL of interest (增值收益) batches, and the set-wise read of household balance history
// from the ledger's transfer rows (read only): for every household account of a city,
// the balance at the period's start and every balance-after inside the period, in two
// queries, instead of a balanceAt call per household per day. Household accounts carry
// the ledger's history flag, so each transfer row holds the balance after it (dr_*/cr_*).
import { sql, type Kdb, type Tx } from '../../platform/db.ts';

type Q = Kdb | Tx;

export interface BatchRow {
  id: string; city: string; period: string; from_date: string; to_date: string; amount_fen: bigint; households: number;
  total_weight: string; operator: string; created_at: Date;
}
export interface ShareRow { batch_id: string; unit_id: string; weight: string; share_fen: bigint }

export async function findBatch(q: Q, city: string, period: string): Promise<BatchRow | null> {
  const r = await sql<BatchRow>`SELECT id, city, period, from_date::text AS from_date, to_date::text AS to_date, amount_fen, households, total_weight, operator, created_at
    FROM fund_interest_batches WHERE city = ${city} AND period = ${period}`.execute(q);
  return r.rows[0] ?? null;
}

export async function findBatchById(q: Q, id: string): Promise<BatchRow | null> {
  const r = await sql<BatchRow>`SELECT id, city, period, from_date::text AS from_date, to_date::text AS to_date, amount_fen, households, total_weight, operator, created_at
    FROM fund_interest_batches WHERE id = ${id}`.execute(q);
  return r.rows[0] ?? null;
}

export async function listBatches(q: Q, city: string | null, limit: number): Promise<BatchRow[]> {
  const r = await sql<BatchRow>`SELECT id, city, period, from_date::text AS from_date, to_date::text AS to_date, amount_fen, households, total_weight, operator, created_at
    FROM fund_interest_batches WHERE (${city}::text IS NULL OR city = ${city}) ORDER BY from_date DESC, city LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function insertBatch(tx: Tx, b: { id: string; city: string; period: string; fromDate: string; toDate: string; amountFen: bigint; households: number; totalWeight: bigint; operator: string }): Promise<boolean> {
  const r = await sql`INSERT INTO fund_interest_batches (id, city, period, from_date, to_date, amount_fen, households, total_weight, operator)
    VALUES (${b.id}, ${b.city}, ${b.period}, ${b.fromDate}::date, ${b.toDate}::date, ${b.amountFen.toString()}::int8, ${b.households}, ${b.totalWeight.toString()}, ${b.operator})
    ON CONFLICT (city, period) DO NOTHING`.execute(tx);
  return Number(r.numAffectedRows ?? 0n) === 1;
}

export async function insertShares(tx: Tx, batchId: string, shares: Array<{ unitId: string; weight: bigint; shareFen: bigint }>): Promise<void> {
  if (shares.length === 0) return;
  await sql`INSERT INTO fund_interest_shares (batch_id, unit_id, weight, share_fen)
    SELECT ${batchId}, s.unit_id, s.weight, s.share FROM unnest(${shares.map((s) => s.unitId)}::text[], ${shares.map((s) => s.weight.toString())}::text[],
      ${shares.map((s) => s.shareFen.toString())}::int8[]) AS s(unit_id, weight, share)`.execute(tx);
}

export async function listShares(q: Q, batchId: string, limit: number): Promise<ShareRow[]> {
  const r = await sql<ShareRow>`SELECT * FROM fund_interest_shares WHERE batch_id = ${batchId} ORDER BY unit_id LIMIT ${limit}`.execute(q);
  return r.rows;
}

/** Units of a city's estates (the register), by id; at most `limit`. */
export async function cityUnitIds(q: Q, city: string, limit: number): Promise<string[]> {
  const r = await sql<{ id: string }>`SELECT u.id FROM register_units u JOIN register_estates e ON e.id = u.estate_id
    WHERE e.city = ${city} ORDER BY u.id LIMIT ${limit}`.execute(q);
  return r.rows.map((row) => row.id);
}

/** Posted balance (credits − debits) of each account just before `atNs`: its last entry's balance-after. */
export async function postedBalancesBefore(q: Q, accountIds: string[], atNs: bigint): Promise<Map<string, bigint>> {
  if (accountIds.length === 0) return new Map();
  const r = await sql<{ account_id: string; balance: string }>`
    WITH e AS (
      SELECT debit_account_id AS account_id, ts, (dr_credits_posted - dr_debits_posted)::text AS balance
        FROM ledger_transfers WHERE debit_account_id = ANY(${accountIds}::text[]) AND ts < ${atNs.toString()}::int8 AND failure IS NULL
      UNION ALL
      SELECT credit_account_id, ts, (cr_credits_posted - cr_debits_posted)::text
        FROM ledger_transfers WHERE credit_account_id = ANY(${accountIds}::text[]) AND ts < ${atNs.toString()}::int8 AND failure IS NULL
    )
    SELECT DISTINCT ON (account_id) account_id, balance FROM e ORDER BY account_id, ts DESC`.execute(q);
  return new Map(r.rows.map((row) => [row.account_id, BigInt(row.balance)]));
}

/** Every posted-balance change of these accounts in [fromNs, toNs), oldest first (balance-after). */
export async function postedBalanceChanges(q: Q, accountIds: string[], fromNs: bigint, toNs: bigint, limit: number): Promise<Array<{ account_id: string; ts: bigint; balance: bigint }>> {
  if (accountIds.length === 0) return [];
  const r = await sql<{ account_id: string; ts: string; balance: string }>`
    SELECT * FROM (
      SELECT debit_account_id AS account_id, ts::text AS ts, (dr_credits_posted - dr_debits_posted)::text AS balance
        FROM ledger_transfers WHERE debit_account_id = ANY(${accountIds}::text[]) AND ts >= ${fromNs.toString()}::int8 AND ts < ${toNs.toString()}::int8 AND failure IS NULL
      UNION ALL
      SELECT credit_account_id, ts::text, (cr_credits_posted - cr_debits_posted)::text
        FROM ledger_transfers WHERE credit_account_id = ANY(${accountIds}::text[]) AND ts >= ${fromNs.toString()}::int8 AND ts < ${toNs.toString()}::int8 AND failure IS NULL
    ) AS e ORDER BY ts, account_id LIMIT ${limit}`.execute(q);
  return r.rows.map((row) => ({ account_id: row.account_id, ts: BigInt(row.ts), balance: BigInt(row.balance) }));
}
