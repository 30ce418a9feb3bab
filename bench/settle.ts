// Settlement benchmark: one settlement run (batch, settlements, entry binding, payout
// holds on the ledger, payout rows) over N merchants with 10 available entries each,
// on PostgreSQL, against a naive baseline in the same run: a per-merchant loop (one
// transaction and a handful of queries per merchant) over a slice, reporting its rate.
// Data is seeded set-wise in SQL (not through the API): parties, settlement entries,
// and one funding transfer per merchant so the ledger balances and verify() is clean.
// Sending payouts to the bank is not part of the run and not timed here.
//
//   node bin/custos.js bench settle [--quick]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createScratchDatabase } from '../src/platform/pg-admin.ts';
import { openDatabase, sql, transact, type Database } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { systemClock } from '../src/platform/clock.ts';
import { createLedger } from '../src/ledger/ledger.service.ts';
import { ACCOUNT_FLAGS, TRANSFER_FLAGS } from '../src/ledger/types.ts';
import { createSettlementService } from '../src/settlement/settlement.service.ts';
import type { ChannelAdapter } from '../src/channel/contract.ts';

const ENTRIES_PER_MERCHANT = 10;
const SETTLE_DATE = '2026-11-20';
const IF_CODE = 'bench';

interface Line {
  bench: 'settle'; db: 'postgres'; impl: string; merchants: number; entries: number; settlements: number; seconds: number;
  merchants_per_s: number; entries_per_s: number; projected_s_for_all?: number; net_fen?: string; ledger_balanced?: boolean;
}

const print = (line: Line) => process.stdout.write(JSON.stringify(line) + '\n');

function freshPostgres() {
  return createScratchDatabase(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres', 'custos_bench');
}

/** The bank channel of the run: the run only needs its ifCode (payouts are not sent here). */
const bankChannel = { ifCode: IF_CODE } as ChannelAdapter;

/** Merchants prefix0..prefix{n-1}: a party each, 10 entries available by SETTLE_DATE, and the ledger funded to match. */
async function seed(db: Database, prefix: string, n: number): Promise<void> {
  const q = db.kysely;
  const flags = ACCOUNT_FLAGS.debits_must_not_exceed_credits | ACCOUNT_FLAGS.history;
  await sql`INSERT INTO settle_parties (party_id, kind, mch_no, name, cycle, if_code, account_no)
    SELECT 'mch:' || ${prefix} || g || ':pending', 'merchant', ${prefix} || g, '商户' || g, 'T1', ${IF_CODE}, '6222' || lpad(g::text, 12, '0')
    FROM generate_series(0, ${n - 1}) g`.execute(q);
  // 8 payments and 2 fees per merchant, available on days up to the settlement date.
  await sql`INSERT INTO settle_entries (party_id, kind, ref, amount_fen, available_on)
    SELECT 'mch:' || ${prefix} || g || ':pending', CASE WHEN k < 8 THEN 'payment' ELSE 'fee' END, 'P' || ${prefix} || g || '-' || k,
      CASE WHEN k < 8 THEN ((g * 7919 + k * 104729) % 99900) + 100 ELSE -(((g * 31 + k) % 50) + 1) END,
      ${SETTLE_DATE}::date - (k % 3)
    FROM generate_series(0, ${n - 1}) g CROSS JOIN generate_series(0, ${ENTRIES_PER_MERCHANT - 1}) k`.execute(q);
  await sql`INSERT INTO ledger_accounts (id, ledger, code, flags, ref, ts)
    SELECT 'mch:' || ${prefix} || g || ':pending', 1, 2001, ${flags}, 'merchant:' || ${prefix} || g, 1 FROM generate_series(0, ${n - 1}) g`.execute(q);
  await sql`INSERT INTO ledger_accounts (id, ledger, code, flags, ref, ts) VALUES (${`ch:${IF_CODE}:clearing`}, 1, 1001, 0, ${`channel:${IF_CODE}`}, 1)
    ON CONFLICT (id) DO NOTHING`.execute(q);
  // One funding transfer per merchant (channel clearing → merchant pending) for what its entries add up to.
  await sql`WITH sums AS (SELECT party_id, sum(amount_fen)::int8 AS s, row_number() OVER (ORDER BY party_id) AS n FROM settle_entries WHERE party_id LIKE ${`mch:${prefix}%`} GROUP BY party_id),
      base AS (SELECT ts FROM ledger_clock)
    INSERT INTO ledger_transfers (id, ts, debit_account_id, credit_account_id, amount, ledger, code, flags, ref, cr_debits_posted, cr_credits_posted, cr_debits_pending, cr_credits_pending)
    SELECT 'seed:' || party_id, base.ts + n, ${`ch:${IF_CODE}:clearing`}, party_id, s, 1, 101, 0, 'seed', 0, s, 0, 0 FROM sums, base`.execute(q);
  await sql`UPDATE ledger_accounts a SET credits_posted = t.amount FROM ledger_transfers t WHERE t.id = 'seed:' || a.id AND a.id LIKE ${`mch:${prefix}%`}`.execute(q);
  await sql`UPDATE ledger_accounts SET debits_posted = debits_posted + (SELECT sum(amount) FROM ledger_transfers WHERE id LIKE ${`seed:mch:${prefix}%`})
    WHERE id = ${`ch:${IF_CODE}:clearing`}`.execute(q);
  await sql`UPDATE ledger_clock SET ts = (SELECT max(ts) FROM ledger_transfers)`.execute(q);
  await sql`ANALYZE`.execute(q);
}

/** The baseline: for each merchant, one transaction that reads, inserts and posts just for it. */
async function naiveRun(db: Database, prefix: string, n: number): Promise<number> {
  const ledger = createLedger({ db, clock: systemClock });
  const batchId = 'NAIVE';
  await sql`INSERT INTO settle_batches (batch_id, settle_date, state, max_entry_id) VALUES (${batchId}, ${SETTLE_DATE}::date, 'building', (SELECT max(id) FROM settle_entries))`.execute(db.kysely);
  let settled = 0;
  for (let g = 0; g < n; g += 1) {
    const party = `mch:${prefix}${g}:pending`;
    await transact(db, async (tx) => {
      const open = (await sql<{ s: bigint | null; c: bigint }>`SELECT sum(amount_fen)::int8 AS s, count(*)::int8 AS c FROM settle_entries WHERE party_id = ${party} AND settlement_id IS NULL AND available_on <= ${SETTLE_DATE}::date`.execute(tx)).rows[0];
      const held = (await sql<{ s: bigint | null }>`SELECT sum(amount_fen)::int8 AS s FROM settle_holds WHERE party_id = ${party} AND state = 'open'`.execute(tx)).rows[0].s ?? 0n;
      const net = (open.s ?? 0n) - held;
      if (net <= 0n) return;
      const id = `N${g}`;
      await sql`INSERT INTO settle_settlements (settlement_id, batch_id, party_id, gross_fen, fee_fen, refund_fen, other_fen, hold_fen, net_fen, entries, state)
        VALUES (${id}, ${batchId}, ${party}, ${net}, 0, 0, 0, ${held}, ${net}, ${Number(open.c)}, 'paying')`.execute(tx);
      await sql`UPDATE settle_entries SET settlement_id = ${id} WHERE party_id = ${party} AND settlement_id IS NULL AND available_on <= ${SETTLE_DATE}::date`.execute(tx);
      const [r] = await ledger.applyInTransaction(tx, [{ id: `stl:PN${g}`, debit_account_id: party, credit_account_id: `ch:${IF_CODE}:clearing`, amount: net, ledger: 1, code: 210, flags: TRANSFER_FLAGS.pending, pending_id: null, timeout_s: 0, ref: null, metadata: null }]);
      if (r !== 'ok') throw new Error(`naive payout hold ${r}`);
      await sql`INSERT INTO settle_payouts (payout_id, settlement_id, party_id, amount_fen, if_code, account_no, state) VALUES (${`PN${g}`}, ${id}, ${party}, ${net}, ${IF_CODE}, '', 'created')`.execute(tx);
      await sql`INSERT INTO settle_entries (party_id, kind, ref, amount_fen, available_on, settlement_id) VALUES (${party}, 'payout', ${`PN${g}`}, ${-net}, ${SETTLE_DATE}::date, ${id})`.execute(tx);
      settled += 1;
    });
  }
  return settled;
}

export async function benchSettle(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, merchants: { type: 'string' }, naive: { type: 'string' } } });
  const merchants = values.merchants ? Number(values.merchants) : values.quick ? 10_000 : 100_000;
  const naiveMerchants = values.naive ? Number(values.naive) : values.quick ? 500 : 2_000;
  const entries = merchants * ENTRIES_PER_MERCHANT;

  // Custos: one run over all merchants.
  const scratch = await freshPostgres();
  const db = await openDatabase({ databaseUrl: scratch.url, poolSize: 4 });
  try {
    await migrate(db);
    const t0 = performance.now();
    await seed(db, 'B', merchants);
    process.stderr.write(`seeded ${merchants} merchants, ${entries} entries in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const ledger = createLedger({ db, clock: systemClock });
    const stages = new Map<string, number>();
    const trace = (stage: string, ms: number) => stages.set(stage, (stages.get(stage) ?? 0) + ms);
    const settlement = createSettlementService({ db, ledger, adapters: () => [bankChannel], publicUrl: 'http://127.0.0.1:0', now: () => new Date('2026-11-21T12:00:00+08:00'), trace });
    const started = performance.now();
    const result = await settlement.run(SETTLE_DATE);
    const seconds = (performance.now() - started) / 1000;
    process.stderr.write(`stages (s): ${JSON.stringify(Object.fromEntries([...stages].map(([k, v]) => [k, round(v / 1000)])))}\n`);
    const again = performance.now();
    const second = await settlement.run(SETTLE_DATE);
    const againS = (performance.now() - again) / 1000;
    const report = await ledger.verify();
    print({
      bench: 'settle', db: 'postgres', impl: 'custos set-based', merchants, entries, settlements: result.settlements, seconds: round(seconds),
      merchants_per_s: Math.round(result.settlements / seconds), entries_per_s: Math.round(entries / seconds), net_fen: result.netFen.toString(), ledger_balanced: report.balanced,
    });
    print({ bench: 'settle', db: 'postgres', impl: 'custos rerun (same date, pays nothing)', merchants, entries, settlements: second.createdNow, seconds: round(againS), merchants_per_s: 0, entries_per_s: Math.round(entries / againS) });
  } finally {
    await db.close();
    await scratch.drop();
  }

  // Baseline: a per-merchant loop over a slice, on its own database.
  const scratch2 = await freshPostgres();
  const db2 = await openDatabase({ databaseUrl: scratch2.url, poolSize: 4 });
  try {
    await migrate(db2);
    await seed(db2, 'N', naiveMerchants);
    const started = performance.now();
    const settled = await naiveRun(db2, 'N', naiveMerchants);
    const seconds = (performance.now() - started) / 1000;
    const rate = settled / seconds;
    print({
      bench: 'settle', db: 'postgres', impl: 'naive per-merchant loop (slice)', merchants: naiveMerchants, entries: naiveMerchants * ENTRIES_PER_MERCHANT, settlements: settled,
      seconds: round(seconds), merchants_per_s: Math.round(rate), entries_per_s: Math.round((naiveMerchants * ENTRIES_PER_MERCHANT) / seconds), projected_s_for_all: round(merchants / rate),
    });
  } finally {
    await db2.close();
    await scratch2.drop();
  }
  return 0;
}

const round = (x: number) => Math.round(x * 100) / 100;
