// Merchant API benchmark: signed unified orders per second over real HTTP (keep-alive),
// on PostgreSQL and on PGlite, with a bare Fastify route measured in the same run as
// the ceiling. Then a paced run at a fixed rate for its latency. JSON lines.
//
//   node bench/api.ts [--quick] [--db postgres|pglite|both] [--way QR_CASHIER|WX_NATIVE]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import Fastify from 'fastify';
import http from 'node:http';
import { createScratchDatabase } from '../src/platform/pg-admin.ts';
import { openDatabase, type Database } from '../src/platform/db.ts';
import { FLOW_CONTROL_OFF_ENV, loadConfig } from '../src/platform/config.ts';
import { createPlatform } from '../src/server.ts';
import { createSandbox } from '../src/channel/sandbox/server.ts';
import { sign } from '../src/payment/sign.ts';

const CONCURRENCY = 64;
const round2 = (x: number) => Math.round(x * 100) / 100;

function freshPostgres() {
  return createScratchDatabase(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres', 'custos_bench');
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))];
}

/** Sends `total` requests made by `make(i)` with `concurrency` in flight; or paced at `rate` per second. */
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });

function post(url: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function load(total: number, make: (i: number) => { url: string; body: string }, options: { concurrency?: number; rate?: number }) {
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const started = performance.now();
  async function one(i: number) {
    const { url, body } = make(i);
    const t0 = performance.now();
    const res = await post(url, body);
    latencies.push(performance.now() - t0);
    if (res.status !== 200 || !res.text.includes('"code":0')) failed += 1;
  }
  if (options.rate) {
    const interval = 1000 / options.rate;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < total; i += 1) {
      const due = started + i * interval;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      pending.push(one(i));
    }
    await Promise.all(pending);
  } else {
    await Promise.all(Array.from({ length: options.concurrency ?? CONCURRENCY }, async () => {
      while (next < total) await one(next++);
    }));
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { requests: total, failed, per_s: Math.round(total / seconds), p50_ms: round2(percentile(latencies, 0.5)), p99_ms: round2(percentile(latencies, 0.99)), seconds: round2(seconds) };
}

async function bareCeiling(total: number) {
  const app = Fastify({ logger: false });
  app.post('/bare', async (request) => ({ code: 0, msg: 'SUCCESS', data: request.body }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/bare`;
  const result = await load(total, (i) => ({ url, body: JSON.stringify({ mchOrderNo: `b${i}`, amount: 100 }) }), {});
  await app.close();
  return result;
}

export async function benchApi(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, db: { type: 'string', default: 'both' }, way: { type: 'string', default: 'QR_CASHIER' } } });
  const total = values.quick ? 10_000 : 40_000;
  const paced = values.quick ? 6_000 : 20_000;
  const dbs = values.db === 'both' ? ['postgres', 'pglite'] : [values.db as string];
  const ceiling = await bareCeiling(total);
  console.log(JSON.stringify({ bench: 'api', db: 'none', impl: 'bare-fastify', ...ceiling }));
  for (const kind of dbs) {
    let drop = async () => {};
    let db: Database;
    if (kind === 'postgres') {
      const fresh = await freshPostgres();
      drop = fresh.drop;
      db = await openDatabase({ databaseUrl: fresh.url, poolSize: 32 });
    } else db = await openDatabase({ dataDir: null });
    const sandbox = createSandbox({ key: 'bench-sandbox-key-0000', publicUrl: 'http://127.0.0.1:1', logLevel: 'silent' });
    await sandbox.app.listen({ port: 0, host: '127.0.0.1' });
    const sandboxUrl = `http://127.0.0.1:${(sandbox.app.server.address() as { port: number }).port}`;
    const config = loadConfig({ CUSTOS_DATA_DIR: 'memory', CUSTOS_ADMIN_TOKEN: 'bench-admin-token-000000', CUSTOS_MASTER_KEY: '1'.repeat(64), LOG_LEVEL: 'silent', CUSTOS_SANDBOX_URL: sandboxUrl, CUSTOS_SANDBOX_KEY: 'bench-sandbox-key-0000',
      // Throughput, not flow control, is measured here: limits out of the way.
      ...FLOW_CONTROL_OFF_ENV });
    const platform = await createPlatform(config, { db });
    await platform.app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(platform.app.server.address() as { port: number }).port}`;
    try {
      const m = await platform.payment.merchants.createMerchant({ name: 'bench' });
      let seq = 0;
      const make = () => {
        const p: Record<string, unknown> = {
          mchNo: m.mchNo, appId: m.appId, reqTime: String(Date.now()), version: '1.0', signType: 'MD5', mchOrderNo: `b${seq++}`,
          wayCode: values.way, amount: 100 + (seq % 1000), currency: 'cny', subject: '物业费', body: '2026年11月物业费',
        };
        p.sign = sign(p, m.appSecret, 'MD5');
        return { url: `${base}/api/pay/unifiedOrder`, body: JSON.stringify(p) };
      };
      const full = await load(total, make, {});
      console.log(JSON.stringify({ bench: 'api', db: kind, impl: 'custos', way: values.way, ...full, ceiling_ratio: round2(full.per_s / ceiling.per_s) }));
      const rate = kind === 'postgres' ? 2000 : 1000;
      const steady = await load(paced, make, { rate });
      console.log(JSON.stringify({ bench: 'api', db: kind, impl: 'custos', way: values.way, paced_per_s: rate, ...steady }));
    } finally {
      await platform.close();
      await sandbox.app.close();
      await db.close();
      await drop();
    }
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await benchApi(process.argv.slice(2));
}
