// The check schedule (issue 12, hole 6): every open order is checked on a schedule of
// its own (next_check_at, back-off), a bounded batch per tick but cycling through all
// of them — not the same oldest batch again and again — and expired ones are closed
// at the channel and here. Fast, on PGlite and PostgreSQL alike.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { startStack, merchant, order, sandboxApi, type Stack, type MerchantClient } from './payment.harness.ts';
import { ManualClock } from '../src/platform/clock.ts';
import { claimDueOrders } from '../src/payment/payment.repo.ts';
import { CHECK_BACKOFF_S } from '../src/platform/check-schedule.ts';

const START_MS = Date.now() + 10 * 60_000; // ten minutes ahead: every new row is due
const clock = new ManualClock(BigInt(START_MS) * 1_000_000n);
const clockNow = () => new Date(Number(clock.nowNs() / 1_000_000n));
let stack: Stack;
let mm: MerchantClient;

before(async () => {
  stack = await startStack({ background: false, clock });
  mm = await merchant(stack);
});
after(async () => stack.close());

async function createOrder(mchOrderNo: string): Promise<string> {
  const res = await mm.call('/api/pay/unifiedOrder', order(mchOrderNo, { expiredTime: 3600 }));
  assert.equal(res.body.code, 0, JSON.stringify(res.body));
  return String(res.body.data?.payOrderId);
}

const rowOf = async (payOrderId: string) => (await sql<{ state: number; check_attempts: number; next_check_at: Date; close_reason: string | null }>`
  SELECT * FROM pay_orders WHERE pay_order_id = ${payOrderId}`.execute(stack.t.db.kysely)).rows[0];

test('more due orders than one round takes: successive rounds visit every one, and the newest paid ones are found', async () => {
  const total = 25;
  const limit = 10;
  const ids: string[] = [];
  for (let i = 0; i < total; i += 1) ids.push(await createOrder(`sched-${i}`));
  // Oldest first by creation (as after a long outage); the newest five were paid at the
  // channel while its notifications were lost.
  for (let i = 0; i < total; i += 1) {
    await sql`UPDATE pay_orders SET created_at = now() - interval '1 hour' + make_interval(secs => ${i}) WHERE pay_order_id = ${ids[i]}`.execute(stack.t.db.kysely);
  }
  stack.sandbox.faults.notifyDrop = true;
  const paid = ids.slice(total - 5);
  for (const id of paid) await stack.sandbox.pay(id);
  await stack.sandbox.flush();

  for (let round = 0; round < Math.ceil(total / limit); round += 1) {
    const result = await stack.platform.payment.poll(undefined, limit);
    assert.ok(result.checked <= limit, `a round takes at most ${limit}: ${JSON.stringify(result)}`);
  }
  for (const id of paid) assert.equal((await rowOf(id)).state, 2, `order ${id}, paid at the channel, is paid here`);
  const postings = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM ledger_transfers WHERE id IN (${sql.join(paid.map((id) => `pay:${id}`))})`.execute(stack.t.db.kysely)).rows[0].n;
  assert.equal(postings, paid.length, 'one payment posting each');
  for (const id of ids) assert.equal((await rowOf(id)).check_attempts, 1, `order ${id} was checked exactly once over the rounds`);
  // Nothing is due any more: the next round takes nothing.
  assert.equal((await stack.platform.payment.poll(undefined, limit)).checked, 0);
  stack.sandbox.faults.notifyDrop = false;
});

test('back-off per order (5 s, 10 s, 30 s …), never past its expiry; an expired order is closed at the channel and here', async () => {
  const id = await createOrder('sched-backoff');
  const poll = () => stack.platform.payment.poll(undefined, 100);
  await poll();
  let row = await rowOf(id);
  assert.equal(row.check_attempts, 1);
  assert.equal(row.next_check_at.getTime(), clockNow().getTime() + CHECK_BACKOFF_S[0] * 1000);
  clock.advanceSeconds(CHECK_BACKOFF_S[0] - 1);
  await poll();
  assert.equal((await rowOf(id)).check_attempts, 1, 'not due yet: not checked');
  clock.advanceSeconds(1);
  await poll();
  row = await rowOf(id);
  assert.equal(row.check_attempts, 2);
  assert.equal(row.next_check_at.getTime(), clockNow().getTime() + CHECK_BACKOFF_S[1] * 1000);
  // Expiry 7 s from now: the next check is at the expiry, not 10 s later.
  clock.advanceSeconds(CHECK_BACKOFF_S[1]);
  const expiresAt = new Date(clockNow().getTime() + CHECK_BACKOFF_S[2] * 1000 - 23_000);
  await sql`UPDATE pay_orders SET expired_at = ${expiresAt} WHERE pay_order_id = ${id}`.execute(stack.t.db.kysely);
  await poll();
  row = await rowOf(id);
  assert.equal(row.check_attempts, 3);
  assert.equal(row.next_check_at.getTime(), expiresAt.getTime(), 'capped at the expiry');
  assert.equal(row.state, 1, 'still paying before its expiry');
  clock.advanceSeconds(7);
  await poll();
  row = await rowOf(id);
  assert.equal(row.state, 6, 'closed here');
  assert.equal(row.close_reason, 'expired');
  const atChannel = await sandboxApi(stack, 'GET', `/v1/orders/${id}`);
  assert.equal(atChannel.data.status, 'CLOSED', 'closed at the channel');
});

test('concurrent claims never hand one order to two pollers, and together they take every due order', async () => {
  const db = stack.t.db.kysely;
  await sql`INSERT INTO pay_orders (pay_order_id, mch_no, app_id, mch_order_no, way_code, amount, currency, subject, body, state, request_hash, expired_at, next_check_at)
    SELECT 'PCLAIM' || lpad(g::text, 4, '0'), ${mm.mchNo}, ${mm.appId}, 'claim-' || g, 'WX_NATIVE', 100, 'cny', 's', 'b', 0, 'h',
      now() + interval '1 day', now() - interval '1 hour'
    FROM generate_series(1, 300) AS g`.execute(db);
  const at = clockNow();
  const claims = await Promise.all(Array.from({ length: 6 }, () => claimDueOrders(db, { now: at, limit: 100, forceBefore: null })));
  const seen = claims.flat().map((r) => r.pay_order_id).filter((id) => id.startsWith('PCLAIM'));
  assert.equal(new Set(seen).size, seen.length, 'no order claimed twice');
  assert.equal(seen.length, 300, 'every due order claimed once');
  for (const r of claims.flat()) assert.ok((r.next_check_at?.getTime() ?? 0) > at.getTime(), 'claimed rows moved to a later check');
  await sql`DELETE FROM pay_orders WHERE pay_order_id LIKE 'PCLAIM%'`.execute(db);
});
