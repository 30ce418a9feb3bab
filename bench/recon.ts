// Reconciliation benchmark: one bill date with N pay orders (1% of them also refunded)
// inserted set-wise, and an N-row WeChat-format bill file with a handful of injected
// differences. Custos's batch (streamed parse → unnest staging → set-wise classify)
// runs beside a row-by-row baseline (one lookup per record, as the classic design
// does), on the same data in the same run; the baseline stops after a fixed slice
// and reports its rate. One JSON line per (db, impl), then the ratio.
//
//   node bench/recon.ts [--quick] [--rows N] [--db postgres|pglite|both]
import { parseArgs } from 'node:util';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createScratchDatabase } from '../src/platform/pg-admin.ts';
import { openDatabase, sql, type Database } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { systemClock } from '../src/platform/clock.ts';
import { cstDayStart } from '../src/platform/time.ts';
import { fenToYuan, applyRate } from '../src/platform/money.ts';
import { createLedger } from '../src/ledger/index.ts';
import { createReconService } from '../src/recon/recon.service.ts';
import { workerFileReader } from '../src/recon/reader.ts';
import { parseWechatBill, type ChannelRecord } from '../src/recon/parse/wechat.ts';
import { createInterface } from 'node:readline';

const BILL_DATE = '2026-11-20';
const RATE = '0.006';
const BASELINE_SLICE = 20_000;
const INJECT = 5; // of each kind

const idOf = (g: number) => `P${String(g).padStart(12, '0')}`;
const refundIdOf = (g: number) => `R${String(g).padStart(12, '0')}`;
const amountOf = (g: number) => BigInt(1000 + (g % 9000));
const refunded = (g: number) => g % 100 === 0;

/** Which orders carry an injected difference (spread over the file). */
function injected(n: number) {
  const step = Math.floor(n / (INJECT * 4 + 1));
  const pick = (k: number) => Array.from({ length: INJECT }, (_v, i) => step * (k * INJECT + i + 1) + 1);
  return { amount: new Set(pick(0)), dropped: new Set(pick(1)), fee: new Set(pick(2)), extra: INJECT, refundAmount: new Set(pick(3).map((g) => g - (g % 100) + 100).filter((g) => g <= n)) };
}

export async function writeBill(file: string, n: number): Promise<{ rows: number; expected: Record<string, number> }> {
  const inj = injected(n);
  const out = createWriteStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const header = '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';
  let buf = header + '\r\n';
  let rows = 0;
  let settled = 0n;
  let refundTotal = 0n;
  let fees = 0n;
  const time = (g: number) => {
    const s = g % 86400;
    return `${BILL_DATE} ${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  const flush = async () => {
    if (!out.write(buf)) await once(out, 'drain');
    buf = '';
  };
  const pay = (g: number, id: string, amount: bigint, fee: bigint) => {
    rows += 1;
    settled += amount;
    fees += fee;
    buf += `\`${time(g)},\`wx1,\`1900000109,\`0,\`,\`42${String(g).padStart(26, '0')},\`${id},\`o,\`NATIVE,\`SUCCESS,\`OTHERS,\`CNY,\`${fenToYuan(amount)},\`0.00,\`0,\`0,\`0.00,\`0.00,\`,\`,\`物业费,\`,\`${fenToYuan(fee, 5)},\`0.60%,\`${fenToYuan(amount)},\`0.00,\`\r\n`;
  };
  for (let g = 1; g <= n; g += 1) {
    if (!inj.dropped.has(g)) {
      const amount = inj.amount.has(g) ? amountOf(g) + 1n : amountOf(g);
      const fee = applyRate(amount, RATE) + (inj.fee.has(g) ? 1n : 0n);
      pay(g, idOf(g), amount, fee);
    }
    if (refunded(g)) {
      const amount = 500n + (inj.refundAmount.has(g) ? 7n : 0n);
      const fee = -applyRate(amount, RATE);
      rows += 1;
      refundTotal += amount;
      fees += fee;
      buf += `\`${time(g)},\`wx1,\`1900000109,\`0,\`,\`42${String(g).padStart(26, '0')},\`${idOf(g)},\`o,\`NATIVE,\`REFUND,\`OTHERS,\`CNY,\`0.00,\`0.00,\`50${String(g).padStart(26, '0')},\`${refundIdOf(g)},\`${fenToYuan(amount)},\`0.00,\`ORIGINAL,\`SUCCESS,\`物业费,\`,\`${fenToYuan(fee, 5)},\`0.60%,\`0.00,\`${fenToYuan(amount)},\`\r\n`;
    }
    if (buf.length > 1 << 20) await flush();
  }
  for (let k = 0; k < inj.extra; k += 1) pay(k, `PX${k}`, 4321n, applyRate(4321n, RATE));
  buf += '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n';
  buf += `\`${rows},\`${fenToYuan(settled)},\`${fenToYuan(refundTotal)},\`0.00,\`${fenToYuan(fees, 5)},\`${fenToYuan(settled)},\`${fenToYuan(refundTotal)}\r\n`;
  await flush();
  out.end();
  await once(out, 'finish');
  return {
    rows,
    expected: { AMOUNT_OVER: INJECT, FEE_MISMATCH: INJECT, PLATFORM_MISSING: inj.extra, REFUND_AMOUNT_OVER: inj.refundAmount.size },
  };
}

/** N paid orders of the bill date and 1% refunds, inserted set-wise in slices. */
export async function seed(db: Database, n: number): Promise<void> {
  const start = cstDayStart(BILL_DATE);
  const slice = 200_000;
  for (let from = 1; from <= n; from += slice) {
    const to = Math.min(n, from + slice - 1);
    await sql`INSERT INTO pay_orders (pay_order_id, mch_no, app_id, mch_order_no, way_code, if_code, amount, currency, subject, body, state, request_hash, expired_at, success_at, created_at)
      SELECT 'P' || lpad(g::text, 12, '0'), 'M' || (g % 50), 'A1', 'mo' || g, 'WX_NATIVE', 'sandbox', 1000 + (g % 9000), 'cny', '物业费', 'b',
        2, 'h', ${start}::timestamptz + interval '2 days', ${start}::timestamptz + (g % 86400) * interval '1 second', ${start}::timestamptz
      FROM generate_series(${from}::int4, ${to}::int4) g`.execute(db.kysely);
    await sql`INSERT INTO pay_refunds (refund_order_id, pay_order_id, mch_no, app_id, mch_refund_no, if_code, pay_amount, refund_amount, currency, refund_reason, state, request_hash, success_at)
      SELECT 'R' || lpad(g::text, 12, '0'), 'P' || lpad(g::text, 12, '0'), 'M' || (g % 50), 'A1', 'mr' || g, 'sandbox', 1000 + (g % 9000), 500, 'cny', 'r', 2, 'h',
        ${start}::timestamptz + (g % 86400) * interval '1 second'
      FROM generate_series(${from}::int4, ${to}::int4) g WHERE g % 100 = 0`.execute(db.kysely);
  }
  await sql`ANALYZE pay_orders`.execute(db.kysely);
  await sql`ANALYZE pay_refunds`.execute(db.kysely);
}

/** The classic design: one lookup per record, compared in the application. Stops after `limit` records. */
async function rowByRow(db: Database, file: string, limit: number): Promise<{ rows: number; seconds: number; differences: number }> {
  let rows = 0;
  let differences = 0;
  const stream = createReadStream(file, { encoding: 'utf8' });
  const records: ChannelRecord[] = [];
  try {
    await parseWechatBill(createInterface({ input: stream, crlfDelay: Infinity }), (r) => {
      if (records.length < limit) records.push(r);
    });
  } finally {
    stream.destroy();
  }
  const parsedAt = performance.now();
  for (const r of records) {
    if (r.kind === 'payment') {
      const o = await sql<{ state: number; amount: bigint }>`SELECT state, amount FROM pay_orders WHERE pay_order_id = ${r.payOrderId}`.execute(db.kysely);
      const row = o.rows[0];
      if (!row || row.amount !== r.amountFen || applyRate(row.amount, RATE) * 1000n !== r.feeE5) differences += 1;
    } else {
      const f = await sql<{ state: number; refund_amount: bigint }>`SELECT state, refund_amount FROM pay_refunds WHERE refund_order_id = ${r.refundOrderId}`.execute(db.kysely);
      const row = f.rows[0];
      if (!row || row.refund_amount !== r.amountFen) differences += 1;
    }
    rows += 1;
  }
  // The parse of the whole file is not charged to the baseline: only its lookups.
  return { rows, seconds: (performance.now() - parsedAt) / 1000, differences };
}

const rssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
const round2 = (x: number) => Math.round(x * 100) / 100;

export async function benchRecon(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, rows: { type: 'string' }, db: { type: 'string', default: 'both' } } });
  const n = values.rows ? Number(values.rows) : values.quick ? 100_000 : 1_000_000;
  if (!Number.isInteger(n) || n < 1000 || n > 5_000_000) throw new Error('--rows must be 1000–5000000');
  const kinds = values.db === 'both' ? ['postgres', 'pglite'] : [values.db as string];
  const dir = mkdtempSync(path.join(tmpdir(), 'custos-bench-recon-'));
  const file = path.join(dir, 'bill.csv');
  try {
    const t0 = performance.now();
    const bill = await writeBill(file, n);
    console.log(JSON.stringify({ bench: 'recon', phase: 'generate', orders: n, file_rows: bill.rows, seconds: round2((performance.now() - t0) / 1000), max_rss_mb: rssMb() }));
    for (const kind of kinds) {
      let db: Database;
      let drop = async () => {};
      if (kind === 'postgres') {
        const fresh = await createScratchDatabase(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres', 'custos_bench');
        db = await openDatabase({ databaseUrl: fresh.url, poolSize: 4 });
        drop = fresh.drop;
      } else {
        db = await openDatabase({ dataDir: null });
      }
      try {
        await migrate(db);
        const s0 = performance.now();
        await seed(db, n);
        const seedS = (performance.now() - s0) / 1000;
        const phases: Record<string, number> = {};
        const recon = createReconService({
          db, ledger: createLedger({ db, clock: systemClock }), onPhase: (phase, ms) => (phases[phase] = Math.round(ms)),
          markPaid: async () => {
            throw new Error('the bench injects no status differences');
          },
        });
        const rssBefore = rssMb();
        const started = performance.now();
        phases.start = 0;
        const summary = await recon.runDay({ channel: 'sandbox', billDate: BILL_DATE, reader: workerFileReader(file, 'wechat') });
        const seconds = (performance.now() - started) / 1000;
        const exact = JSON.stringify(summary.mistakes) === JSON.stringify(Object.fromEntries(Object.entries(bill.expected).sort())) && summary.poolAdded === INJECT;
        const custosRate = bill.rows / seconds;
        console.log(JSON.stringify({
          bench: 'recon', db: kind, impl: 'custos', records: bill.rows, seconds: round2(seconds), records_per_s: Math.round(custosRate),
          max_rss_mb: rssMb(), rss_before_mb: rssBefore, seed_s: round2(seedS), matched: summary.matched, pool_added: summary.poolAdded, mistakes: summary.mistakes, exact, phases_ms: phases,
        }));
        const base = await rowByRow(db, file, BASELINE_SLICE);
        const baseRate = base.rows / base.seconds;
        console.log(JSON.stringify({ bench: 'recon', db: kind, impl: 'row_by_row', records: base.rows, seconds: round2(base.seconds), records_per_s: Math.round(baseRate), differences: base.differences, note: `first ${BASELINE_SLICE} records, one lookup each` }));
        console.log(JSON.stringify({ bench: 'recon', db: kind, impl: 'ratio', custos_over_row_by_row: round2(custosRate / baseRate) }));
      } finally {
        await db.close();
        await drop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchRecon(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    console.error(error);
    process.exit(1);
  });
}
