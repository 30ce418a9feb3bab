// The merchant API under concurrent identical and conflicting requests, over real
// HTTP on PostgreSQL (PGlite has one session, so nothing really races there): a
// resent order, refund or payout is created once however many copies arrive at the
// same moment, and concurrent refunds and payouts never take more than there is.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, type RawBuilder } from 'kysely';
import { PG_ONLY } from './helpers.ts';
import { startStack, merchant, notifySink, waitFor, order, type Stack, type MerchantClient, type NotifySink } from './payment.harness.ts';
import { sign, verify } from '../src/payment/sign.ts';

let stack: Stack;
let sink: NotifySink;

before(async () => {
  if (PG_ONLY) return;
  stack = await startStack();
  sink = await notifySink();
});
after(async () => {
  if (PG_ONLY) return;
  await stack.close();
  await sink.close();
});

const LIMIT = { skip: PG_ONLY, timeout: 60_000 };

interface Answer { status: number; body: { code: number; msg: string; errCode?: string; data?: Record<string, unknown>; sign?: string } }

/** One signed Jeepay request body (signed once: every copy is byte for byte the same). */
function signed(m: MerchantClient, params: Record<string, unknown>): string {
  const p: Record<string, unknown> = { mchNo: m.mchNo, appId: m.appId, reqTime: String(Date.now()), version: '1.0', signType: 'MD5', ...params };
  p.sign = sign(p, m.appSecret, 'MD5');
  return JSON.stringify(p);
}

/** Sends all bodies at once (Promise.all of fetch); checks the signature of every success. */
async function burst(m: MerchantClient, path: string, bodies: string[]): Promise<Answer[]> {
  const answers = await Promise.all(bodies.map(async (body): Promise<Answer> => {
    const res = await fetch(stack.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, body: (await res.json()) as Answer['body'] };
  }));
  for (const a of answers) {
    if (a.body.code === 0) assert.ok(verify({ ...a.body.data, sign: a.body.sign }, m.appSecret, 'MD5'), 'answer signed');
  }
  return answers;
}

const statusesOf = (answers: Answer[]) => {
  const counts: Record<string, number> = {};
  for (const a of answers) {
    const key = `${a.status}${a.body.errCode ? ` ${a.body.errCode}` : ''}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
};

const count = async (query: RawBuilder<{ n: number }>) => Number((await query.execute(stack.t.db.kysely)).rows[0].n);

async function assertBalanced() {
  const report = await stack.platform.ledger.verify();
  assert.equal(report.balanced, true, JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

/** A fresh merchant with one paid order of `amount` (its whole balance). */
async function paidMerchant(name: string, mchOrderNo: string, amount: number): Promise<{ m: MerchantClient; payOrderId: string }> {
  const m = await merchant(stack, sink.url, name);
  const created = await m.call('/api/pay/unifiedOrder', order(mchOrderNo, { amount }));
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const payOrderId = String(created.body.data?.payOrderId);
  await stack.sandbox.pay(payOrderId);
  await waitFor('paid', async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  return { m, payOrderId };
}

test('1,000 identical unified orders at once: one pay_orders row, every answer the same payOrderId', LIMIT, async () => {
  const m = await merchant(stack, sink.url, '并发下单物业');
  const body = signed(m, order('conc-order-1'));
  const started = Date.now();
  const answers = await burst(m, '/api/pay/unifiedOrder', Array.from({ length: 1000 }, () => body));
  const took = Date.now() - started;
  assert.deepEqual(statusesOf(answers), { 200: 1000 }, `all succeeded (${took} ms)`);
  const ids = new Set(answers.map((a) => a.body.data?.payOrderId));
  assert.equal(ids.size, 1, `one payOrderId: ${[...ids].slice(0, 5).join(', ')}`);
  const [payOrderId] = [...ids] as string[];
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_orders WHERE mch_no = ${m.mchNo}`), 1);
  const orderStates = new Set(answers.map((a) => a.body.data?.orderState));
  assert.ok([...orderStates].every((s) => s === 1), `every answer is the order at the channel (states ${[...orderStates].join(',')})`);
  const payData = new Set(answers.map((a) => a.body.data?.payData));
  assert.equal(payData.size, 1, 'one channel order: the same pay link everywhere');

  // and it is paid once
  await stack.sandbox.pay(payOrderId);
  await waitFor('paid', async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger_transfers WHERE id = ${`pay:${payOrderId}`}`), 1);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_notifications WHERE kind = 'pay_order' AND ref_id = ${payOrderId}`), 1);
  assert.equal((await stack.platform.ledger.getAccount(`mch:${m.mchNo}:pending`)).credits_posted, 10000n);
  await assertBalanced();
});

test('one mchOrderNo with two different amounts at once: one wins, the other is refused with 409 MCH_ORDER_NO_CONFLICT', LIMIT, async () => {
  const m = await merchant(stack, sink.url, '并发冲突物业');
  const a = signed(m, order('conc-conflict-1', { amount: 10000 }));
  const b = signed(m, order('conc-conflict-1', { amount: 12000 }));
  const bodies = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b));
  const answers = await burst(m, '/api/pay/unifiedOrder', bodies);
  const rows = (await sql<{ pay_order_id: string; amount: bigint }>`SELECT pay_order_id, amount FROM pay_orders WHERE mch_no = ${m.mchNo}`.execute(stack.t.db.kysely)).rows;
  assert.equal(rows.length, 1, 'one order');
  const winner = rows[0].amount === 10000n ? a : b;
  answers.forEach((answer, i) => {
    if (bodies[i] === winner) {
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.data?.payOrderId, rows[0].pay_order_id);
    } else {
      assert.equal(answer.status, 409, JSON.stringify(answer.body));
      assert.equal(answer.body.errCode, 'MCH_ORDER_NO_CONFLICT');
    }
  });
  assert.deepEqual(statusesOf(answers), { 200: 100, '409 MCH_ORDER_NO_CONFLICT': 100 });
});

test('200 identical refunds at once: one refund, one ledger hold, posted once', LIMIT, async () => {
  const { m, payOrderId } = await paidMerchant('并发退款物业', 'conc-refund-1', 10000);
  const body = signed(m, { payOrderId, mchRefundNo: 'conc-refund-1-r1', refundAmount: 3000, currency: 'cny', refundReason: '多缴退还' });
  const answers = await burst(m, '/api/refund/refundOrder', Array.from({ length: 200 }, () => body));
  assert.deepEqual(statusesOf(answers), { 200: 200 });
  const ids = new Set(answers.map((x) => x.body.data?.refundOrderId));
  assert.equal(ids.size, 1);
  const [refundOrderId] = [...ids] as string[];
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_refunds WHERE pay_order_id = ${payOrderId}`), 1);
  const holds = sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger_transfers
    WHERE id LIKE 'refund:%' AND id NOT LIKE '%:post' AND id NOT LIKE '%:void' AND debit_account_id = ${`mch:${m.mchNo}:pending`}`;
  assert.equal(await count(holds), 1, 'one hold');
  await waitFor('refund settled', async () => (await m.call('/api/refund/query', { refundOrderId })).body.data?.state === 2);
  assert.equal(await count(holds), 1);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger_transfers WHERE id = ${`refund:${refundOrderId}:post`}`), 1);
  const account = await stack.platform.ledger.getAccount(`mch:${m.mchNo}:pending`);
  assert.equal(account.debits_posted, 3000n);
  assert.equal(account.debits_pending, 0n);
  const q = await m.call('/api/pay/query', { payOrderId });
  assert.equal(q.body.data?.refundAmount, 3000);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_notifications WHERE kind = 'refund_order' AND ref_id = ${refundOrderId}`), 1);
  await assertBalanced();
});

test('200 different refunds of one order at once never exceed the paid amount', LIMIT, async () => {
  const paid = 10000;
  const { m, payOrderId } = await paidMerchant('并发多笔退款物业', 'conc-refund-2', paid);
  const amounts = Array.from({ length: 200 }, (_, i) => 20 + ((i * 53) % 150)); // 20…169 fen, ~19,000 in all
  const bodies = amounts.map((refundAmount, i) => signed(m, { payOrderId, mchRefundNo: `conc-refund-2-r${i}`, refundAmount, currency: 'cny', refundReason: '分次退还' }));
  const answers = await burst(m, '/api/refund/refundOrder', bodies);
  let accepted = 0n;
  let acceptedCount = 0;
  let smallestRefused = Infinity;
  answers.forEach((a, i) => {
    if (a.status === 200) {
      accepted += BigInt(amounts[i]);
      acceptedCount += 1;
    } else {
      assert.equal(a.status, 409, JSON.stringify(a.body));
      assert.ok(a.body.errCode === 'REFUND_AMOUNT_EXCEEDS' || a.body.errCode === 'ORDER_STATE_INVALID', JSON.stringify(a.body));
      smallestRefused = Math.min(smallestRefused, amounts[i]);
    }
  });
  assert.ok(accepted <= BigInt(paid), `accepted ${accepted} of ${paid}`);
  assert.ok(acceptedCount > 0 && acceptedCount < 200, JSON.stringify(statusesOf(answers)));
  assert.ok(BigInt(paid) - accepted < BigInt(smallestRefused), `no refund was refused while it still fitted (left ${BigInt(paid) - accepted}, smallest refused ${smallestRefused})`);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_refunds WHERE pay_order_id = ${payOrderId}`), acceptedCount, 'a refused refund leaves no row');

  await waitFor('all refunds settled', async () => (await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_refunds WHERE pay_order_id = ${payOrderId} AND state IN (0, 1)`)) === 0, 30_000);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_refunds WHERE pay_order_id = ${payOrderId} AND state <> 2`), 0, 'none failed at the channel');
  const row = (await sql<{ refund_amount: bigint; refund_times: number; state: number }>`SELECT refund_amount, refund_times, state FROM pay_orders WHERE pay_order_id = ${payOrderId}`.execute(stack.t.db.kysely)).rows[0];
  assert.equal(row.refund_amount, accepted);
  assert.equal(row.refund_times, acceptedCount);
  assert.equal(row.state, accepted === BigInt(paid) ? 5 : 2);
  const account = await stack.platform.ledger.getAccount(`mch:${m.mchNo}:pending`);
  assert.equal(account.debits_posted, accepted);
  assert.equal(account.debits_pending, 0n);
  assert.ok(account.debits_posted <= account.credits_posted);
  await assertBalanced();
});

test('200 identical payouts at once: one transfer, one hold, posted once', LIMIT, async () => {
  const { m } = await paidMerchant('并发转账物业', 'conc-fund-1', 50000);
  const body = signed(m, { mchOrderNo: 'conc-out-1', entryType: 'BANK_CARD', amount: 20000, currency: 'cny', accountNo: '6222020200001234567', accountName: '某某维修公司', transferDesc: '维修工程款' });
  const answers = await burst(m, '/api/transferOrder', Array.from({ length: 200 }, () => body));
  assert.deepEqual(statusesOf(answers), { 200: 200 });
  const ids = new Set(answers.map((x) => x.body.data?.transferId));
  assert.equal(ids.size, 1);
  const [transferId] = [...ids] as string[];
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_transfers WHERE mch_no = ${m.mchNo}`), 1);
  const holds = sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger_transfers
    WHERE id LIKE 'payout:%' AND id NOT LIKE '%:post' AND id NOT LIKE '%:void' AND debit_account_id = ${`mch:${m.mchNo}:pending`}`;
  assert.equal(await count(holds), 1, 'one hold');
  await waitFor('payout settled', async () => (await m.call('/api/transfer/query', { transferId })).body.data?.state === 2);
  assert.equal(await count(holds), 1);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger_transfers WHERE id = ${`payout:${transferId}:post`}`), 1);
  const account = await stack.platform.ledger.getAccount(`mch:${m.mchNo}:pending`);
  assert.equal(account.debits_posted, 20000n);
  assert.equal(account.debits_pending, 0n);
  assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_notifications WHERE kind = 'transfer_order' AND ref_id = ${transferId}`), 1);
  await assertBalanced();
});

test('200 different payouts at once never take more than the balance', LIMIT, async () => {
  const { m } = await paidMerchant('并发多笔转账物业', 'conc-fund-2', 10000);
  // Settled by polling after the burst (the next test covers settling during the burst).
  stack.sandbox.faults.notifyDrop = true;
  try {
    const bodies = Array.from({ length: 200 }, (_, i) => signed(m, { mchOrderNo: `conc-out-2-${i}`, entryType: 'BANK_CARD', amount: 100, currency: 'cny', accountNo: '6222020200001234567', transferDesc: '维修工程款' }));
    const answers = await burst(m, '/api/transferOrder', bodies);
    assert.deepEqual(statusesOf(answers), { 200: 100, '409 BALANCE_INSUFFICIENT': 100 }, 'exactly the balance: 100 × 1.00');
    assert.equal(await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_transfers WHERE mch_no = ${m.mchNo}`), 100, 'a refused payout leaves no row');
    let account = await stack.platform.ledger.getAccount(`mch:${m.mchNo}:pending`);
    assert.equal(account.debits_pending, 10000n, 'all of the balance is held');
    await stack.sandbox.flush();
    await waitFor('payouts settled by polling', async () => {
      await stack.platform.payment.poll(0);
      return (await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_transfers WHERE mch_no = ${m.mchNo} AND state = 2`)) === 100;
    }, 30_000);
    account = await stack.platform.ledger.getAccount(`mch:${m.mchNo}:pending`);
    assert.equal(account.debits_posted, 10000n);
    assert.equal(account.debits_pending, 0n);
    await assertBalanced();
  } finally {
    stack.sandbox.faults.notifyDrop = false;
  }
});

// Regression: account creation used to take ledger_clock before the account locks while
// settlement took them the other way round, so a payout created while another of the same
// merchant settled could deadlock (40P01 → 500). One lock order now, and payment
// transactions retry a detected deadlock.
test('200 different payouts at once while earlier ones settle: none fails with 500', LIMIT, async () => {
  const { m } = await paidMerchant('并发结算转账物业', 'conc-fund-3', 10000);
  const bodies = Array.from({ length: 200 }, (_, i) => signed(m, { mchOrderNo: `conc-out-3-${i}`, entryType: 'BANK_CARD', amount: 100, currency: 'cny', accountNo: '6222020200001234567', transferDesc: '维修工程款' }));
  const answers = await burst(m, '/api/transferOrder', bodies);
  assert.deepEqual(statusesOf(answers), { 200: 100, '409 BALANCE_INSUFFICIENT': 100 });
  await waitFor('payouts settled', async () => (await count(sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_transfers WHERE mch_no = ${m.mchNo} AND state = 2`)) === 100, 30_000);
  const account = await stack.platform.ledger.getAccount(`mch:${m.mchNo}:pending`);
  assert.equal(account.debits_posted, 10000n);
  assert.equal(account.debits_pending, 0n);
  await assertBalanced();
});
