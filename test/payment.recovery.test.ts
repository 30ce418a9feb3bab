// Recovery after a crash (issue 12, hole 6): 3,000 open orders; `custos serve` is
// killed with SIGKILL; while it is down some orders are paid at the channel (their
// notifications lost) and some expire. After a restart every order converges on its
// own check schedule: the paid ones paid exactly once with one posting, the expired
// ones closed at the channel and here, every other one checked — within a generous
// deadline (the measured time is printed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PG_ONLY, createPgDatabase } from './helpers.ts';
import {
  startChildSandbox, startServe, killServe, childEnv, cliVerify, adminPost, merchantCall, sandboxGet, killAllChildren,
  type ServeChild, type ChildMerchant,
} from './serve.child.ts';

const ORDERS = 3000;
const PAID = 300;
const EXPIRED = 300;
const CLIENTS = 16;
const CONVERGE_DEADLINE_MS = 5 * 60_000;

test('3,000 open orders, SIGKILL, payments and expiries while down, restart: all converge', { skip: PG_ONLY, timeout: 15 * 60_000 }, async () => {
  const watchdog = setTimeout(killAllChildren, 14 * 60_000);
  watchdog.unref();
  const created = await createPgDatabase();
  const sb = await startChildSandbox();
  const direct = new pg.Client({ connectionString: created.url });
  await direct.connect();
  const env = childEnv(created.url, sb.url, { CUSTOS_POLL_INTERVAL_S: '1' });
  let server: ServeChild | null = null;
  try {
    server = await startServe(env);
    const made = await adminPost(server.base, '/v1/admin/merchants', { name: '恢复测试物业' });
    assert.ok(made.status === 200 || made.status === 201, JSON.stringify(made.json));
    const m = made.json as unknown as ChildMerchant;

    // 3,000 orders at the channel (paying), from 16 clients.
    const ids: string[] = new Array(ORDERS);
    let next = 0;
    const base = server.base;
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
      while (next < ORDERS) {
        const i = next++;
        const res = await merchantCall(base, m, '/api/pay/unifiedOrder', {
          mchOrderNo: `rec-${i}`, wayCode: 'WX_NATIVE', amount: 100 + (i % 50), currency: 'cny', subject: '物业费', body: '恢复测试', expiredTime: 7200,
        });
        assert.equal(res.body.code, 0, JSON.stringify(res.body));
        ids[i] = String(res.body.data?.payOrderId);
      }
    }));
    // The crash.
    await killServe(server);
    server = null;

    // While it is down: payments at the channel whose notifications are lost (spread
    // over the whole set, most of them among the newest), and expiries.
    sb.sandbox.faults.notifyDrop = true;
    const paid = Array.from({ length: PAID }, (_, k) => ids[k < PAID / 3 ? k * 7 : ORDERS - 1 - (k - Math.floor(PAID / 3)) * 3]);
    assert.equal(new Set(paid).size, PAID);
    for (const id of paid) await sb.sandbox.pay(id);
    await sb.sandbox.flush();
    const paidSet = new Set(paid);
    const expired = ids.filter((id) => !paidSet.has(id)).filter((_, k) => k % 9 === 4).slice(0, EXPIRED);
    assert.equal(expired.length, EXPIRED);
    await direct.query(`UPDATE pay_orders SET expired_at = now() - interval '1 minute' WHERE pay_order_id = ANY($1)`, [expired]);

    // Restart, and wait for convergence.
    const restartedAt = Date.now();
    server = await startServe(env);
    const count = async (q: string, list: string[]) => Number((await direct.query(q, [list])).rows[0].n);
    let converged = false;
    while (Date.now() - restartedAt < CONVERGE_DEADLINE_MS) {
      const paidNow = await count(`SELECT count(*) AS n FROM pay_orders WHERE state = 2 AND pay_order_id = ANY($1)`, paid);
      const closedNow = await count(`SELECT count(*) AS n FROM pay_orders WHERE state = 6 AND pay_order_id = ANY($1)`, expired);
      const unchecked = Number((await direct.query(`SELECT count(*) AS n FROM pay_orders WHERE check_attempts = 0`)).rows[0].n);
      if (paidNow === PAID && closedNow === EXPIRED && unchecked === 0) {
        converged = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const tookMs = Date.now() - restartedAt;
    console.log(`# recovery: ${ORDERS} open orders (${PAID} paid at the channel, ${EXPIRED} expired) ${converged ? 'converged' : 'NOT converged'} in ${(tookMs / 1000).toFixed(1)} s after the restart`);
    assert.ok(converged, `not converged within ${CONVERGE_DEADLINE_MS / 1000} s:\n${server.output()}`);

    // Exactly once: one payment posting per paid order, none for the others.
    const postings = await direct.query(`SELECT id FROM ledger_transfers WHERE id LIKE 'pay:%'`);
    assert.equal(postings.rows.length, PAID, 'one payment posting per paid order, no other');
    assert.deepEqual(new Set(postings.rows.map((r: { id: string }) => r.id.slice(4))), paidSet);
    const states = await direct.query(`SELECT state, count(*)::int AS n FROM pay_orders GROUP BY state ORDER BY state`);
    assert.deepEqual(states.rows, [{ state: 1, n: ORDERS - PAID - EXPIRED }, { state: 2, n: PAID }, { state: 6, n: EXPIRED }]);
    // Closed at the channel too (the channel's own expiry is an hour away).
    for (const id of expired.slice(0, 50)) assert.equal((await sandboxGet(sb, `/v1/orders/${id}`)).status, 'CLOSED', `order ${id} closed at the channel`);
    // The open ones wait for their next check on the back-off, not all at once.
    const due = Number((await direct.query(`SELECT count(*) AS n FROM pay_orders WHERE state IN (0, 1) AND next_check_at <= now()`)).rows[0].n);
    assert.ok(due < ORDERS - PAID - EXPIRED, `the open orders are spread over the schedule (${due} due now)`);

    // A graceful stop, then the ledger's own check.
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    server = null;
    assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM: a clean exit');
    const verify = await cliVerify(env);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  } finally {
    await killServe(server);
    await direct.end();
    await sb.close();
    await created.drop();
  }
});
