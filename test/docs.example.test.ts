// The merchant example of docs/examples/jeepay-merchant.ts runs in CI against the real
// platform and the sandbox channel: order (16-digit reqTime) → payment → verified
// notification → query → refund → refund query, with a stale reqTime refused. The
// example imports nothing from src/, so it shows what a merchant's own code must do.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type Stack } from './payment.harness.ts';
import { main } from '../docs/examples/jeepay-merchant.ts';

let stack: Stack;
before(async () => { stack = await startStack(); });
after(async () => { await stack.close(); });

test('docs/examples/jeepay-merchant.ts: order → query → refund → refund query with typed answers', async () => {
  const m = await stack.platform.payment.merchants.createMerchant({ name: '示例物业', notifyUrl: null });
  const r = await main(stack.url, m.mchNo, m.appId, m.appSecret);

  assert.equal(r.order.orderState, 1, 'the order was accepted with a 16-digit (µs) reqTime and is paying');
  assert.equal(r.notification.state, '2');
  assert.equal(r.notification.amount, '2500');
  assert.equal(r.paid.amount, 2500);
  assert.equal(typeof r.paid.createdAt, 'number');
  assert.equal(typeof r.paid.successTime, 'number');
  assert.equal(r.refund.payAmount, 2500);
  assert.equal(r.refund.refundAmount, 300);
  assert.equal(r.refunded.state, 2);
  assert.equal(r.refunded.refundAmount, 300);
  assert.equal(r.remainingFen, 2200, 'arithmetic on the amounts as they arrive: 2500 - 300, not "2500" - "300" or "2500" + …');
  assert.equal(r.stale.code, 9999);
  assert.equal(r.stale.errCode, 'REQ_TIME_INVALID');
});
