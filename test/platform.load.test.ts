// Load shedding (issue 12): every in-process queue is bounded, and while the database
// pool or a queue is saturated new work gets 503 OVERLOADED with Retry-After (in
// Jeepay's envelope on /api), nothing written; work already accepted finishes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { GroupCommit } from '../src/platform/group-commit.ts';
import { AppError } from '../src/platform/errors.ts';
import { startStack, merchant, order, ADMIN_TOKEN } from './payment.harness.ts';

test('a group commit refuses beyond its bound with OVERLOADED; everything it accepted is answered', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const ran: number[] = [];
  const queue = new GroupCommit<number, number>(async (items) => {
    await gate;
    ran.push(...items);
    return items.map((i) => i * 2);
  }, 2, 1, 4);
  const accepted = [queue.submit([1]), queue.submit([2, 3]), queue.submit([4])];
  assert.equal(queue.stats.queued, 4);
  await assert.rejects(queue.submit([5]), (e: unknown) => e instanceof AppError && e.code === 'OVERLOADED' && e.status === 503);
  release();
  assert.deepEqual(await Promise.all(accepted), [[2], [4, 6], [8]]);
  assert.deepEqual(ran, [1, 2, 3, 4], 'the refused item never ran');
  assert.equal(queue.stats.queued, 0);
  assert.deepEqual(await queue.submit([5]), [10], 'room again: accepted');
});

test('a saturated database pool: new requests get 503 OVERLOADED with Retry-After, nothing written; health and metrics still answer', async () => {
  const stack = await startStack({ background: false, env: { CUSTOS_POOL_WAIT_MAX: '0', CUSTOS_RETRY_AFTER_S: '2' } });
  try {
    const mm = await merchant(stack);
    const db = stack.t.db;
    // Hold every connection, and queue one more caller behind them.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const holders = Array.from({ length: db.connections }, () => db.kysely.transaction().execute(async (tx) => {
      await sql`SELECT 1`.execute(tx);
      await gate;
    }));
    await new Promise((r) => setTimeout(r, 200));
    const waiter = sql`SELECT 1`.execute(db.kysely);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok((db.waiting?.() ?? 0) >= 1, 'a caller waits for a connection');

    const shed = await mm.call('/api/pay/unifiedOrder', order('shed-1'));
    assert.equal(shed.status, 503);
    assert.equal(shed.body.code, 9999, 'Jeepay envelope');
    assert.equal(shed.body.errCode, 'OVERLOADED');
    const raw = await fetch(`${stack.url}/api/pay/unifiedOrder`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(raw.status, 503);
    assert.equal(raw.headers.get('retry-after'), '2');
    await raw.text();
    const admin = await fetch(`${stack.url}/v1/ledger/verify`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(admin.status, 503);
    assert.equal(admin.headers.get('retry-after'), '2');
    assert.equal(((await admin.json()) as { code: string }).code, 'OVERLOADED');
    const metrics = await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(metrics.status, 200, 'metrics are never shed');
    await metrics.text();

    release();
    await Promise.all(holders);
    await waiter;
    const rows = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM pay_orders WHERE mch_order_no = 'shed-1'`.execute(db.kysely)).rows[0].n;
    assert.equal(rows, 0, 'the shed request wrote nothing');
    const again = await mm.call('/api/pay/unifiedOrder', order('shed-1'));
    assert.equal(again.body.code, 0, `accepted once the pool has room: ${JSON.stringify(again.body)}`);
  } finally {
    await stack.close();
  }
});
