// The account center's use cases. Other modules call applyInTransaction inside their
// own transactions (a state change and its postings commit together); the HTTP API
// and hot callers go through group commit.
import { assert } from '../platform/assert.ts';
import type { Clock } from '../platform/clock.ts';
import { transact, type Database, type Tx } from '../platform/db.ts';
import { notFound } from '../platform/errors.ts';
import { Engine } from './engine.ts';
import { GroupCommit } from '../platform/group-commit.ts';
import * as repo from './ledger.repo.ts';
import {
  ACCOUNT_FLAGS,
  ACCOUNT_FLAGS_ALL,
  BATCH_MAX,
  ID_PATTERN,
  TRANSFER_FLAGS as F,
  type Account,
  type AccountInput,
  type AccountResultCode,
  type Balances,
  type TransferInput,
  type TransferResultCode,
  type TransferRow,
} from './types.ts';

/** How many expired pending transfers one batch voids at most. */
const EXPIRE_PER_BATCH_MAX = 1024;
const ENTRIES_LIMIT_MAX = 1000;
const MISMATCHES_SHOWN_MAX = 100;

export interface LedgerOptions {
  db: Database;
  clock: Clock;
  batchMax?: number;
  /** Batches in flight at once (each in its own transaction). */
  concurrency?: number;
}

export interface Entry {
  transfer: TransferRow;
  side: 'debit' | 'credit';
  balance_after: Balances | null;
}

export interface VerifyReport {
  balanced: boolean;
  ledgers: Array<{
    ledger: number; accounts: string; balanced: boolean;
    debits_posted: string; credits_posted: string; debits_pending: string; credits_pending: string;
  }>;
  accounts_mismatched: repo.AccountMismatch[];
  history_mismatched: string[];
  transfers_applied: string;
  transfers_failed: string;
}

export type Ledger = ReturnType<typeof createLedger>;

/** An optimistic batch met an id that already had a row: run it again, carefully. */
class OptimisticConflict extends Error {}

export function createLedger(options: LedgerOptions) {
  const { db, clock } = options;
  const batchMax = options.batchMax ?? BATCH_MAX;
  const concurrency = options.concurrency ?? (db.kind === 'pglite' ? 1 : 2);

  // Group-committed batches first run optimistically: they do not look up their own ids
  // (almost always new) and insert with ON CONFLICT DO NOTHING; if any id already had a
  // row, the transaction is rolled back and the batch runs again, looking every id up.
  const runBatch = async (items: TransferInput[], segmentEnds: number[]) => {
    try {
      return await transact(db, async (tx) => (await applyCore(tx, items, segmentEnds, clock.nowNs(), true)).results);
    } catch (error) {
      if (!(error instanceof OptimisticConflict)) throw error;
      return transact(db, (tx) => applyInTransaction(tx, items, segmentEnds, clock.nowNs()));
    }
  };
  const groupCommit = new GroupCommit<TransferInput, TransferResultCode>(runBatch, batchMax, concurrency);

  async function createAccounts(inputs: AccountInput[]): Promise<AccountResultCode[]> {
    assert(inputs.length <= BATCH_MAX, 'account batch within limit');
    return transact(db, (tx) => createAccountsIn(tx, inputs));
  }

  async function createAccountsIn(tx: Tx, inputs: AccountInput[]): Promise<AccountResultCode[]> {
    const results: AccountResultCode[] = inputs.map(validateAccount);
    const firstIndex = new Map<string, number>();
    const toInsert: AccountInput[] = [];
    inputs.forEach((a, i) => {
      if (results[i] !== 'ok') return;
      const first = firstIndex.get(a.id);
      if (first === undefined) {
        firstIndex.set(a.id, i);
        toInsert.push(a);
      } else {
        results[i] = 'exists'; // decided below against the first with the same id
      }
    });
    // No ledger_clock here: account creation runs inside callers' transactions that then
    // post transfers (which lock accounts, then the clock); taking the clock first here
    // would invert that order and deadlock. An account's ts only needs to precede its entries.
    const inserted = await repo.insertAccounts(tx, toInsert, clock.nowNs());
    const notInserted = toInsert.filter((a) => !inserted.has(a.id)).map((a) => a.id);
    const stored = new Map((await repo.findAccounts(tx, notInserted)).map((a) => [a.id, a]));
    inputs.forEach((a, i) => {
      if (results[i] !== 'ok' && results[i] !== 'exists') return;
      const first = firstIndex.get(a.id) as number;
      if (first === i) {
        const prior = stored.get(a.id);
        results[i] = prior === undefined ? 'ok' : sameAccount(a, prior) ? 'exists' : 'exists_with_different_fields';
      } else {
        const original = inputs[first];
        const prior = stored.get(a.id);
        const same = prior ? sameAccount(a, prior) : sameAccount(a, original);
        results[i] = same ? 'exists' : 'exists_with_different_fields';
      }
    });
    return results;
  }

  /**
   * Applies transfers inside the caller's transaction: lock the accounts in id order,
   * read the rows the batch refers to, decide in memory, write set-wise.
   */
  async function applyInTransaction(
    tx: Tx, items: TransferInput[], segmentEnds: number[] = [items.length], nowNs: bigint = clock.nowNs(),
  ): Promise<TransferResultCode[]> {
    return (await applyCore(tx, items, segmentEnds, nowNs)).results;
  }

  async function applyCore(
    tx: Tx, items: TransferInput[], segmentEnds: number[], nowNs: bigint, optimistic = false,
  ): Promise<{ results: TransferResultCode[]; expired: number }> {
    assert(items.length <= BATCH_MAX * 8, 'batch within limit');
    const due = await repo.findDuePending(tx, nowNs, EXPIRE_PER_BATCH_MAX);
    const pendingIds = new Set<string>();
    for (const t of items) if (t.pending_id !== null && (t.flags & (F.post_pending | F.void_pending)) !== 0) pendingIds.add(t.pending_id);
    const accountIds = new Set<string>();
    for (const t of items) {
      if (t.debit_account_id) accountIds.add(t.debit_account_id);
      if (t.credit_account_id) accountIds.add(t.credit_account_id);
    }
    for (const p of due) {
      accountIds.add(p.debit_account_id as string);
      accountIds.add(p.credit_account_id as string);
    }
    if (pendingIds.size > 0) {
      // A pending transfer's accounts never change, so they can be read before locking.
      for (const p of await repo.findTransferRows(tx, [...pendingIds])) {
        if (p.debit_account_id) accountIds.add(p.debit_account_id);
        if (p.credit_account_id) accountIds.add(p.credit_account_id);
      }
    }
    const sortedIds = [...accountIds].sort();
    const locked = await repo.lockAccounts(tx, sortedIds);
    const before = new Map(locked.map((a) => [a.id, { ...a }]));
    const accounts = new Map(locked.map((a) => [a.id, a]));
    // Read after locking: every status change of these rows happened under these locks.
    const rowIds = new Set<string>(pendingIds);
    if (!optimistic) for (const t of items) rowIds.add(t.id);
    for (const p of due) rowIds.add(p.id);
    const rows = new Map((await repo.findTransferRows(tx, [...rowIds])).map((r) => [r.id, r]));
    // A pending transfer committed by another writer between the unlocked read above and
    // the lock names accounts we have not locked: lock them too, then read those rows
    // again (a pending transfer's accounts never change, so one more round suffices).
    const missing = new Set<string>();
    for (const id of rowIds) {
      const row = rows.get(id);
      if (!row || row.failure !== null || (row.flags & F.pending) === 0) continue;
      for (const account of [row.debit_account_id, row.credit_account_id]) {
        if (account && !accounts.has(account)) missing.add(account);
      }
    }
    if (missing.size > 0) {
      for (const a of await repo.lockAccounts(tx, [...missing].sort())) {
        before.set(a.id, { ...a });
        accounts.set(a.id, a);
      }
      for (const r of await repo.findTransferRows(tx, [...rowIds].filter((id) => rows.has(id)))) rows.set(r.id, r);
    }
    const dueFresh = due.map((p) => rows.get(p.id)).filter((p): p is TransferRow => p !== undefined);

    const engine = new Engine({ accounts, rows }, nowNs);
    const expired = engine.expire(dueFresh);
    const out = engine.apply(items, segmentEnds);
    if (out.newRows.length > 0) {
      let ts = await repo.reserveTimestamps(tx, out.newRows.length, nowNs);
      for (const row of out.newRows) {
        row.ts = ts;
        ts += 1n;
      }
      const inserted = await repo.insertTransferRows(tx, out.newRows, optimistic);
      if (optimistic && inserted !== out.newRows.length) throw new OptimisticConflict();
    }
    const dirty: Account[] = [];
    for (const id of out.dirtyAccounts) dirty.push(accounts.get(id) as Account);
    await repo.updateAccountBalances(tx, dirty, before);
    await repo.updatePendingStatus(tx, out.statusChanges);
    return { results: out.results, expired };
  }

  /** Group-committed transfers (the HTTP API and hot callers). */
  function createTransfers(items: TransferInput[]): Promise<TransferResultCode[]> {
    if (items.length === 0) return Promise.resolve([]);
    return groupCommit.submit(items);
  }

  /** Voids pending transfers whose timeout passed; returns how many it voided. */
  async function expireDue(): Promise<number> {
    let total = 0;
    for (let round = 0; round < 64; round += 1) {
      const nowNs = clock.nowNs();
      const { expired } = await transact(db, (tx) => applyCore(tx, [], [], nowNs));
      total += expired;
      if (expired < EXPIRE_PER_BATCH_MAX) break;
    }
    return total;
  }

  async function getAccount(id: string): Promise<Account> {
    const [account] = await repo.findAccounts(db.kysely, [id]);
    if (!account) throw notFound('ACCOUNT_NOT_FOUND', `账户不存在 / account ${id} does not exist`);
    return account;
  }

  async function listEntries(id: string, limit: number, afterTs: bigint): Promise<{ entries: Entry[]; next_cursor: string | null }> {
    await getAccount(id);
    const capped = Math.max(1, Math.min(limit, ENTRIES_LIMIT_MAX));
    const rows = await repo.listEntries(db.kysely, id, afterTs, capped);
    const entries = rows.map((transfer): Entry => {
      const side = transfer.debit_account_id === id ? 'debit' : 'credit';
      return { transfer, side, balance_after: side === 'debit' ? transfer.dr : transfer.cr };
    });
    const next = rows.length === capped ? rows[rows.length - 1].ts.toString() : null;
    return { entries, next_cursor: next };
  }

  async function balanceAt(id: string, atNs: bigint): Promise<Balances> {
    const account = await getAccount(id);
    const zero = { debits_posted: 0n, credits_posted: 0n, debits_pending: 0n, credits_pending: 0n };
    if (atNs < account.ts) return zero;
    if ((account.flags & ACCOUNT_FLAGS.history) !== 0) {
      const last = await repo.lastEntryAtOrBefore(db.kysely, id, atNs);
      if (!last) return zero;
      const after = last.debit_account_id === id ? last.dr : last.cr;
      assert(after !== null, 'history accounts keep balance-after on every entry');
      return after;
    }
    return repo.balancesFromTransfers(db.kysely, id, atNs);
  }

  async function verify(): Promise<VerifyReport> {
    const totals = await repo.ledgerTotals(db.kysely);
    const ledgers = totals.map((t) => ({
      ledger: t.ledger,
      accounts: t.accounts.toString(),
      balanced: t.debits_posted === t.credits_posted && t.debits_pending === t.credits_pending,
      debits_posted: t.debits_posted, credits_posted: t.credits_posted,
      debits_pending: t.debits_pending, credits_pending: t.credits_pending,
    }));
    const accountsMismatched = await repo.accountMismatches(db.kysely, MISMATCHES_SHOWN_MAX);
    const historyMismatched = await repo.historyMismatches(db.kysely, MISMATCHES_SHOWN_MAX);
    const counts = await repo.countTransfers(db.kysely);
    return {
      balanced: ledgers.every((l) => l.balanced) && accountsMismatched.length === 0 && historyMismatched.length === 0,
      ledgers,
      accounts_mismatched: accountsMismatched,
      history_mismatched: historyMismatched,
      transfers_applied: counts.applied.toString(),
      transfers_failed: counts.failed.toString(),
    };
  }

  /**
   * Incremental verify for monitors: the per-ledger totals (cheap, over accounts) and the
   * balances of the accounts touched by transfers after `afterTs` (at most `limit` transfers).
   */
  async function verifySince(afterTs: bigint, limit: number) {
    const totals = await repo.ledgerTotals(db.kysely);
    const unbalanced = totals.filter((t) => t.debits_posted !== t.credits_posted || t.debits_pending !== t.credits_pending).map((t) => t.ledger);
    const touched = await repo.accountsTouchedSince(db.kysely, afterTs, limit);
    const mismatched = await repo.accountMismatchesAmong(db.kysely, touched.ids, MISMATCHES_SHOWN_MAX);
    return { unbalancedLedgers: unbalanced, accountsMismatched: mismatched, lastTs: touched.lastTs };
  }

  /** Set-wise reads for loss prevention (src/risk). */
  const reads = {
    transfersByRefs: (refs: string[], code: number) => repo.transfersByRefs(db.kysely, refs, code),
    sumPosted: (ids: string[]) => repo.sumPosted(db.kysely, ids),
    sumTransfersInto: (debitId: string, creditIds: string[]) => repo.sumTransfersInto(db.kysely, debitId, creditIds),
  };

  return {
    verifySince,
    reads,
    createAccounts,
    createAccountsIn,
    createTransfers,
    applyInTransaction,
    expireDue,
    getAccount,
    listEntries,
    balanceAt,
    verify,
    stats: groupCommit.stats,
  };
}

function validateAccount(a: AccountInput): AccountResultCode {
  if (!ID_PATTERN.test(a.id)) return 'id_invalid';
  if ((a.flags & ~ACCOUNT_FLAGS_ALL) !== 0) return 'flags_invalid';
  const both = ACCOUNT_FLAGS.debits_must_not_exceed_credits | ACCOUNT_FLAGS.credits_must_not_exceed_debits;
  if ((a.flags & both) === both) return 'flags_are_mutually_exclusive';
  if (!Number.isInteger(a.ledger) || a.ledger <= 0) return 'ledger_must_not_be_zero';
  if (!Number.isInteger(a.code) || a.code <= 0) return 'code_must_not_be_zero';
  return 'ok';
}

function sameAccount(a: AccountInput, b: AccountInput | Account): boolean {
  return a.ledger === b.ledger && a.code === b.code && a.flags === b.flags && a.ref === b.ref && a.metadata === b.metadata;
}
