// Every fault the sandbox channel can inject, end to end over real HTTP: duplicated,
// dropped, reversed and late channel notifications, channel 5xx and timeouts on
// order creation, refunds and payouts, failed refunds, an order paid after it was
// closed, and failover to a route's fallback channel. Each test checks that the
// effects happened exactly once: one ledger posting `pay:<payOrderId>`, one merchant
// notification with state=2, balances right, and the ledger balanced.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import {
  startStack, merchant, notifySink, waitFor, order, freePort, sandboxApi, sendChannelNotification, ADMIN_TOKEN, SANDBOX_KEY,
  type Stack, type MerchantClient, type NotifySink,
} from './payment.harness.ts';
import { createSandbox, DEFAULT_FAULTS } from '../src/channel/sandbox/server.ts';
import { createSandboxAdapter } from '../src/channel/sandbox/adapter.ts';
import type { SbNotification } from '../src/channel/sandbox/protocol.ts';

let stack: Stack;
let sink: NotifySink;

before(async () => {
  stack = await startStack();
  sink = await notifySink();
});
after(async () => {
  await stack.close();
  await sink.close();
});
beforeEach(() => {
  Object.assign(stack.sandbox.faults, DEFAULT_FAULTS);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const eventId = () => randomBytes(12).toString('hex');

// --- what the database says -------------------------------------------------------------

interface OrderRow { pay_order_id: string; state: number; amount: bigint; refund_amount: bigint; refund_times: number; if_code: string | null; recovered_by: string | null; close_reason: string | null; success_at: Date | null }

async function orderRow(s: Stack, payOrderId: string): Promise<OrderRow> {
  const r = await sql<OrderRow>`SELECT * FROM pay_orders WHERE pay_order_id = ${payOrderId}`.execute(s.t.db.kysely);
  assert.equal(r.rows.length, 1, `order ${payOrderId} exists`);
  return r.rows[0];
}

async function ordersFor(s: Stack, mchNo: string, mchOrderNo: string): Promise<OrderRow[]> {
  return (await sql<OrderRow>`SELECT * FROM pay_orders WHERE mch_no = ${mchNo} AND mch_order_no = ${mchOrderNo}`.execute(s.t.db.kysely)).rows;
}

async function refundRow(s: Stack, refundOrderId: string): Promise<{ state: number; refund_amount: bigint; err_code: string | null }> {
  const r = await sql<{ state: number; refund_amount: bigint; err_code: string | null }>`SELECT state, refund_amount, err_code FROM pay_refunds WHERE refund_order_id = ${refundOrderId}`.execute(s.t.db.kysely);
  assert.equal(r.rows.length, 1, `refund ${refundOrderId} exists`);
  return r.rows[0];
}

async function transferRow(s: Stack, transferId: string): Promise<{ state: number }> {
  const r = await sql<{ state: number }>`SELECT state FROM pay_transfers WHERE transfer_id = ${transferId}`.execute(s.t.db.kysely);
  assert.equal(r.rows.length, 1, `transfer ${transferId} exists`);
  return r.rows[0];
}

/** Ledger transfers whose id is exactly one of these. */
async function ledgerIds(s: Stack, ids: string[]): Promise<Array<{ id: string; status: number | null; debit_account_id: string | null; credit_account_id: string | null; amount: bigint }>> {
  return (await sql<{ id: string; status: number | null; debit_account_id: string | null; credit_account_id: string | null; amount: bigint }>`
    SELECT id, status, debit_account_id, credit_account_id, amount FROM ledger_transfers WHERE id IN (${sql.join(ids)}) ORDER BY id`.execute(s.t.db.kysely)).rows;
}

/** The merchant notifications queued for an order, refund or transfer: their `state` fields. */
async function notificationStates(s: Stack, kind: 'pay_order' | 'refund_order' | 'transfer_order', refId: string): Promise<string[]> {
  const rows = (await sql<{ body: string }>`SELECT body FROM pay_notifications WHERE kind = ${kind} AND ref_id = ${refId} ORDER BY id`.execute(s.t.db.kysely)).rows;
  return rows.map((r) => new URLSearchParams(r.body).get('state') ?? '?');
}

async function channelEvents(s: Stack, refId: string): Promise<number> {
  const r = await sql<{ n: number }>`SELECT count(*)::int4 AS n FROM channel_events WHERE ref_id = ${refId}`.execute(s.t.db.kysely);
  return Number(r.rows[0].n);
}

const pendingAccount = (s: Stack, mchNo: string) => s.platform.ledger.getAccount(`mch:${mchNo}:pending`);

async function assertBalanced(s: Stack) {
  const report = await s.platform.ledger.verify();
  assert.equal(report.balanced, true, JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

/**
 * The exactly-once effects of a payment: paid, one posting `pay:<id>` of the order's
 * amount from the channel's clearing account to the merchant, one merchant
 * notification with state=2, and the merchant credited `credits` in all.
 */
async function assertPaidOnce(s: Stack, mchNo: string, payOrderId: string, options: { credits?: bigint; ifCode?: string; state?: number } = {}) {
  const row = await orderRow(s, payOrderId);
  assert.equal(row.state, options.state ?? 2, `order ${payOrderId} state`);
  const postings = await ledgerIds(s, [`pay:${payOrderId}`]);
  assert.equal(postings.length, 1, 'one payment posting');
  assert.equal(postings[0].amount, row.amount);
  assert.equal(postings[0].debit_account_id, `ch:${options.ifCode ?? 'sandbox'}:clearing`);
  assert.equal(postings[0].credit_account_id, `mch:${mchNo}:pending`);
  const states = await notificationStates(s, 'pay_order', payOrderId);
  assert.deepEqual(states.filter((x) => x === '2'), ['2'], `one merchant notification with state=2 (all: ${states.join(',')})`);
  const account = await pendingAccount(s, mchNo);
  assert.equal(account.credits_posted, options.credits ?? row.amount, 'the merchant was credited once');
  await assertBalanced(s);
}

// --- helpers over the merchant API ---------------------------------------------------------

async function createOrder(mm: MerchantClient, mchOrderNo: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await mm.call('/api/pay/unifiedOrder', order(mchOrderNo, extra));
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.data?.orderState, 1);
  return String(res.body.data?.payOrderId);
}

async function waitPaid(s: Stack, payOrderId: string) {
  await waitFor(`order ${payOrderId} paid`, async () => (await orderRow(s, payOrderId)).state === 2);
}

async function refund(mm: MerchantClient, payOrderId: string, mchRefundNo: string, refundAmount: number): Promise<{ refundOrderId: string; state: number }> {
  const res = await mm.call('/api/refund/refundOrder', { payOrderId, mchRefundNo, refundAmount, currency: 'cny', refundReason: '多缴退还' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { refundOrderId: String(res.body.data?.refundOrderId), state: Number(res.body.data?.state) };
}

/** The merchant endpoint got exactly one state=2 notification for the order. */
async function assertMerchantToldOnce(payOrderId: string) {
  await waitFor('merchant notified', async () => sink.received.some((n) => n.payOrderId === payOrderId && n.state === '2'));
  await sleep(300);
  assert.equal(sink.received.filter((n) => n.payOrderId === payOrderId && n.state === '2').length, 1, 'the merchant endpoint was told once');
}

function payNotification(payOrderId: string, paid: { tradeNo: string; amount: string; successAt: string | null; payer: string | null }, id = eventId()): SbNotification {
  return { event_id: id, kind: 'pay', out_no: payOrderId, channel_no: paid.tradeNo, status: 'SUCCESS', amount: paid.amount, success_time: paid.successAt, payer: paid.payer };
}

// --- notifications: duplicated, dropped, reversed, late ---------------------------------------

test('notifyDuplicates=3: four copies of the channel notification → one success, one posting, one merchant notification', async () => {
  const mm = await merchant(stack, sink.url, '重复通知物业');
  const payOrderId = await createOrder(mm, 'dup-notify-1');
  stack.sandbox.faults.notifyDuplicates = 3;
  await stack.sandbox.pay(payOrderId);
  await stack.sandbox.flush(); // all four copies delivered and answered
  await waitPaid(stack, payOrderId);
  await assertPaidOnce(stack, mm.mchNo, payOrderId);
  assert.equal(await channelEvents(stack, payOrderId), 1, 'the four copies share one event id: recorded once');
  assert.equal((await orderRow(stack, payOrderId)).recovered_by, null);
  await assertMerchantToldOnce(payOrderId);
});

test('notifyDrop: the order stays paying until polling finds it paid; then paid once, and a later delivery changes nothing', async () => {
  const mm = await merchant(stack, sink.url, '丢通知物业');
  const payOrderId = await createOrder(mm, 'drop-1');
  stack.sandbox.faults.notifyDrop = true;
  const paid = await stack.sandbox.pay(payOrderId);
  assert.equal(paid.status, 'SUCCESS');
  await stack.sandbox.flush();
  await sleep(300);
  assert.equal((await orderRow(stack, payOrderId)).state, 1, 'no notification: still paying');
  assert.deepEqual(await ledgerIds(stack, [`pay:${payOrderId}`]), []);
  assert.deepEqual(await notificationStates(stack, 'pay_order', payOrderId), []);

  const polled = await stack.platform.payment.poll(0);
  assert.ok(polled.paid >= 1, JSON.stringify(polled));
  await assertPaidOnce(stack, mm.mchNo, payOrderId);
  const row = await orderRow(stack, payOrderId);
  assert.equal(row.recovered_by, null, 'polling an open order is the normal path, not a recovery');
  const successAt = row.success_at?.getTime();

  // The channel delivers after all (drop off): a second payer action does not notify
  // again (the sandbox order is already SUCCESS), so send the channel's signed
  // notification ourselves, twice with one event id and once with another.
  stack.sandbox.faults.notifyDrop = false;
  const again = await stack.sandbox.pay(payOrderId);
  assert.equal(again.tradeNo, paid.tradeNo);
  const n = payNotification(payOrderId, paid);
  for (const x of [n, n, { ...n, event_id: eventId() }]) {
    const res = await sendChannelNotification(stack, x);
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /SUCCESS/);
  }
  await assertPaidOnce(stack, mm.mchNo, payOrderId);
  assert.equal(await channelEvents(stack, payOrderId), 2, 'two distinct events recorded');
  assert.equal((await orderRow(stack, payOrderId)).success_at?.getTime(), successAt, 'the late notification did not rewrite the order');
  const pollAgain = await stack.platform.payment.poll(0);
  assert.equal(pollAgain.paid, 0, 'nothing left to find');
  await assertPaidOnce(stack, mm.mchNo, payOrderId);
  await assertMerchantToldOnce(payOrderId);
});

test('notifyReverse: payment and refunds notified in reverse order (refunds first, payment last) → final state right, ledger balanced', async () => {
  const mm = await merchant(stack, sink.url, '倒序通知物业');
  const payOrderId = await createOrder(mm, 'reverse-1');
  stack.sandbox.faults.notifyReverse = true;
  stack.sandbox.faults.notifyDelayMs = 2000; // every notification of the next 2 s goes out in one reversed batch
  await stack.sandbox.pay(payOrderId);
  // The pay notification is held; polling learns of the payment so that refunds can be made.
  await stack.platform.payment.poll(0);
  assert.equal((await orderRow(stack, payOrderId)).state, 2);
  const r1 = await refund(mm, payOrderId, 'reverse-1-r1', 3000);
  const r2 = await refund(mm, payOrderId, 'reverse-1-r2', 7000);
  assert.equal(r1.state, 1);
  assert.equal(r2.state, 1);
  assert.equal(await channelEvents(stack, payOrderId), 0, 'the pay notification is still held by the channel');

  await waitFor('refunds settled by their notifications', async () => (await refundRow(stack, r1.refundOrderId)).state === 2 && (await refundRow(stack, r2.refundOrderId)).state === 2);
  await stack.sandbox.flush();
  await waitFor('the late pay notification received', async () => (await channelEvents(stack, payOrderId)) === 1);

  const row = await orderRow(stack, payOrderId);
  assert.equal(row.state, 5, 'fully refunded, and the late pay notification did not turn it back into paid');
  assert.equal(row.refund_amount, 10000n);
  assert.equal(row.refund_times, 2);
  await assertPaidOnce(stack, mm.mchNo, payOrderId, { state: 5 });
  const ids = [r1.refundOrderId, r2.refundOrderId].flatMap((id) => [`refund:${id}`, `refund:${id}:post`, `refund:${id}:void`]);
  const moves = await ledgerIds(stack, ids);
  assert.deepEqual(moves.map((m) => m.id).sort(), [r1, r2].flatMap((r) => [`refund:${r.refundOrderId}`, `refund:${r.refundOrderId}:post`]).sort(), 'each refund held and posted once, never voided');
  const account = await pendingAccount(stack, mm.mchNo);
  assert.equal(account.credits_posted, 10000n);
  assert.equal(account.debits_posted, 10000n);
  assert.equal(account.debits_pending, 0n);
  for (const r of [r1, r2]) assert.deepEqual(await notificationStates(stack, 'refund_order', r.refundOrderId), ['2']);
  const q = await mm.call('/api/pay/query', { payOrderId });
  assert.equal(q.body.data?.refundAmount, 10000);
  await assertBalanced(stack);
});

test('notifyDelayMs: a late notification (×3) after polling found the order paid changes nothing', async () => {
  const mm = await merchant(stack, sink.url, '迟到通知物业');
  const payOrderId = await createOrder(mm, 'late-1');
  stack.sandbox.faults.notifyDelayMs = 1500;
  stack.sandbox.faults.notifyDuplicates = 2;
  await stack.sandbox.pay(payOrderId);
  const polled = await stack.platform.payment.poll(0);
  assert.ok(polled.paid >= 1);
  assert.equal(await channelEvents(stack, payOrderId), 0, 'polling was first');
  await assertPaidOnce(stack, mm.mchNo, payOrderId);
  const successAt = (await orderRow(stack, payOrderId)).success_at?.getTime();
  await stack.sandbox.flush(); // the three late copies arrive
  assert.equal(await channelEvents(stack, payOrderId), 1, 'the late notification did arrive');
  await assertPaidOnce(stack, mm.mchNo, payOrderId);
  const row = await orderRow(stack, payOrderId);
  assert.equal(row.success_at?.getTime(), successAt);
  assert.equal(row.recovered_by, null);
  await assertMerchantToldOnce(payOrderId);
});

// --- channel API faults -------------------------------------------------------------------------

test('api5xxNext=1: unifiedOrder answers 502 CHANNEL_UNAVAILABLE; retrying the same mchOrderNo succeeds with one order', async () => {
  const mm = await merchant(stack, sink.url, '渠道故障物业');
  stack.sandbox.faults.api5xxNext = 1;
  const first = await mm.call('/api/pay/unifiedOrder', order('5xx-1'));
  assert.equal(first.status, 502, JSON.stringify(first.body));
  assert.equal(first.body.code, 9999);
  assert.equal(first.body.errCode, 'CHANNEL_UNAVAILABLE');
  assert.equal(stack.sandbox.faults.api5xxNext, 0, 'the fault was used');
  const [pending] = await ordersFor(stack, mm.mchNo, '5xx-1');
  assert.equal(pending.state, 0, 'kept as created, to be retried');
  assert.equal((await sandboxApi(stack, 'GET', `/v1/orders/${pending.pay_order_id}`)).status, 404, 'not at the channel');

  const retry = await mm.call('/api/pay/unifiedOrder', order('5xx-1'));
  assert.equal(retry.status, 200, JSON.stringify(retry.body));
  assert.equal(retry.body.data?.orderState, 1);
  assert.equal(retry.body.data?.payOrderId, pending.pay_order_id);
  assert.match(String(retry.body.data?.payData), /\/pay\//);
  const third = await mm.call('/api/pay/unifiedOrder', order('5xx-1'));
  assert.equal(third.body.data?.payOrderId, pending.pay_order_id);
  assert.equal((await ordersFor(stack, mm.mchNo, '5xx-1')).length, 1, 'one pay_orders row');
  const atChannel = await sandboxApi(stack, 'GET', `/v1/orders/${pending.pay_order_id}`);
  assert.equal(atChannel.status, 200);
  assert.equal(atChannel.data.out_trade_no, pending.pay_order_id);

  await stack.sandbox.pay(pending.pay_order_id);
  await waitPaid(stack, pending.pay_order_id);
  await assertPaidOnce(stack, mm.mchNo, pending.pay_order_id);
});

test('apiTimeoutNext=1 beyond the adapter timeout: 502 without waiting for the channel, retry succeeds; a timed-out payout stays held until polling sends it', async () => {
  const own = await startStack({ adapterTimeoutMs: 300 });
  try {
    const mm = await merchant(own, sink.url, '渠道超时物业');
    own.sandbox.faults.apiTimeoutNext = 1;
    own.sandbox.faults.apiTimeoutMs = 2500;
    const started = Date.now();
    const first = await mm.call('/api/pay/unifiedOrder', order('timeout-1', { amount: 20000 }));
    const took = Date.now() - started;
    assert.equal(first.status, 502, JSON.stringify(first.body));
    assert.equal(first.body.errCode, 'CHANNEL_UNAVAILABLE');
    assert.ok(took < 2000, `answered after the adapter's 300 ms timeout, not the channel's 2.5 s (${took} ms)`);
    const [pending] = await ordersFor(own, mm.mchNo, 'timeout-1');
    assert.equal(pending.state, 0);

    const retry = await mm.call('/api/pay/unifiedOrder', order('timeout-1', { amount: 20000 }));
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.data?.payOrderId, pending.pay_order_id);
    assert.equal((await ordersFor(own, mm.mchNo, 'timeout-1')).length, 1);
    await own.sandbox.pay(pending.pay_order_id);
    await waitPaid(own, pending.pay_order_id);
    await assertPaidOnce(own, mm.mchNo, pending.pay_order_id);

    // A payout whose channel call times out: in progress, its hold in place.
    own.sandbox.faults.apiTimeoutNext = 1;
    const payout = await mm.call('/api/transferOrder', { mchOrderNo: 'timeout-out-1', entryType: 'BANK_CARD', amount: 8000, currency: 'cny', accountNo: '6222020200001234567', accountName: '某某维修公司', transferDesc: '维修工程款' });
    assert.equal(payout.status, 200, JSON.stringify(payout.body));
    assert.equal(payout.body.data?.state, 1);
    const transferId = String(payout.body.data?.transferId);
    assert.equal((await own.platform.ledger.getAccount(`mch:${mm.mchNo}:pending`)).debits_pending, 8000n);
    assert.equal((await sandboxApi(own, 'GET', `/v1/transfers/${transferId}`)).status, 404, 'the channel never got it');
    await own.platform.payment.poll(0); // not found at the channel: sent again, with the same id
    await waitFor('payout settled', async () => (await transferRow(own, transferId)).state === 2);
    await own.platform.payment.poll(0);
    const moves = await ledgerIds(own, [`payout:${transferId}`, `payout:${transferId}:post`, `payout:${transferId}:void`]);
    assert.deepEqual(moves.map((m) => m.id), [`payout:${transferId}`, `payout:${transferId}:post`]);
    const account = await own.platform.ledger.getAccount(`mch:${mm.mchNo}:pending`);
    assert.equal(account.debits_pending, 0n);
    assert.equal(account.debits_posted, 8000n);
    assert.deepEqual(await notificationStates(own, 'transfer_order', transferId), ['2']);
    await assertBalanced(own);
  } finally {
    await own.close();
  }
});

test('a refund whose channel call hits a 5xx stays in progress with its hold; polling completes it exactly once', async () => {
  const mm = await merchant(stack, sink.url, '退款故障物业');
  const payOrderId = await createOrder(mm, 'refund-5xx-1');
  await stack.sandbox.pay(payOrderId);
  await waitPaid(stack, payOrderId);
  stack.sandbox.faults.api5xxNext = 1;
  const r = await refund(mm, payOrderId, 'refund-5xx-1-r1', 3000);
  assert.equal(r.state, 1, 'in progress');
  assert.equal((await refundRow(stack, r.refundOrderId)).state, 1);
  const holds = await ledgerIds(stack, [`refund:${r.refundOrderId}`, `refund:${r.refundOrderId}:post`, `refund:${r.refundOrderId}:void`]);
  assert.deepEqual(holds.map((h) => [h.id, h.status]), [[`refund:${r.refundOrderId}`, 1]], 'held (pending), neither posted nor voided');
  let account = await pendingAccount(stack, mm.mchNo);
  assert.equal(account.debits_pending, 3000n);
  assert.equal(account.debits_posted, 0n);
  assert.equal((await sandboxApi(stack, 'GET', `/v1/refunds/${r.refundOrderId}`)).status, 404);

  // Channel notifications dropped, so only polling can complete it: the first round
  // sends the refund again (same id), the second finds it settled.
  stack.sandbox.faults.notifyDrop = true;
  await stack.platform.payment.poll(0);
  await waitFor('refund settled at the channel', async () => (await sandboxApi(stack, 'GET', `/v1/refunds/${r.refundOrderId}`)).data.status === 'SUCCESS');
  assert.equal((await refundRow(stack, r.refundOrderId)).state, 1);
  const second = await stack.platform.payment.poll(0);
  assert.ok(second.refundsSettled >= 1, JSON.stringify(second));
  assert.equal((await refundRow(stack, r.refundOrderId)).state, 2);
  await stack.platform.payment.poll(0);
  // …and the channel's notification arrives late, twice: nothing changes.
  stack.sandbox.faults.notifyDrop = false;
  const view = (await sandboxApi(stack, 'GET', `/v1/refunds/${r.refundOrderId}`)).data;
  const n: SbNotification = { event_id: eventId(), kind: 'refund', out_no: r.refundOrderId, channel_no: String(view.channel_no), status: 'SUCCESS', amount: '3000', success_time: String(view.success_time), payer: null };
  for (let i = 0; i < 2; i += 1) assert.equal((await sendChannelNotification(stack, n)).status, 200);

  const moves = await ledgerIds(stack, [`refund:${r.refundOrderId}`, `refund:${r.refundOrderId}:post`, `refund:${r.refundOrderId}:void`]);
  assert.deepEqual(moves.map((m) => [m.id, m.status]), [[`refund:${r.refundOrderId}`, 2], [`refund:${r.refundOrderId}:post`, null]]);
  account = await pendingAccount(stack, mm.mchNo);
  assert.equal(account.debits_pending, 0n);
  assert.equal(account.debits_posted, 3000n);
  assert.equal(account.credits_posted, 10000n);
  const row = await orderRow(stack, payOrderId);
  assert.equal(row.refund_amount, 3000n);
  assert.equal(row.refund_times, 1);
  assert.equal(row.state, 2);
  assert.deepEqual(await notificationStates(stack, 'refund_order', r.refundOrderId), ['2']);
  await assertPaidOnce(stack, mm.mchNo, payOrderId);
});

test("refundResult='FAILED': the refund fails, its hold is voided, the merchant balance is whole again", async () => {
  const mm = await merchant(stack, sink.url, '退款失败物业');
  const payOrderId = await createOrder(mm, 'refund-fail-1');
  await stack.sandbox.pay(payOrderId);
  await waitPaid(stack, payOrderId);
  stack.sandbox.faults.refundResult = 'FAILED';
  const r = await refund(mm, payOrderId, 'refund-fail-1-r1', 4000);
  await waitFor('refund failed', async () => (await refundRow(stack, r.refundOrderId)).state === 3);
  await stack.sandbox.flush();
  assert.equal((await refundRow(stack, r.refundOrderId)).err_code, 'REFUND_FAILED');
  const moves = await ledgerIds(stack, [`refund:${r.refundOrderId}`, `refund:${r.refundOrderId}:post`, `refund:${r.refundOrderId}:void`]);
  assert.deepEqual(moves.map((m) => [m.id, m.status]), [[`refund:${r.refundOrderId}`, 3], [`refund:${r.refundOrderId}:void`, null]], 'held then voided, never posted');
  const account = await pendingAccount(stack, mm.mchNo);
  assert.equal(account.debits_pending, 0n);
  assert.equal(account.debits_posted, 0n);
  assert.equal(account.credits_posted - account.debits_posted, 10000n, 'the whole payment is the merchant\'s again');
  const row = await orderRow(stack, payOrderId);
  assert.equal(row.refund_amount, 0n);
  assert.equal(row.state, 2);
  assert.deepEqual(await notificationStates(stack, 'refund_order', r.refundOrderId), ['3']);
  const q = await mm.call('/api/refund/query', { mchRefundNo: 'refund-fail-1-r1' });
  assert.equal(q.body.data?.state, 3);
  // The channel's failure notification again, twice: nothing changes.
  const view = (await sandboxApi(stack, 'GET', `/v1/refunds/${r.refundOrderId}`)).data;
  assert.equal(view.status, 'FAILED');
  const n: SbNotification = { event_id: eventId(), kind: 'refund', out_no: r.refundOrderId, channel_no: String(view.channel_no), status: 'FAILED', amount: '4000', success_time: null, payer: null };
  for (let i = 0; i < 2; i += 1) assert.equal((await sendChannelNotification(stack, n)).status, 200);
  assert.deepEqual(await notificationStates(stack, 'refund_order', r.refundOrderId), ['3']);
  assert.equal((await ledgerIds(stack, [`refund:${r.refundOrderId}:void`])).length, 1);

  // The failed refund no longer counts: the full amount can be refunded now.
  stack.sandbox.faults.refundResult = 'SUCCESS';
  const full = await refund(mm, payOrderId, 'refund-fail-1-r2', 10000);
  await waitFor('full refund', async () => (await refundRow(stack, full.refundOrderId)).state === 2);
  assert.equal((await orderRow(stack, payOrderId)).state, 5);
  assert.equal((await pendingAccount(stack, mm.mchNo)).debits_posted, 10000n);
  await assertPaidOnce(stack, mm.mchNo, payOrderId, { state: 5 });
});

// --- an order paid after it was closed ------------------------------------------------------------

test('an order closed on our side that the channel reports paid becomes paid once, with recovered_by set', async () => {
  const mm = await merchant(stack, sink.url, '关单后支付物业');

  // (a) The create call failed on our side (5xx), so the merchant's close stayed local
  // (nothing to close at the channel). Suppose the request had reached the channel
  // after all — created there directly here — and the payer paid it: the channel's
  // notification turns our closed order into a paid one.
  stack.sandbox.faults.api5xxNext = 1;
  const failed = await mm.call('/api/pay/unifiedOrder', order('closed-paid-1'));
  assert.equal(failed.status, 502);
  const [created] = await ordersFor(stack, mm.mchNo, 'closed-paid-1');
  const closed = await mm.call('/api/pay/close', { mchOrderNo: 'closed-paid-1' });
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  assert.equal(closed.body.data?.orderState, 6);
  const atChannel = await sandboxApi(stack, 'POST', '/v1/orders', {
    out_trade_no: created.pay_order_id, amount: '10000', subject: '2026年11月物业费', way_code: 'WX_NATIVE',
    notify_url: `${stack.url}/api/channel/notify/sandbox`, expire_s: 600,
  });
  assert.equal(atChannel.status, 200);
  const paid = await stack.sandbox.pay(created.pay_order_id);
  assert.equal(paid.status, 'SUCCESS', 'the channel still accepted the payment');
  await waitPaid(stack, created.pay_order_id);
  await stack.sandbox.flush();
  let row = await orderRow(stack, created.pay_order_id);
  assert.equal(row.recovered_by, 'notify');
  assert.equal(row.close_reason, null);
  await sendChannelNotification(stack, payNotification(created.pay_order_id, paid)); // again, late
  await assertPaidOnce(stack, mm.mchNo, created.pay_order_id, { credits: 10000n });
  await assertMerchantToldOnce(created.pay_order_id);

  // (b) Closed at the channel and here; reconciliation later finds it paid in the
  // channel's statement and applies it (markPaid with source 'recon'), twice.
  const payOrderId = await createOrder(mm, 'closed-paid-2', { amount: 5000 });
  const closed2 = await mm.call('/api/pay/close', { payOrderId });
  assert.equal(closed2.body.data?.orderState, 6);
  assert.equal((await sandboxApi(stack, 'GET', `/v1/orders/${payOrderId}`)).data.status, 'CLOSED');
  const state = { status: 'success', channelOrderNo: 'RECON-42-0001', amountFen: 5000n, successAt: new Date(), channelUser: 'oRecon' };
  const recovered = await stack.platform.payment.orders.markPaid(payOrderId, state, 'recon');
  assert.equal(recovered.state, 2);
  assert.equal(recovered.recovered_by, 'recon');
  const twice = await stack.platform.payment.orders.markPaid(payOrderId, state, 'recon');
  assert.equal(twice.state, 2);
  row = await orderRow(stack, payOrderId);
  assert.equal(row.recovered_by, 'recon');
  assert.equal(row.close_reason, null);
  await stack.platform.payment.poll(0);
  await assertPaidOnce(stack, mm.mchNo, payOrderId, { credits: 15000n });
  await assertMerchantToldOnce(payOrderId);
});

// --- failover -----------------------------------------------------------------------------------

test('channel fallback: a route whose primary is down sends the order to its fallback channel', async () => {
  const deadPort = await freePort(); // nothing listens there
  const otherPort = await freePort();
  const other = createSandbox({ key: SANDBOX_KEY, publicUrl: `http://127.0.0.1:${otherPort}`, logLevel: 'silent' });
  await other.app.listen({ port: otherPort, host: '127.0.0.1' });
  const own = await startStack({
    extraAdapters: [
      createSandboxAdapter({ ifCode: 'sandbox2', baseUrl: `http://127.0.0.1:${deadPort}`, key: SANDBOX_KEY, timeoutMs: 1000 }),
      createSandboxAdapter({ ifCode: 'sandbox3', baseUrl: `http://127.0.0.1:${otherPort}`, key: SANDBOX_KEY, timeoutMs: 1000 }),
    ],
  });
  const setRoute = async (mchNo: string, body: Record<string, string>) => {
    const res = await fetch(`${own.url}/v1/admin/merchants/${mchNo}/routes/*`, {
      method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, await res.text());
  };
  try {
    // (a) primary down (its health check fails): straight to the fallback.
    const a = await merchant(own, sink.url, '主渠道故障物业');
    await setRoute(a.mchNo, { ifCode: 'sandbox2', fallbackIfCode: 'sandbox' });
    const created = await a.call('/api/pay/unifiedOrder', order('fallback-1'));
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.data?.orderState, 1);
    assert.ok(String(created.body.data?.payData).startsWith(own.sandboxUrl), String(created.body.data?.payData));
    const payOrderId = String(created.body.data?.payOrderId);
    assert.equal((await orderRow(own, payOrderId)).if_code, 'sandbox');
    await own.sandbox.pay(payOrderId);
    await waitPaid(own, payOrderId);
    await assertPaidOnce(own, a.mchNo, payOrderId, { ifCode: 'sandbox' });
    const q = await a.call('/api/pay/query', { payOrderId });
    assert.equal(q.body.data?.ifCode, 'sandbox');

    // (b) the same dead primary without a fallback: a clear 502.
    const b = await merchant(own, sink.url, '无备用渠道物业');
    await setRoute(b.mchNo, { ifCode: 'sandbox2' });
    const refused = await b.call('/api/pay/unifiedOrder', order('fallback-2'));
    assert.equal(refused.status, 502, JSON.stringify(refused.body));
    assert.equal(refused.body.errCode, 'CHANNEL_UNAVAILABLE');

    // (c) primary healthy but its API fails: 502, the primary is marked down, and the
    // merchant's retry of the same mchOrderNo goes to the fallback.
    const c = await merchant(own, sink.url, '主渠道接口故障物业');
    await setRoute(c.mchNo, { ifCode: 'sandbox3', fallbackIfCode: 'sandbox' });
    other.faults.api5xxNext = 1;
    const first = await c.call('/api/pay/unifiedOrder', order('fallback-3'));
    assert.equal(first.status, 502, JSON.stringify(first.body));
    const retry = await c.call('/api/pay/unifiedOrder', order('fallback-3'));
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    const retriedId = String(retry.body.data?.payOrderId);
    assert.equal((await orderRow(own, retriedId)).if_code, 'sandbox');
    assert.equal((await ordersFor(own, c.mchNo, 'fallback-3')).length, 1);
    await own.sandbox.pay(retriedId);
    await waitPaid(own, retriedId);
    await assertPaidOnce(own, c.mchNo, retriedId, { ifCode: 'sandbox' });
  } finally {
    await own.close();
    await other.app.close();
  }
});

test('after all faults: the shared stack\'s ledger is balanced', async () => {
  await stack.sandbox.flush();
  await assertBalanced(stack);
});
