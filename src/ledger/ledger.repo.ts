// All SQL of the account center. Batches are read and written set-wise: one query per
// kind of read or write, with arrays (unnest), never one query per transfer.
import { sql, type Kdb, type Tx } from '../platform/db.ts';
import type { Account, AccountInput, Balances, TransferRow } from './types.ts';

type Q = Kdb | Tx;

const ACCOUNT_COLUMNS = sql.raw(
  'id, ledger, code, flags, ref, metadata, debits_posted, credits_posted, debits_pending, credits_pending, version, closed, ts',
);
const TRANSFER_COLUMNS = sql.raw(
  'id, ts, debit_account_id, credit_account_id, amount, ledger, code, flags, pending_id, timeout_s, expires_at, status, ref, metadata, failure, ' +
    'dr_debits_posted, dr_credits_posted, dr_debits_pending, dr_credits_pending, cr_debits_posted, cr_credits_posted, cr_debits_pending, cr_credits_pending',
);

interface DbTransferRow {
  id: string; ts: bigint; debit_account_id: string | null; credit_account_id: string | null; amount: bigint;
  ledger: number; code: number; flags: number; pending_id: string | null; timeout_s: number; expires_at: bigint;
  status: number | null; ref: string | null; metadata: string | null; failure: string | null;
  dr_debits_posted: bigint | null; dr_credits_posted: bigint | null; dr_debits_pending: bigint | null; dr_credits_pending: bigint | null;
  cr_debits_posted: bigint | null; cr_credits_posted: bigint | null; cr_debits_pending: bigint | null; cr_credits_pending: bigint | null;
}

function toTransferRow(r: DbTransferRow): TransferRow {
  return {
    id: r.id, ts: r.ts, debit_account_id: r.debit_account_id, credit_account_id: r.credit_account_id,
    amount: r.amount, ledger: r.ledger, code: r.code, flags: r.flags, pending_id: r.pending_id,
    timeout_s: r.timeout_s, expires_at: r.expires_at, status: r.status, ref: r.ref, metadata: r.metadata,
    failure: r.failure,
    dr: r.dr_debits_posted === null ? null : {
      debits_posted: r.dr_debits_posted, credits_posted: r.dr_credits_posted as bigint,
      debits_pending: r.dr_debits_pending as bigint, credits_pending: r.dr_credits_pending as bigint,
    },
    cr: r.cr_debits_posted === null ? null : {
      debits_posted: r.cr_debits_posted, credits_posted: r.cr_credits_posted as bigint,
      debits_pending: r.cr_debits_pending as bigint, credits_pending: r.cr_credits_pending as bigint,
    },
  };
}

/** Inserts accounts that do not exist yet; returns the ids it inserted. */
export async function insertAccounts(q: Q, accounts: AccountInput[], ts: bigint): Promise<Set<string>> {
  if (accounts.length === 0) return new Set();
  const result = await sql<{ id: string }>`
    INSERT INTO ledger_accounts (id, ledger, code, flags, ref, metadata, ts)
    SELECT u.id, u.ledger, u.code, u.flags, u.ref, u.metadata, ${ts.toString()}::int8
    FROM unnest(${accounts.map((a) => a.id)}::text[], ${accounts.map((a) => a.ledger)}::int4[],
                ${accounts.map((a) => a.code)}::int4[], ${accounts.map((a) => a.flags)}::int4[],
                ${accounts.map((a) => a.ref)}::text[], ${accounts.map((a) => a.metadata)}::text[])
         AS u(id, ledger, code, flags, ref, metadata)
    ON CONFLICT (id) DO NOTHING
    RETURNING id`.execute(q);
  return new Set(result.rows.map((r) => r.id));
}

export async function findAccounts(q: Q, ids: string[]): Promise<Account[]> {
  if (ids.length === 0) return [];
  const result = await sql<Account>`SELECT ${ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = ANY(${ids}::text[])`.execute(q);
  return result.rows;
}

/** Locks accounts in id order (the one lock order everywhere, so no deadlock) and reads them. */
export async function lockAccounts(tx: Tx, sortedIds: string[]): Promise<Account[]> {
  if (sortedIds.length === 0) return [];
  const result = await sql<Account>`
    SELECT ${ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = ANY(${sortedIds}::text[])
    ORDER BY id FOR UPDATE`.execute(tx);
  return result.rows;
}

export async function findTransferRows(q: Q, ids: string[]): Promise<TransferRow[]> {
  if (ids.length === 0) return [];
  const result = await sql<DbTransferRow>`
    SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers WHERE id = ANY(${ids}::text[])`.execute(q);
  return result.rows.map(toTransferRow);
}

/** Pending transfers whose timeout has passed, oldest first, at most `limit`. */
export async function findDuePending(q: Q, nowNs: bigint, limit: number): Promise<TransferRow[]> {
  const result = await sql<DbTransferRow>`
    SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers
    WHERE status = 1 AND expires_at > 0 AND expires_at <= ${nowNs.toString()}::int8
    ORDER BY expires_at, id LIMIT ${limit}`.execute(q);
  return result.rows.map(toTransferRow);
}

/**
 * Reserves `count` strictly increasing timestamps, none earlier than `nowNs` (nor than
 * any stamp before them); returns the first.
 */
export async function reserveTimestamps(tx: Tx, count: number, nowNs: bigint): Promise<bigint> {
  const result = await sql<{ ts: bigint }>`
    UPDATE ledger_clock SET ts = GREATEST(ts, ${(nowNs - 1n).toString()}::int8) + ${count}
    RETURNING ts`.execute(tx);
  return result.rows[0].ts - BigInt(count) + 1n;
}

const str = (v: bigint | null | undefined) => (v === null || v === undefined ? null : v.toString());

interface Column {
  name: string;
  type: string;
  pick: (r: TransferRow) => unknown;
  /** Optional columns are sent only when some row has a value other than the default. */
  optional: boolean;
  isDefault?: (value: unknown) => boolean;
}

const isNull = (v: unknown) => v === null;
const isZero = (v: unknown) => v === 0 || v === '0';
const TRANSFER_INSERT_COLUMNS: Column[] = [
  { name: 'id', type: 'text', pick: (r) => r.id, optional: false },
  { name: 'ts', type: 'int8', pick: (r) => str(r.ts), optional: false },
  { name: 'debit_account_id', type: 'text', pick: (r) => r.debit_account_id, optional: false },
  { name: 'credit_account_id', type: 'text', pick: (r) => r.credit_account_id, optional: false },
  { name: 'amount', type: 'int8', pick: (r) => str(r.amount), optional: false },
  { name: 'ledger', type: 'int4', pick: (r) => r.ledger, optional: false },
  { name: 'code', type: 'int4', pick: (r) => r.code, optional: false },
  { name: 'flags', type: 'int4', pick: (r) => r.flags, optional: false },
  { name: 'pending_id', type: 'text', pick: (r) => r.pending_id, optional: true, isDefault: isNull },
  { name: 'timeout_s', type: 'int4', pick: (r) => r.timeout_s, optional: true, isDefault: isZero },
  { name: 'expires_at', type: 'int8', pick: (r) => str(r.expires_at), optional: true, isDefault: isZero },
  { name: 'status', type: 'int2', pick: (r) => r.status, optional: true, isDefault: isNull },
  { name: 'ref', type: 'text', pick: (r) => r.ref, optional: true, isDefault: isNull },
  { name: 'metadata', type: 'text', pick: (r) => r.metadata, optional: true, isDefault: isNull },
  { name: 'failure', type: 'text', pick: (r) => r.failure, optional: true, isDefault: isNull },
  ...(['dr', 'cr'] as const).flatMap((side) =>
    (['debits_posted', 'credits_posted', 'debits_pending', 'credits_pending'] as const).map((b): Column => ({
      name: `${side}_${b}`, type: 'int8', pick: (r) => str(r[side]?.[b]), optional: true, isDefault: isNull,
    }))),
];

/**
 * Inserts new transfer rows with one INSERT … SELECT FROM unnest(arrays); returns how
 * many it inserted (with skipExisting, rows whose id exists are skipped). Columns that
 * hold only their default in this batch are left out: fewer arrays to parse.
 */
export async function insertTransferRows(tx: Tx, rows: TransferRow[], skipExisting = false): Promise<number> {
  if (rows.length === 0) return 0;
  const names: string[] = [];
  const arrays: ReturnType<typeof sql>[] = [];
  for (const column of TRANSFER_INSERT_COLUMNS) {
    const values = rows.map(column.pick);
    if (column.optional && values.every(column.isDefault as (v: unknown) => boolean)) continue;
    names.push(column.name);
    arrays.push(sql`${values}::${sql.raw(column.type)}[]`);
  }
  const result = await sql`
    INSERT INTO ledger_transfers (${sql.raw(names.join(', '))})
    SELECT * FROM unnest(${sql.join(arrays)})${skipExisting ? sql` ON CONFLICT (id) DO NOTHING` : sql``}`.execute(tx);
  return Number(result.numAffectedRows ?? 0n);
}

const BALANCE_COLUMNS = ['debits_posted', 'credits_posted', 'debits_pending', 'credits_pending'] as const;

/**
 * Writes changed balances, versions and closed flags. `before` holds each account as
 * it was read; a column no account changed is not sent.
 */
export async function updateAccountBalances(tx: Tx, accounts: Account[], before: Map<string, Account>): Promise<void> {
  if (accounts.length === 0) return;
  const sets: string[] = ['version = u.version'];
  const arrays: ReturnType<typeof sql>[] = [
    sql`${accounts.map((a) => a.id)}::text[]`,
    sql`${accounts.map((a) => a.version.toString())}::int8[]`,
  ];
  const aliases = ['id', 'version'];
  for (const column of BALANCE_COLUMNS) {
    if (!accounts.some((a) => a[column] !== (before.get(a.id) as Account)[column])) continue;
    sets.push(`${column} = u.${column}`);
    aliases.push(column);
    arrays.push(sql`${accounts.map((a) => a[column].toString())}::int8[]`);
  }
  if (accounts.some((a) => a.closed !== (before.get(a.id) as Account).closed)) {
    sets.push('closed = u.closed');
    aliases.push('closed');
    arrays.push(sql`${accounts.map((a) => a.closed)}::bool[]`);
  }
  await sql`
    UPDATE ledger_accounts AS a SET ${sql.raw(sets.join(', '))}
    FROM unnest(${sql.join(arrays)}) AS u(${sql.raw(aliases.join(', '))})
    WHERE a.id = u.id`.execute(tx);
}

export async function updatePendingStatus(tx: Tx, changes: Map<string, number>): Promise<void> {
  if (changes.size === 0) return;
  await sql`
    UPDATE ledger_transfers AS t SET status = u.status
    FROM unnest(${[...changes.keys()]}::text[], ${[...changes.values()]}::int2[]) AS u(id, status)
    WHERE t.id = u.id`.execute(tx);
}

/** An account's entries after `afterTs`, oldest first (both sides merged by ts). */
export async function listEntries(q: Q, accountId: string, afterTs: bigint, limit: number): Promise<TransferRow[]> {
  const after = afterTs.toString();
  const result = await sql<DbTransferRow>`
    SELECT * FROM (
      (SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers
        WHERE debit_account_id = ${accountId} AND ts > ${after}::int8 ORDER BY ts LIMIT ${limit})
      UNION ALL
      (SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers
        WHERE credit_account_id = ${accountId} AND ts > ${after}::int8 ORDER BY ts LIMIT ${limit})
    ) AS e ORDER BY ts LIMIT ${limit}`.execute(q);
  return result.rows.map(toTransferRow);
}

/** The account's last entry at or before `atTs` (for balance-after of history accounts). */
export async function lastEntryAtOrBefore(q: Q, accountId: string, atTs: bigint): Promise<TransferRow | null> {
  const at = atTs.toString();
  const result = await sql<DbTransferRow>`
    SELECT * FROM (
      (SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers
        WHERE debit_account_id = ${accountId} AND ts <= ${at}::int8 ORDER BY ts DESC LIMIT 1)
      UNION ALL
      (SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers
        WHERE credit_account_id = ${accountId} AND ts <= ${at}::int8 ORDER BY ts DESC LIMIT 1)
    ) AS e ORDER BY ts DESC LIMIT 1`.execute(q);
  return result.rows.length === 0 ? null : toTransferRow(result.rows[0]);
}

/**
 * Balances of an account as of `atTs`, recomputed from its transfers (for accounts
 * without history). Pending amounts count while the pending transfer was unresolved
 * at that time: created at or before, resolved (post/void/expiry row) after.
 */
export async function balancesFromTransfers(q: Q, accountId: string, atTs: bigint): Promise<Balances> {
  const at = atTs.toString();
  const result = await sql<{ side: string; posted: string | null; pending: string | null }>`
    WITH mine AS (
      SELECT 'debit' AS side, t.* FROM ledger_transfers t WHERE debit_account_id = ${accountId} AND ts <= ${at}::int8
      UNION ALL
      SELECT 'credit' AS side, t.* FROM ledger_transfers t WHERE credit_account_id = ${accountId} AND ts <= ${at}::int8
    )
    SELECT side,
      (sum(amount) FILTER (WHERE (flags & 10) = 0))::text AS posted,
      (sum(amount) FILTER (WHERE (flags & 2) <> 0 AND NOT EXISTS (
         SELECT 1 FROM ledger_transfers r WHERE r.pending_id = mine.id AND r.ts <= ${at}::int8 AND r.failure IS NULL
           AND (r.flags & 12) <> 0)))::text AS pending
    FROM mine GROUP BY side`.execute(q);
  const b: Balances = { debits_posted: 0n, credits_posted: 0n, debits_pending: 0n, credits_pending: 0n };
  for (const r of result.rows) {
    if (r.side === 'debit') {
      b.debits_posted = BigInt(r.posted ?? '0');
      b.debits_pending = BigInt(r.pending ?? '0');
    } else {
      b.credits_posted = BigInt(r.posted ?? '0');
      b.credits_pending = BigInt(r.pending ?? '0');
    }
  }
  return b;
}

export interface LedgerTotals {
  ledger: number;
  accounts: bigint;
  debits_posted: string;
  credits_posted: string;
  debits_pending: string;
  credits_pending: string;
}

/** Σ of each balance per ledger (as text: the sums may pass int8). */
export async function ledgerTotals(q: Q): Promise<LedgerTotals[]> {
  const result = await sql<LedgerTotals>`
    SELECT ledger, count(*)::int8 AS accounts,
      sum(debits_posted)::text AS debits_posted, sum(credits_posted)::text AS credits_posted,
      sum(debits_pending)::text AS debits_pending, sum(credits_pending)::text AS credits_pending
    FROM ledger_accounts GROUP BY ledger ORDER BY ledger`.execute(q);
  return result.rows;
}

export interface AccountMismatch {
  id: string;
  debits_posted: bigint; credits_posted: bigint; debits_pending: bigint; credits_pending: bigint;
  expected_debits_posted: string; expected_credits_posted: string;
  expected_debits_pending: string; expected_credits_pending: string;
}

/**
 * Accounts whose stored balances differ from the sums of their transfers.
 * Posted: plain transfers and posts (flags without pending or void); pending: pending
 * transfers still in status 1.
 */
export async function accountMismatches(q: Q, limit: number): Promise<AccountMismatch[]> {
  const result = await sql<AccountMismatch>`
    WITH d AS (
      SELECT debit_account_id AS id,
        coalesce(sum(amount) FILTER (WHERE (flags & 10) = 0), 0) AS posted,
        coalesce(sum(amount) FILTER (WHERE (flags & 2) <> 0 AND status = 1), 0) AS pending
      FROM ledger_transfers WHERE debit_account_id IS NOT NULL GROUP BY debit_account_id
    ), c AS (
      SELECT credit_account_id AS id,
        coalesce(sum(amount) FILTER (WHERE (flags & 10) = 0), 0) AS posted,
        coalesce(sum(amount) FILTER (WHERE (flags & 2) <> 0 AND status = 1), 0) AS pending
      FROM ledger_transfers WHERE credit_account_id IS NOT NULL GROUP BY credit_account_id
    )
    SELECT a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
      coalesce(d.posted, 0)::text AS expected_debits_posted, coalesce(c.posted, 0)::text AS expected_credits_posted,
      coalesce(d.pending, 0)::text AS expected_debits_pending, coalesce(c.pending, 0)::text AS expected_credits_pending
    FROM ledger_accounts a LEFT JOIN d ON d.id = a.id LEFT JOIN c ON c.id = a.id
    WHERE a.debits_posted <> coalesce(d.posted, 0) OR a.credits_posted <> coalesce(c.posted, 0)
       OR a.debits_pending <> coalesce(d.pending, 0) OR a.credits_pending <> coalesce(c.pending, 0)
    ORDER BY a.id LIMIT ${limit}`.execute(q);
  return result.rows;
}

/** History accounts whose last entry's balance-after differs from the current balances. */
export async function historyMismatches(q: Q, limit: number): Promise<string[]> {
  const result = await sql<{ id: string }>`
    WITH last AS (
      SELECT DISTINCT ON (acc) acc, dp, cp, dpe, cpe FROM (
        SELECT debit_account_id AS acc, ts, dr_debits_posted AS dp, dr_credits_posted AS cp,
               dr_debits_pending AS dpe, dr_credits_pending AS cpe
          FROM ledger_transfers WHERE dr_debits_posted IS NOT NULL
        UNION ALL
        SELECT credit_account_id, ts, cr_debits_posted, cr_credits_posted, cr_debits_pending, cr_credits_pending
          FROM ledger_transfers WHERE cr_debits_posted IS NOT NULL
      ) e ORDER BY acc, ts DESC
    )
    SELECT a.id FROM ledger_accounts a JOIN last ON last.acc = a.id
    WHERE (a.flags & 4) <> 0 AND (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
      IS DISTINCT FROM (last.dp, last.cp, last.dpe, last.cpe)
    ORDER BY a.id LIMIT ${limit}`.execute(q);
  return result.rows.map((r) => r.id);
}

export async function countTransfers(q: Q): Promise<{ applied: bigint; failed: bigint }> {
  const result = await sql<{ applied: bigint; failed: bigint }>`
    SELECT count(*) FILTER (WHERE failure IS NULL)::int8 AS applied, count(*) FILTER (WHERE failure IS NOT NULL)::int8 AS failed
    FROM ledger_transfers`.execute(q);
  return result.rows[0];
}

// --- reads for loss prevention (src/risk): incremental verification, set-wise sums ------

/** Accounts touched by transfers with ts > afterTs (oldest first, at most `limit` transfers scanned) and the last ts scanned. */
export async function accountsTouchedSince(q: Q, afterTs: bigint, limit: number): Promise<{ ids: string[]; lastTs: bigint | null }> {
  const result = await sql<{ ts: bigint; debit_account_id: string | null; credit_account_id: string | null }>`
    SELECT ts, debit_account_id, credit_account_id FROM ledger_transfers
    WHERE ts > ${afterTs.toString()}::int8 AND failure IS NULL ORDER BY ts LIMIT ${limit}`.execute(q);
  const ids = new Set<string>();
  for (const r of result.rows) {
    if (r.debit_account_id) ids.add(r.debit_account_id);
    if (r.credit_account_id) ids.add(r.credit_account_id);
  }
  const last = result.rows.at(-1);
  return { ids: [...ids], lastTs: last ? BigInt(last.ts) : null };
}

/** accountMismatches restricted to the given accounts. */
export async function accountMismatchesAmong(q: Q, ids: string[], limit: number): Promise<AccountMismatch[]> {
  if (ids.length === 0) return [];
  const result = await sql<AccountMismatch>`
    WITH d AS (
      SELECT debit_account_id AS id,
        coalesce(sum(amount) FILTER (WHERE (flags & 10) = 0), 0) AS posted,
        coalesce(sum(amount) FILTER (WHERE (flags & 2) <> 0 AND status = 1), 0) AS pending
      FROM ledger_transfers WHERE debit_account_id = ANY(${ids}::text[]) GROUP BY debit_account_id
    ), c AS (
      SELECT credit_account_id AS id,
        coalesce(sum(amount) FILTER (WHERE (flags & 10) = 0), 0) AS posted,
        coalesce(sum(amount) FILTER (WHERE (flags & 2) <> 0 AND status = 1), 0) AS pending
      FROM ledger_transfers WHERE credit_account_id = ANY(${ids}::text[]) GROUP BY credit_account_id
    )
    SELECT a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
      coalesce(d.posted, 0)::text AS expected_debits_posted, coalesce(c.posted, 0)::text AS expected_credits_posted,
      coalesce(d.pending, 0)::text AS expected_debits_pending, coalesce(c.pending, 0)::text AS expected_credits_pending
    FROM ledger_accounts a LEFT JOIN d ON d.id = a.id LEFT JOIN c ON c.id = a.id
    WHERE a.id = ANY(${ids}::text[]) AND (a.debits_posted <> coalesce(d.posted, 0) OR a.credits_posted <> coalesce(c.posted, 0)
       OR a.debits_pending <> coalesce(d.pending, 0) OR a.credits_pending <> coalesce(c.pending, 0))
    ORDER BY a.id LIMIT ${limit}`.execute(q);
  return result.rows;
}

export interface TransferBrief { id: string; ref: string; amount: bigint; code: number; debit_account_id: string | null; credit_account_id: string | null }

/** Applied transfers with one of the given refs and the given code. */
export async function transfersByRefs(q: Q, refs: string[], code: number): Promise<TransferBrief[]> {
  if (refs.length === 0) return [];
  const result = await sql<TransferBrief>`
    SELECT id, ref, amount, code, debit_account_id, credit_account_id FROM ledger_transfers
    WHERE ref = ANY(${refs}::text[]) AND code = ${code} AND failure IS NULL`.execute(q);
  return result.rows;
}

/** Σ posted debits and credits of the given accounts (text: may pass int8). */
export async function sumPosted(q: Q, ids: string[]): Promise<{ debits_posted: bigint; credits_posted: bigint }> {
  if (ids.length === 0) return { debits_posted: 0n, credits_posted: 0n };
  const result = await sql<{ dp: string; cp: string }>`
    SELECT coalesce(sum(debits_posted), 0)::text AS dp, coalesce(sum(credits_posted), 0)::text AS cp
    FROM ledger_accounts WHERE id = ANY(${ids}::text[])`.execute(q);
  return { debits_posted: BigInt(result.rows[0].dp), credits_posted: BigInt(result.rows[0].cp) };
}

/** Σ posted transfers from one account into any of the given accounts. */
export async function sumTransfersInto(q: Q, debitId: string, creditIds: string[]): Promise<bigint> {
  if (creditIds.length === 0) return 0n;
  const result = await sql<{ total: string }>`
    SELECT coalesce(sum(amount), 0)::text AS total FROM ledger_transfers
    WHERE debit_account_id = ${debitId} AND credit_account_id = ANY(${creditIds}::text[]) AND (flags & 10) = 0 AND failure IS NULL`.execute(q);
  return BigInt(result.rows[0].total);
}
