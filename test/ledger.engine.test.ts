// The ledger's semantics, case by case, through the service (group commit) on a real
// database: pending/post/void, expiry, closing, linked chains, limits, overflow,
// idempotency, history and point-in-time balances, and rollback with the caller.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openTestDb, createPgDatabase, PG_ONLY, type TestDb } from './helpers.ts';
import { openDatabase } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { createLedger, type Ledger } from '../src/ledger/index.ts';
import { ACCOUNT_FLAGS as A, TRANSFER_FLAGS as F, type TransferInput } from '../src/ledger/types.ts';
import { ManualClock, systemClock } from '../src/platform/clock.ts';
import { INT8_MAX } from '../src/platform/money.ts';

let t: TestDb;
let ledger: Ledger;
const clock = new ManualClock();
let n = 0;

before(async () => {
  t = await openTestDb();
  ledger = createLedger({ db: t.db, clock });
});
after(async () => t.close());

/** Fresh accounts with unique ids; returns their ids. */
async function accounts(...flags: number[]): Promise<string[]> {
  const ids = flags.map(() => `acc${n++}`);
  const results = await ledger.createAccounts(ids.map((id, i) => ({ id, ledger: 1, code: 10, flags: flags[i], ref: null, metadata: null })));
  assert.deepEqual(results, ids.map(() => 'ok'));
  return ids;
}

function tr(dr: string | null, cr: string | null, amount: bigint | null, extra: Partial<TransferInput> = {}): TransferInput {
  return { id: `t${n++}`, debit_account_id: dr, credit_account_id: cr, amount, ledger: 1, code: 1, flags: 0, pending_id: null, timeout_s: 0, ref: null, metadata: null, ...extra };
}

async function balances(id: string) {
  const a = await ledger.getAccount(id);
  return [a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending];
}

test('a plain transfer moves posted balances and bumps versions', async () => {
  const [a, b] = await accounts(0, 0);
  assert.deepEqual(await ledger.createTransfers([tr(a, b, 250n)]), ['ok']);
  assert.deepEqual(await balances(a), [250n, 0n, 0n, 0n]);
  assert.deepEqual(await balances(b), [0n, 250n, 0n, 0n]);
  assert.equal((await ledger.getAccount(a)).version, 1n);
});

test('pending holds, partial post posts part and releases the rest, a second post is refused', async () => {
  const [a, b] = await accounts(0, 0);
  const p = tr(a, b, 100n, { flags: F.pending });
  assert.deepEqual(await ledger.createTransfers([p]), ['ok']);
  assert.deepEqual(await balances(a), [0n, 0n, 100n, 0n]);
  const post = tr(null, null, 60n, { flags: F.post_pending, pending_id: p.id, ledger: 0, code: 0 });
  assert.deepEqual(await ledger.createTransfers([post]), ['ok']);
  assert.deepEqual(await balances(a), [60n, 0n, 0n, 0n]);
  assert.deepEqual(await balances(b), [0n, 60n, 0n, 0n]);
  const again = tr(null, null, null, { flags: F.post_pending, pending_id: p.id, ledger: 0, code: 0 });
  const voided = tr(null, null, null, { flags: F.void_pending, pending_id: p.id, ledger: 0, code: 0 });
  assert.deepEqual(await ledger.createTransfers([again, voided]), ['pending_already_resolved', 'pending_already_resolved']);
  // the retried post with the same fields is 'exists'
  assert.deepEqual(await ledger.createTransfers([post]), ['exists']);
});

test('post above the pending amount, void with another amount, and unknown pending are refused', async () => {
  const [a, b] = await accounts(0, 0);
  const p = tr(a, b, 100n, { flags: F.pending });
  await ledger.createTransfers([p]);
  const results = await ledger.createTransfers([
    tr(null, null, 101n, { flags: F.post_pending, pending_id: p.id }),
    tr(null, null, 99n, { flags: F.void_pending, pending_id: p.id }),
    tr(null, null, null, { flags: F.void_pending, pending_id: 'nope' }),
    tr(b, a, null, { flags: F.void_pending, pending_id: p.id }),
  ]);
  assert.deepEqual(results, ['exceeds_pending_amount', 'pending_amount_mismatch', 'pending_not_found', 'pending_mismatch']);
  assert.deepEqual(await ledger.createTransfers([tr(null, null, null, { flags: F.void_pending, pending_id: p.id })]), ['ok']);
  assert.deepEqual(await balances(a), [0n, 0n, 0n, 0n]);
});

test('an expired pending transfer is voided by the ledger and cannot be posted', async () => {
  const [a, b] = await accounts(A.history, 0);
  const p = tr(a, b, 70n, { flags: F.pending, timeout_s: 30 });
  await ledger.createTransfers([p]);
  clock.advanceSeconds(29);
  assert.equal(await ledger.expireDue(), 0);
  clock.advanceSeconds(2);
  assert.equal(await ledger.expireDue(), 1);
  assert.deepEqual(await balances(a), [0n, 0n, 0n, 0n]);
  assert.deepEqual(await ledger.createTransfers([tr(null, null, null, { flags: F.post_pending, pending_id: p.id })]), ['pending_expired']);
  const { entries } = await ledger.listEntries(a, 10, 0n);
  assert.equal(entries.length, 2);
  assert.equal(entries[1].transfer.id, `#expire:${p.id}`);
  assert.deepEqual(entries[1].balance_after, { debits_posted: 0n, credits_posted: 0n, debits_pending: 0n, credits_pending: 0n });
});

test('a batch expires due pending transfers before it applies its own', async () => {
  const [a, b] = await accounts(A.debits_must_not_exceed_credits, 0);
  await ledger.createTransfers([tr(b, a, 100n)]);
  await ledger.createTransfers([tr(a, b, 100n, { flags: F.pending, timeout_s: 5 })]);
  assert.deepEqual(await ledger.createTransfers([tr(a, b, 1n)]), ['exceeds_credits']);
  clock.advanceSeconds(6);
  // no sweep called: the next batch voids the expired hold first
  assert.deepEqual(await ledger.createTransfers([tr(a, b, 100n)]), ['ok']);
});

test('limits: debits_must_not_exceed_credits and credits_must_not_exceed_debits, pending counts', async () => {
  const [a, b, c] = await accounts(A.debits_must_not_exceed_credits, 0, A.credits_must_not_exceed_debits);
  await ledger.createTransfers([tr(b, a, 100n)]);
  assert.deepEqual(await ledger.createTransfers([tr(a, b, 60n, { flags: F.pending }), tr(a, b, 41n), tr(a, b, 40n)]), ['ok', 'exceeds_credits', 'ok']);
  assert.deepEqual(await ledger.createTransfers([tr(b, c, 1n)]), ['exceeds_debits']);
  await ledger.createTransfers([tr(c, b, 5n)]);
  assert.deepEqual(await ledger.createTransfers([tr(b, c, 5n), tr(b, c, 1n)]), ['ok', 'exceeds_debits']);
});

test('overflow of int8 is refused, not wrapped', async () => {
  const [a, b] = await accounts(0, 0);
  assert.deepEqual(await ledger.createTransfers([tr(a, b, INT8_MAX), tr(a, b, 1n)]), ['ok', 'overflows']);
  assert.deepEqual(await balances(b), [0n, INT8_MAX, 0n, 0n]);
});

test('closing_debit closes an account; transfers to it fail; voiding reopens it', async () => {
  const [a, b, c] = await accounts(0, 0, 0);
  const closing = tr(a, b, 1n, { flags: F.pending | F.closing_debit });
  assert.deepEqual(await ledger.createTransfers([closing]), ['ok']);
  assert.equal((await ledger.getAccount(a)).closed, true);
  assert.deepEqual(await ledger.createTransfers([tr(c, a, 5n)]), ['account_closed']);
  assert.deepEqual(await ledger.createTransfers([tr(null, null, null, { flags: F.void_pending, pending_id: closing.id })]), ['ok']);
  assert.equal((await ledger.getAccount(a)).closed, false);
  assert.deepEqual(await ledger.createTransfers([tr(c, a, 5n)]), ['ok']);
  assert.deepEqual(await ledger.createTransfers([tr(a, b, 1n, { flags: F.closing_credit })]), ['closing_transfer_must_be_pending']);
});

test('a linked chain commits as one; a failure fails every event and the ids stay failed', async () => {
  const [a, b] = await accounts(A.debits_must_not_exceed_credits, 0);
  await ledger.createTransfers([tr(b, a, 100n)]);
  const ok1 = tr(a, b, 10n, { flags: F.linked });
  const ok2 = tr(a, b, 20n);
  assert.deepEqual(await ledger.createTransfers([ok1, ok2]), ['ok', 'ok']);
  const c1 = tr(a, b, 30n, { flags: F.linked });
  const c2 = tr(a, b, 40n, { flags: F.linked });
  const c3 = tr(a, b, 1n, { flags: F.linked });
  const c4 = tr(a, b, 1n);
  const after = tr(a, b, 5n);
  assert.deepEqual(await ledger.createTransfers([c1, c2, c3, c4, after]), ['linked_event_failed', 'linked_event_failed', 'exceeds_credits', 'linked_event_failed', 'ok']);
  assert.deepEqual(await balances(a), [35n, 100n, 0n, 0n]);
  // a retry can never move money later
  assert.deepEqual(await ledger.createTransfers([c1, c2]), ['id_already_failed', 'linked_event_failed']);
  assert.deepEqual(await ledger.createTransfers([{ ...c2, flags: 0 }]), ['id_already_failed']);
  // a chain left open at the end of a request fails
  const o1 = tr(a, b, 1n, { flags: F.linked });
  const o2 = tr(a, b, 1n, { flags: F.linked });
  assert.deepEqual(await ledger.createTransfers([o1, o2]), ['linked_event_failed', 'linked_event_chain_open']);
  assert.deepEqual(await balances(a), [35n, 100n, 0n, 0n]);
});

test('a chain does not cross two callers\' requests gathered into one batch', async () => {
  const [a, b] = await accounts(0, 0);
  const open = tr(a, b, 1n, { flags: F.linked });
  const other = tr(a, b, 2n);
  const [r1, r2] = await Promise.all([ledger.createTransfers([open]), ledger.createTransfers([other])]);
  assert.deepEqual(r1, ['linked_event_chain_open']);
  assert.deepEqual(r2, ['ok']);
});

test('idempotency: same id same fields → exists, different → exists_with_different_fields, failed → id_already_failed', async () => {
  const [a, b, c] = await accounts(A.debits_must_not_exceed_credits, 0, 0);
  const x = tr(b, c, 5n, { ref: 'order-1', metadata: '{"k":1}' });
  assert.deepEqual(await ledger.createTransfers([x, x, { ...x, amount: 6n }, { ...x, ref: 'order-2' }]), ['ok', 'exists', 'exists_with_different_fields', 'exists_with_different_fields']);
  const y = tr(a, b, 5n);
  assert.deepEqual(await ledger.createTransfers([y]), ['exceeds_credits']);
  await ledger.createTransfers([tr(b, a, 100n)]);
  assert.deepEqual(await ledger.createTransfers([y]), ['id_already_failed']);
  assert.deepEqual(await balances(b), [105n, 0n, 0n, 0n]);
});

test('validation failures are named and recorded', async () => {
  const [a, b] = await accounts(0, 0);
  const [c] = await (async () => {
    const id = `acc${n++}`;
    await ledger.createAccounts([{ id, ledger: 2, code: 1, flags: 0, ref: null, metadata: null }]);
    return [id];
  })();
  const results = await ledger.createTransfers([
    tr(a, a, 1n), tr(a, b, 0n), tr(a, 'missing', 1n), tr(a, c, 1n), tr(a, b, 1n, { ledger: 0 }), tr(a, b, 1n, { code: 0 }),
    tr(a, b, 1n, { timeout_s: 5 }), tr(a, b, 1n, { flags: F.pending | F.post_pending }), tr(a, b, 1n, { flags: 1024 }),
    tr(null, null, null, { flags: F.post_pending }), tr(a, b, 1n, { id: 'bad id' }),
  ]);
  assert.deepEqual(results, [
    'accounts_must_be_different', 'amount_must_be_positive', 'account_not_found', 'ledger_mismatch', 'ledger_must_not_be_zero',
    'code_must_not_be_zero', 'timeout_reserved_for_pending_transfer', 'flags_are_mutually_exclusive', 'flags_invalid',
    'pending_id_must_not_be_empty', 'id_invalid',
  ]);
  assert.deepEqual(await balances(a), [0n, 0n, 0n, 0n]);
});

test('accounts: exists, exists_with_different_fields, invalid fields', async () => {
  const id = `acc${n++}`;
  const base = { id, ledger: 1, code: 10, flags: 0, ref: 'owner-1', metadata: null };
  assert.deepEqual(await ledger.createAccounts([base, base, { ...base, code: 11 }]), ['ok', 'exists', 'exists_with_different_fields']);
  assert.deepEqual(await ledger.createAccounts([base, { ...base, ref: null }]), ['exists', 'exists_with_different_fields']);
  assert.deepEqual(await ledger.createAccounts([
    { ...base, id: '' }, { ...base, id: `x${n++}`, ledger: 0 }, { ...base, id: `x${n++}`, code: 0 },
    { ...base, id: `x${n++}`, flags: 3 }, { ...base, id: `x${n++}`, flags: 64 },
  ]), ['id_invalid', 'ledger_must_not_be_zero', 'code_must_not_be_zero', 'flags_are_mutually_exclusive', 'flags_invalid']);
});

test('history: balance-after on every entry; balance at a point in time, with and without history', async () => {
  const [h, plain] = await accounts(A.history, 0);
  const t0 = clock.nowNs();
  clock.advanceSeconds(10);
  await ledger.createTransfers([tr(plain, h, 100n)]);
  const t1 = clock.nowNs();
  clock.advanceSeconds(10);
  const p = tr(h, plain, 30n, { flags: F.pending });
  await ledger.createTransfers([p]);
  const t2 = clock.nowNs();
  clock.advanceSeconds(10);
  await ledger.createTransfers([tr(null, null, 20n, { flags: F.post_pending, pending_id: p.id })]);
  const t3 = clock.nowNs();
  const page1 = await ledger.listEntries(h, 2, 0n);
  assert.equal(page1.entries.length, 2);
  assert.ok(page1.next_cursor);
  const page2 = await ledger.listEntries(h, 2, BigInt(page1.next_cursor as string));
  assert.equal(page2.entries.length, 1);
  assert.deepEqual(page2.entries[0].balance_after, { debits_posted: 20n, credits_posted: 100n, debits_pending: 0n, credits_pending: 0n });
  for (const id of [h, plain]) {
    const before = await ledger.balanceAt(id, t0);
    assert.deepEqual(before, { debits_posted: 0n, credits_posted: 0n, debits_pending: 0n, credits_pending: 0n });
  }
  const side = async (id: string, at: bigint) => Object.values(await ledger.balanceAt(id, at));
  assert.deepEqual(await side(h, t1), [0n, 100n, 0n, 0n]);
  assert.deepEqual(await side(h, t2), [0n, 100n, 30n, 0n]);
  assert.deepEqual(await side(h, t3), [20n, 100n, 0n, 0n]);
  assert.deepEqual(await side(plain, t1), [100n, 0n, 0n, 0n]);
  assert.deepEqual(await side(plain, t2), [100n, 0n, 0n, 30n]);
  assert.deepEqual(await side(plain, t3), [100n, 20n, 0n, 0n]);
});

test('applyInTransaction commits or rolls back with the caller\'s transaction', async () => {
  const [a, b] = await accounts(0, 0);
  const x = tr(a, b, 9n);
  await assert.rejects(t.db.kysely.transaction().execute(async (tx) => {
    assert.deepEqual(await ledger.applyInTransaction(tx, [x]), ['ok']);
    throw new Error('business step failed');
  }), /business step failed/);
  assert.deepEqual(await balances(a), [0n, 0n, 0n, 0n]);
  await t.db.kysely.transaction().execute(async (tx) => {
    assert.deepEqual(await ledger.applyInTransaction(tx, [x]), ['ok']);
  });
  assert.deepEqual(await balances(a), [9n, 0n, 0n, 0n]);
});

test('verify finds a tampered balance', async () => {
  const [a, b] = await accounts(0, 0);
  await ledger.createTransfers([tr(a, b, 10n)]);
  assert.equal((await ledger.verify()).balanced, true);
  await t.db.kysely.updateTable('ledger_accounts').set({ credits_posted: 11n as never }).where('id', '=', b).execute();
  const report = await ledger.verify();
  assert.equal(report.balanced, false);
  assert.ok(report.accounts_mismatched.some((m) => m.id === b));
  await t.db.kysely.updateTable('ledger_accounts').set({ credits_posted: 10n as never }).where('id', '=', b).execute();
  assert.equal((await ledger.verify()).balanced, true);
});

// --- regressions found by the model-based and concurrency tests -------------------

test('a duplicate made inside a failed chain is not reported as existing', async () => {
  const [a, b] = await accounts(0, 0);
  const x = tr(a, b, 10n, { flags: F.linked });
  const bad = tr(a, b, 0n);
  assert.deepEqual(await ledger.createTransfers([x, x, bad]), ['linked_event_failed', 'linked_event_failed', 'amount_must_be_positive']);
  assert.deepEqual(await ledger.createTransfers([{ ...x, flags: 0 }]), ['id_already_failed']);
  assert.deepEqual(await balances(a), [0n, 0n, 0n, 0n]);
});

test('posting a closing transfer does not bypass a side closed by another transfer', async () => {
  const [a, b, c] = await accounts(0, 0, 0);
  const p1 = tr(a, b, 10n, { flags: F.pending | F.closing_debit });
  const p2 = tr(c, b, 1n, { flags: F.pending | F.closing_credit });
  assert.deepEqual(await ledger.createTransfers([p1, p2]), ['ok', 'ok']);
  assert.deepEqual(await ledger.createTransfers([tr(null, null, null, { flags: F.post_pending, pending_id: p1.id })]), ['account_closed']);
  assert.deepEqual(await ledger.createTransfers([tr(null, null, null, { flags: F.post_pending, pending_id: p2.id })]), ['ok']);
  assert.deepEqual(await balances(b), [0n, 1n, 0n, 10n]);
});

test('a post whose pending transfer commits while the batch waits for a lock (PostgreSQL)', { skip: PG_ONLY }, async () => {
  const created = await createPgDatabase();
  const db1 = await openDatabase({ databaseUrl: created.url });
  const db2 = await openDatabase({ databaseUrl: created.url });
  const blocker = new pg.Client({ connectionString: created.url });
  try {
    await migrate(db1);
    const node1 = createLedger({ db: db1, clock: systemClock });
    const node2 = createLedger({ db: db2, clock: systemClock });
    await node1.createAccounts(['A', 'B', 'X', 'Z'].map((id) => ({ id, ledger: 1, code: 1, flags: 0, ref: null, metadata: null })));
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM ledger_accounts WHERE id = 'X' FOR UPDATE`);
    // node2 reads (no 'p' yet), then waits on X; meanwhile node1 commits the pending transfer p
    const posting = node2.createTransfers([tr('X', 'Z', 5n, { id: 'y1' }), tr(null, null, null, { id: 'post-p', flags: F.post_pending, pending_id: 'p' })]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(await node1.createTransfers([tr('A', 'B', 10n, { id: 'p', flags: F.pending })]), ['ok']);
    await blocker.query('COMMIT');
    assert.deepEqual(await posting, ['ok', 'ok']);
    assert.equal((await node1.verify()).balanced, true);
  } finally {
    await blocker.end().catch(() => undefined);
    await db1.close();
    await db2.close();
    await created.drop();
  }
});
