// Graceful shutdown (issue 12): `custos serve` under a stream of signed orders and
// ledger transfers gets SIGTERM. It stops accepting, finishes what is in flight
// (requests, group commits), stops its pollers and workers, closes the pool and exits
// 0; every request that got a 2xx is in the database, nothing is half-written, and the
// ledger verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PG_ONLY, createPgDatabase } from './helpers.ts';
import {
  startChildSandbox, startServe, killServe, childEnv, cliVerify, adminPost, merchantCall, killAllChildren, CHILD_TOKEN,
  type ServeChild, type ChildMerchant,
} from './serve.child.ts';

const CLIENTS = 24;
/** SIGTERM after this many orders and this many transfers are acknowledged (or LOAD_WAIT_MAX_MS). */
const ACKED_BEFORE_SIGTERM = 50;
const LOAD_WAIT_MAX_MS = 60_000;

test('SIGTERM under load: exit 0, every acknowledged order and transfer kept, nothing half-written, ledger balanced', { skip: PG_ONLY, timeout: 180_000 }, async () => {
  const watchdog = setTimeout(killAllChildren, 170_000);
  watchdog.unref();
  const created = await createPgDatabase();
  const sb = await startChildSandbox();
  const direct = new pg.Client({ connectionString: created.url });
  await direct.connect();
  const env = childEnv(created.url, sb.url, { CUSTOS_POLL_INTERVAL_S: '1', LOG_LEVEL: 'info' });
  let server: ServeChild | null = null;
  try {
    server = await startServe(env);
    const base = server.base;
    const made = await adminPost(base, '/v1/admin/merchants', { name: '停机测试物业' });
    assert.ok(made.status === 200 || made.status === 201, JSON.stringify(made.json));
    const m = made.json as unknown as ChildMerchant;
    const accounts = Array.from({ length: 8 }, (_, i) => ({ id: `sd-${i}`, ledger: 1, code: 20 }));
    assert.equal((await adminPost(base, '/v1/ledger/accounts', { accounts })).status, 200);

    const ackedOrders = new Map<string, string>(); // mchOrderNo → payOrderId
    const ackedTransfers: string[] = [];
    const refused: string[] = [];
    let stop = false;
    let n = 0;
    const worker = async (w: number) => {
      for (let k = 0; !stop; k += 1) {
        const i = n++;
        try {
          if (w % 2 === 0) {
            const res = await merchantCall(base, m, '/api/pay/unifiedOrder', {
              mchOrderNo: `sd-${i}`, wayCode: 'WX_NATIVE', amount: 100 + (i % 90), currency: 'cny', subject: '物业费', body: '停机测试',
            });
            if (res.status >= 200 && res.status < 300 && res.body.code === 0) ackedOrders.set(`sd-${i}`, String(res.body.data?.payOrderId));
            else refused.push(`${res.status} ${res.body.errCode}`);
          } else {
            const transfers = Array.from({ length: 1 + (k % 3) }, (_, j) => ({
              id: `t-${i}-${j}`, debit_account_id: `sd-${(i + j) % 8}`, credit_account_id: `sd-${(i + j + 1) % 8}`, amount: String(1 + (i % 500)), ledger: 1, code: 1,
            }));
            const res = await fetch(`${base}/v1/ledger/transfers`, {
              method: 'POST', headers: { authorization: `Bearer ${CHILD_TOKEN}`, 'content-type': 'application/json' },
              body: JSON.stringify({ transfers }), signal: AbortSignal.timeout(30_000),
            });
            const json = (await res.json()) as { results?: Array<{ id: string; result: string }>; code?: string };
            if (res.status === 200) {
              assert.ok(json.results?.every((r) => r.result === 'ok'), JSON.stringify(json));
              ackedTransfers.push(...transfers.map((t) => t.id));
            } else refused.push(`${res.status} ${json.code}`);
          }
        } catch {
          break; // the connection was refused or closed: the server is going away
        }
      }
    };
    const load = Promise.all(Array.from({ length: CLIENTS }, (_, w) => worker(w)));
    // SIGTERM once the load is well under way (or after a generous wait on a slow machine).
    const loadStarted = Date.now();
    while (Date.now() - loadStarted < LOAD_WAIT_MAX_MS && (ackedOrders.size < ACKED_BEFORE_SIGTERM || ackedTransfers.length < ACKED_BEFORE_SIGTERM)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = { orders: ackedOrders.size, transfers: ackedTransfers.length };
    const termAt = Date.now();
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    const stopMs = Date.now() - termAt;
    stop = true;
    await load;
    const output = server.output().split('\n').filter((l) => !/incoming request|request completed/.test(l)).join('\n');
    server = null;
    console.log(`# shutdown: SIGTERM after ${before.orders} orders and ${before.transfers} transfers acknowledged; in the end ${ackedOrders.size} and ${ackedTransfers.length}; ${refused.length} refused (${[...new Set(refused)].join(', ')}); exited ${stopMs} ms after SIGTERM`);
    assert.ok(stopMs < 30_000, `the process stops within its shutdown bound (${stopMs} ms)`);
    assert.deepEqual(exit, { code: 0, signal: null }, `exit code 0 after SIGTERM:\n${output}`);
    assert.ok(before.orders > 0 && before.transfers > 0, 'the load was running when SIGTERM came');
    for (const r of refused) assert.equal(r, '503 OVERLOADED', 'a request refused during shutdown is a 503 with a stable code (in its route\'s envelope)');

    // Every acknowledged request is there.
    const orders = await direct.query(`SELECT mch_order_no, pay_order_id, state, channel_order_no FROM pay_orders`);
    const byNo = new Map(orders.rows.map((r: { mch_order_no: string; pay_order_id: string }) => [r.mch_order_no, r]));
    for (const [mchOrderNo, payOrderId] of ackedOrders) assert.equal(byNo.get(mchOrderNo)?.pay_order_id, payOrderId, `acknowledged order ${mchOrderNo} is stored`);
    // Nothing half-written: every stored order reached the channel (paying, with its channel order number).
    for (const r of orders.rows as Array<{ mch_order_no: string; state: number; channel_order_no: string | null }>) {
      assert.ok(r.state === 1 && r.channel_order_no !== null, `order ${r.mch_order_no} is complete (state ${r.state})`);
    }
    const transfers = await direct.query(`SELECT id FROM ledger_transfers WHERE id = ANY($1)`, [ackedTransfers]);
    assert.equal(transfers.rows.length, ackedTransfers.length, 'every acknowledged transfer is stored');
    const verify = await cliVerify(env);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.equal(JSON.parse(verify.stdout).balanced, true, verify.stdout);
  } finally {
    await killServe(server);
    await direct.end();
    await sb.close();
    await created.drop();
  }
});
