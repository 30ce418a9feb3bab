// Ledger benchmark: Custos (group commit, set-wise) against a naive baseline (one
// transaction per transfer with row locks, 16 connections), same process, same data,
// same run. Prints one JSON line per (db, workload, impl).
//
//   node bench/ledger.ts [--quick] [--db postgres|pglite|both] [--workload hot|spread|both]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createScratchDatabase } from '../src/platform/pg-admin.ts';
import { openDatabase, sql, type Database } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { systemClock } from '../src/platform/clock.ts';
import { createLedger } from '../src/ledger/ledger.service.ts';
import { ACCOUNT_FLAGS, type TransferInput } from '../src/ledger/types.ts';

const ACCOUNTS = 10_000;
const CALLERS = 256;
const PER_REQUEST = 32;
const NAIVE_CONNECTIONS = 16;

interface Result {
  bench: 'ledger'; db: string; workload: string; impl: string;
  transfers: number; tps: number; p99_ms: number; seconds: number; callers: number; per_request: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))];
}

function freshPostgres() {
  return createScratchDatabase(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres', 'custos_bench');
}

let seq = 0;
const uid = (prefix: string) => `${prefix}${(seq++).toString(36)}`;

/** Accounts: src0..src9999 (must not overdraw, funded), hot (history), fund. */
async function setup(db: Database): Promise<void> {
  const ledger = createLedger({ db, clock: systemClock });
  const accounts = [];
  for (let i = 0; i < ACCOUNTS; i += 1) {
    accounts.push({ id: `src${i}`, ledger: 1, code: 10, flags: ACCOUNT_FLAGS.debits_must_not_exceed_credits, ref: null, metadata: null });
  }
  accounts.push({ id: 'hot', ledger: 1, code: 20, flags: ACCOUNT_FLAGS.history, ref: null, metadata: null });
  accounts.push({ id: 'fund', ledger: 1, code: 30, flags: 0, ref: null, metadata: null });
  for (let i = 0; i < accounts.length; i += 8190) await ledger.createAccounts(accounts.slice(i, i + 8190));
  const funding: TransferInput[] = [];
  for (let i = 0; i < ACCOUNTS; i += 1) funding.push(transfer(uid('f'), 'fund', `src${i}`, 1_000_000_000_000n));
  for (let i = 0; i < funding.length; i += 8190) await ledger.createTransfers(funding.slice(i, i + 8190));
}

function transfer(id: string, debit: string, credit: string, amount: bigint): TransferInput {
  return { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: 1, code: 1, flags: 0, pending_id: null, timeout_s: 0, ref: null, metadata: null };
}

function nextTransfer(workload: string): TransferInput {
  const a = Math.floor(Math.random() * ACCOUNTS);
  if (workload === 'hot') return transfer(uid('h'), `src${a}`, 'hot', BigInt(1 + Math.floor(Math.random() * 1000)));
  let b = Math.floor(Math.random() * (ACCOUNTS - 1));
  if (b >= a) b += 1;
  return transfer(uid('s'), `src${a}`, `src${b}`, BigInt(1 + Math.floor(Math.random() * 1000)));
}

async function runCustos(db: Database, workload: string, total: number): Promise<Omit<Result, 'bench' | 'db' | 'workload'>> {
  const ledger = createLedger({ db, clock: systemClock, concurrency: process.env.CUSTOS_LEDGER_CONCURRENCY ? Number(process.env.CUSTOS_LEDGER_CONCURRENCY) : undefined });
  const latencies: number[] = [];
  let sent = 0;
  let applied = 0;
  const started = performance.now();
  async function caller() {
    while (sent < total) {
      const n = Math.min(PER_REQUEST, total - sent);
      sent += n;
      const items: TransferInput[] = [];
      for (let i = 0; i < n; i += 1) items.push(nextTransfer(workload));
      const t0 = performance.now();
      const results = await ledger.createTransfers(items);
      latencies.push(performance.now() - t0);
      for (const r of results) if (r === 'ok') applied += 1;
    }
  }
  await Promise.all(Array.from({ length: CALLERS }, caller));
  const seconds = (performance.now() - started) / 1000;
  if (applied !== total) throw new Error(`custos applied ${applied} of ${total}`);
  latencies.sort((x, y) => x - y);
  return { impl: 'custos', transfers: total, tps: Math.round(total / seconds), p99_ms: round2(percentile(latencies, 0.99)), seconds: round2(seconds), callers: CALLERS, per_request: PER_REQUEST };
}

/** The baseline: each transfer its own transaction, accounts locked FOR UPDATE. */
async function runNaive(db: Database, workload: string, total: number, secondsMax: number): Promise<Omit<Result, 'bench' | 'db' | 'workload'>> {
  const latencies: number[] = [];
  let sent = 0;
  let done = 0;
  const started = performance.now();
  const deadline = started + secondsMax * 1000;
  async function worker() {
    while (sent < total && performance.now() < deadline) {
      sent += 1;
      const t = nextTransfer(workload);
      const t0 = performance.now();
      await db.kysely.transaction().execute(async (tx) => {
        const ids = [t.debit_account_id as string, t.credit_account_id as string].sort();
        const accts = await sql<{ id: string; flags: number; debits_posted: bigint; credits_posted: bigint; debits_pending: bigint }>`
          SELECT id, flags, debits_posted, credits_posted, debits_pending FROM ledger_accounts
          WHERE id = ANY(${ids}::text[]) ORDER BY id FOR UPDATE`.execute(tx);
        const exists = await sql`SELECT 1 FROM ledger_transfers WHERE id = ${t.id}`.execute(tx);
        if (exists.rows.length > 0) return;
        const dr = accts.rows.find((a) => a.id === t.debit_account_id);
        if (!dr || dr.debits_posted + dr.debits_pending + (t.amount as bigint) > dr.credits_posted) throw new Error('naive: limit');
        const amount = (t.amount as bigint).toString();
        await sql`UPDATE ledger_accounts SET debits_posted = debits_posted + ${amount}::int8, version = version + 1 WHERE id = ${t.debit_account_id}`.execute(tx);
        const cr = await sql<{ flags: number; debits_posted: bigint; credits_posted: bigint; debits_pending: bigint; credits_pending: bigint }>`
          UPDATE ledger_accounts SET credits_posted = credits_posted + ${amount}::int8, version = version + 1 WHERE id = ${t.credit_account_id}
          RETURNING flags, debits_posted, credits_posted, debits_pending, credits_pending`.execute(tx);
        const c = cr.rows[0];
        const history = (c.flags & ACCOUNT_FLAGS.history) !== 0;
        const ts = await sql<{ ts: bigint }>`UPDATE ledger_clock SET ts = GREATEST(ts + 1, ${Date.now() * 1_000_000}::int8) RETURNING ts`.execute(tx);
        await sql`INSERT INTO ledger_transfers (id, ts, debit_account_id, credit_account_id, amount, ledger, code, flags,
            cr_debits_posted, cr_credits_posted, cr_debits_pending, cr_credits_pending)
          VALUES (${t.id}, ${ts.rows[0].ts.toString()}::int8, ${t.debit_account_id}, ${t.credit_account_id}, ${amount}::int8, 1, 1, 0,
            ${history ? c.debits_posted.toString() : null}::int8, ${history ? c.credits_posted.toString() : null}::int8,
            ${history ? c.debits_pending.toString() : null}::int8, ${history ? c.credits_pending.toString() : null}::int8)`.execute(tx);
      });
      latencies.push(performance.now() - t0);
      done += 1;
    }
  }
  await Promise.all(Array.from({ length: db.kind === 'pglite' ? 1 : NAIVE_CONNECTIONS }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((x, y) => x - y);
  return { impl: 'naive', transfers: done, tps: Math.round(done / seconds), p99_ms: round2(percentile(latencies, 0.99)), seconds: round2(seconds), callers: db.kind === 'pglite' ? 1 : NAIVE_CONNECTIONS, per_request: 1 };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

export async function benchLedger(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { quick: { type: 'boolean', default: false }, db: { type: 'string', default: 'both' }, workload: { type: 'string', default: 'both' } },
  });
  const dbs = values.db === 'both' ? ['postgres', 'pglite'] : [values.db as string];
  const workloads = values.workload === 'both' ? ['hot', 'spread'] : [values.workload as string];
  for (const kind of dbs) {
    for (const workload of workloads) {
      const custosTotal = kind === 'pglite' ? (values.quick ? 40_000 : 200_000) : values.quick ? 200_000 : 1_000_000;
      const naiveSeconds = values.quick ? 3 : 10;
      let drop = async () => {};
      let db: Database;
      if (kind === 'postgres') {
        const fresh = await freshPostgres();
        drop = fresh.drop;
        db = await openDatabase({ databaseUrl: fresh.url, poolSize: NAIVE_CONNECTIONS });
      } else {
        db = await openDatabase({ dataDir: null });
      }
      try {
        await migrate(db);
        await setup(db);
        const custos = await runCustos(db, workload, custosTotal);
        const naive = await runNaive(db, workload, custosTotal, naiveSeconds);
        const verify = await createLedger({ db, clock: systemClock }).verify();
        for (const r of [custos, naive]) {
          console.log(JSON.stringify({ bench: 'ledger', db: kind, workload, ...r, balanced: verify.balanced }));
        }
        console.log(JSON.stringify({ bench: 'ledger', db: kind, workload, impl: 'ratio', custos_over_naive: round2(custos.tps / Math.max(1, naive.tps)) }));
      } finally {
        await db.close();
        await drop();
      }
    }
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await benchLedger(process.argv.slice(2));
}
