// The merchant API end to end through real HTTP: a Jeepay client signs requests, the
// sandbox channel is paid by a "payer", the merchant's endpoint receives signed
// notifications, refunds are partial and never exceed what was paid, and the ledger
// stays balanced. Then every kind of bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { startStack, merchant, notifySink, waitFor, order, type Stack, type MerchantClient, type NotifySink } from './payment.harness.ts';
import { sign, verify } from '../src/payment/sign.ts';

let stack: Stack;
let m: MerchantClient;
let sink: NotifySink;

before(async () => {
  stack = await startStack();
  sink = await notifySink();
  m = await merchant(stack, sink.url);
});
after(async () => {
  await stack.close();
  await sink.close();
});

const count = async (table: string) => Number((await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM ${sql.table(table)}`.execute(stack.t.db.kysely)).rows[0].n);
const balanceOf = async (id: string) => stack.platform.ledger.getAccount(id);

test('order → payment → signed notification → partial refunds → ledger balanced', async () => {
  const created = await m.call('/api/pay/unifiedOrder', order('e2e-1'));
  assert.equal(created.status, 200);
  assert.equal(created.body.code, 0);
  const data = created.body.data as Record<string, string | number>;
  assert.equal(data.orderState, 1);
  assert.equal(data.payDataType, 'codeUrl');
  assert.match(String(data.payData), /\/pay\//);
  const payOrderId = String(data.payOrderId);

  // resending the same order returns the same order
  const again = await m.call('/api/pay/unifiedOrder', order('e2e-1'));
  assert.equal(again.body.data?.payOrderId, payOrderId);

  await stack.sandbox.pay(payOrderId);
  const note = await waitFor('payment notification', async () => sink.received.find((n) => n.payOrderId === payOrderId && n.state === '2'));
  assert.equal(verify(note, m.appSecret, 'MD5'), true, 'the notification is signed with the app secret');
  assert.equal(note.amount, '10000');
  assert.equal(note.mchOrderNo, 'e2e-1');

  const queried = await m.call('/api/pay/query', { payOrderId });
  assert.equal(queried.body.data?.state, 2);

  const pending = `mch:${m.mchNo}:pending`;
  assert.equal((await balanceOf(pending)).credits_posted, 10000n);
  assert.equal((await balanceOf('ch:sandbox:clearing')).debits_posted >= 10000n, true);

  const r1 = await m.call('/api/refund/refundOrder', { payOrderId, mchRefundNo: 'e2e-1-r1', refundAmount: 3000, currency: 'cny', refundReason: '多缴退还' });
  assert.equal(r1.status, 200, JSON.stringify(r1.body));
  const r2 = await m.call('/api/refund/refundOrder', { mchOrderNo: 'e2e-1', mchRefundNo: 'e2e-1-r2', refundAmount: 2000, currency: 'cny', refundReason: '多缴退还' });
  assert.equal(r2.status, 200);
  const over = await m.call('/api/refund/refundOrder', { payOrderId, mchRefundNo: 'e2e-1-r3', refundAmount: 5001, currency: 'cny', refundReason: '超额' });
  assert.equal(over.status, 409);
  assert.equal(over.body.errCode, 'REFUND_AMOUNT_EXCEEDS');

  await waitFor('refunds settled', async () => {
    const q = await m.call('/api/refund/query', { mchRefundNo: 'e2e-1-r2' });
    return q.body.data?.state === 2;
  });
  await waitFor('refund notifications', async () => sink.received.filter((n) => n.refundOrderId).length >= 2);
  const after = await m.call('/api/pay/query', { payOrderId });
  assert.equal(after.body.data?.refundAmount, 5000);
  assert.equal(after.body.data?.state, 2);
  const acct = await balanceOf(pending);
  assert.equal(acct.credits_posted - acct.debits_posted, 5000n);
  assert.equal(acct.debits_pending, 0n);

  // the rest of the amount can still be refunded, and then the order is refunded (5)
  const last = await m.call('/api/refund/refundOrder', { payOrderId, mchRefundNo: 'e2e-1-r4', refundAmount: 5000, currency: 'cny', refundReason: '全部退还' });
  assert.equal(last.status, 200);
  await waitFor('order refunded', async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 5);
  const again5 = await m.call('/api/refund/refundOrder', { payOrderId, mchRefundNo: 'e2e-1-r5', refundAmount: 1, currency: 'cny', refundReason: '再退' });
  assert.equal(again5.status, 409);
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('HMAC-SHA256 and SM3 requests, and form-encoded bodies, are accepted', async () => {
  for (const signType of ['HMAC-SHA256', 'SM3'] as const) {
    const res = await m.call('/api/pay/unifiedOrder', order(`sig-${signType}`), { signType });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  const form = await m.call('/api/pay/unifiedOrder', order('sig-form'), { form: true });
  assert.equal(form.status, 200, JSON.stringify(form.body));
});

test('QR_CASHIER: payData is the H5 cashier; choosing a way leads to the channel and the payment completes', async () => {
  const created = await m.call('/api/pay/unifiedOrder', order('cashier-1', { wayCode: 'QR_CASHIER', amount: 2550 }));
  assert.equal(created.status, 200);
  assert.equal(created.body.data?.orderState, 0);
  const cashierUrl = String(created.body.data?.payData);
  assert.match(cashierUrl, /\/cashier\/P\d+/);
  const page = await fetch(cashierUrl);
  const html = await page.text();
  assert.match(html, /收银台/);
  assert.match(html, /¥25\.50/);
  assert.match(html, /微信支付/);
  const chosen = await fetch(`${cashierUrl}/pay`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'wayCode=ALI_WAP' });
  assert.equal(chosen.status, 303);
  const payPage = String(chosen.headers.get('location'));
  assert.ok(payPage.startsWith(stack.sandboxUrl), payPage);
  const payerPage = await (await fetch(payPage)).text();
  assert.match(payerPage, /确认支付/);
  // The page's buttons carry its token; a bare POST (not from the page) is refused.
  const bare = await fetch(`${payPage}/pay`, { method: 'POST', redirect: 'manual' });
  assert.equal(bare.status, 403);
  const token = /name="token" value="([0-9a-f]{32})"/.exec(payerPage)?.[1] as string;
  assert.ok(token, 'the payer page embeds its token');
  const paid = await fetch(`${payPage}/pay`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}` });
  assert.equal(paid.status, 303);
  const payOrderId = String(created.body.data?.payOrderId);
  await waitFor('cashier order paid', async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  const noWay = await fetch(`${cashierUrl}/pay`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'wayCode=NOPE' });
  assert.equal(noWay.status, 400);
});

test('close: an unpaid order closes; closing a paid order is refused', async () => {
  const created = await m.call('/api/pay/unifiedOrder', order('close-1'));
  const closed = await m.call('/api/pay/close', { mchOrderNo: 'close-1' });
  assert.equal(closed.status, 200);
  assert.equal(closed.body.data?.orderState, 6);
  await stack.sandbox.pay(String(created.body.data?.payOrderId)).catch(() => undefined);
  const state = await m.call('/api/pay/query', { mchOrderNo: 'close-1' });
  assert.equal(state.body.data?.state, 6, 'the channel order was closed too, so the payer could not pay');
  const paidOne = await m.call('/api/pay/unifiedOrder', order('close-2'));
  await stack.sandbox.pay(String(paidOne.body.data?.payOrderId));
  await waitFor('paid', async () => (await m.call('/api/pay/query', { mchOrderNo: 'close-2' })).body.data?.state === 2);
  const refused = await m.call('/api/pay/close', { mchOrderNo: 'close-2' });
  assert.equal(refused.status, 409);
  assert.equal(refused.body.errCode, 'ORDER_STATE_INVALID');
});

test('transfers: payout posts on success; a failed payout returns the funds; a payout above the balance is refused', async () => {
  const paid = await m.call('/api/pay/unifiedOrder', order('fund-1', { amount: 50000 }));
  await stack.sandbox.pay(String(paid.body.data?.payOrderId));
  await waitFor('paid', async () => (await m.call('/api/pay/query', { mchOrderNo: 'fund-1' })).body.data?.state === 2);
  const pending = `mch:${m.mchNo}:pending`;
  const before = await balanceOf(pending);
  const ok = await m.call('/api/transferOrder', { mchOrderNo: 'pay-out-1', entryType: 'BANK_CARD', amount: 20000, currency: 'cny', accountNo: '6222020200001234567', accountName: '某某维修公司', transferDesc: '维修工程款' });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  await waitFor('payout success', async () => (await m.call('/api/transfer/query', { mchOrderNo: 'pay-out-1' })).body.data?.state === 2);
  const mid = await balanceOf(pending);
  assert.equal(mid.debits_posted - before.debits_posted, 20000n);

  stack.sandbox.faults.transferResult = 'FAILED';
  const bad = await m.call('/api/transferOrder', { mchOrderNo: 'pay-out-2', entryType: 'BANK_CARD', amount: 10000, currency: 'cny', accountNo: '6222020200009999999', transferDesc: '维修工程款' });
  assert.equal(bad.status, 200);
  await waitFor('payout failed', async () => (await m.call('/api/transfer/query', { mchOrderNo: 'pay-out-2' })).body.data?.state === 3);
  stack.sandbox.faults.transferResult = 'SUCCESS';
  const end = await balanceOf(pending);
  assert.equal(end.debits_posted, mid.debits_posted, 'the failed payout moved nothing');
  assert.equal(end.debits_pending, 0n, 'and its hold was released');

  const tooMuch = await m.call('/api/transferOrder', { mchOrderNo: 'pay-out-3', entryType: 'BANK_CARD', amount: 99_000_000, currency: 'cny', accountNo: '6222', transferDesc: 'x' });
  assert.equal(tooMuch.status, 409);
  assert.equal(tooMuch.body.errCode, 'BALANCE_INSUFFICIENT');
  assert.equal(await m.call('/api/transfer/query', { mchOrderNo: 'pay-out-3' }).then((r) => r.status), 404, 'a refused payout leaves no record');
});

test('division: bind a receiver, divide 3%, and never divide more than is left', async () => {
  const paid = await m.call('/api/pay/unifiedOrder', order('div-1', { amount: 10001, divisionMode: 2 }));
  await stack.sandbox.pay(String(paid.body.data?.payOrderId));
  await waitFor('paid', async () => (await m.call('/api/pay/query', { mchOrderNo: 'div-1' })).body.data?.state === 2);
  const bound = await m.call('/api/division/receiver/bind', { ifCode: 'sandbox', receiverAlias: '平台服务费', accType: 1, accNo: 'PLATFORM-001', accName: 'Custos 平台', relationType: 'SERVICE_PROVIDER', relationTypeName: '服务商', divisionProfit: '0.03' });
  assert.equal(bound.status, 200, JSON.stringify(bound.body));
  const receiverId = String(bound.body.data?.receiverId);
  const exec = await m.call('/api/division/exec', { mchOrderNo: 'div-1', useSysAutoDivisionReceivers: 0, receivers: JSON.stringify([{ receiverId }]) });
  assert.equal(exec.status, 200, JSON.stringify(exec.body));
  assert.equal((await balanceOf(`rcv:${receiverId}`)).credits_posted, 300n, '3% of 100.01 rounded down is 3.00');
  const twice = await m.call('/api/division/exec', { mchOrderNo: 'div-1', useSysAutoDivisionReceivers: 0, receivers: JSON.stringify([{ receiverId }]) });
  assert.equal(twice.status, 200);
  assert.equal((await balanceOf(`rcv:${receiverId}`)).credits_posted, 300n, 'dividing again changes nothing');
  const big = await m.call('/api/division/receiver/bind', { ifCode: 'sandbox', accType: 0, accNo: 'GREEDY', divisionProfit: '0.99' });
  const tooMuch = await m.call('/api/division/exec', { mchOrderNo: 'div-1', receivers: JSON.stringify([{ receiverId: big.body.data?.receiverId }]) });
  assert.equal(tooMuch.status, 409);
  assert.equal(tooMuch.body.errCode, 'DIVISION_AMOUNT_EXCEEDS');
  const badProfit = await m.call('/api/division/receiver/bind', { ifCode: 'sandbox', accType: 0, accNo: 'X', divisionProfit: '1.5' });
  assert.equal(badProfit.status, 400);
});

test('bad input: a clear 4xx in Jeepay\'s envelope, and nothing written', async () => {
  const ordersBefore = await count('pay_orders');
  const cases: Array<[string, Record<string, unknown>, number, string, Parameters<MerchantClient['call']>[2]?]> = [
    ['bad signature', order('bad-1'), 401, 'SIGN_INVALID', { tamper: (p) => { p.sign = 'DEADBEEF'; } }],
    ['missing signature', order('bad-2'), 401, 'SIGN_MISSING', { tamper: (p) => { delete p.sign; } }],
    ['tampered amount', order('bad-3'), 401, 'SIGN_INVALID', { tamper: (p) => { p.amount = 1; } }],
    ['stale reqTime', order('bad-4'), 401, 'REQ_TIME_INVALID', { reqTime: Date.now() - 10 * 60 * 1000 }],
    ['future reqTime', order('bad-5'), 401, 'REQ_TIME_INVALID', { reqTime: Date.now() + 10 * 60 * 1000 }],
    ['unknown app', order('bad-6'), 401, 'APP_NOT_FOUND', { tamper: (p) => { p.appId = 'ffffffffffffffffffffffff'; } }],
    ['missing mchOrderNo', { ...order('x'), mchOrderNo: undefined }, 400, 'PARAM_MISSING'],
    ['missing subject', { ...order('bad-7'), subject: undefined }, 400, 'PARAM_MISSING'],
    ['amount 0', order('bad-8', { amount: 0 }), 400, 'AMOUNT_INVALID'],
    ['amount negative', order('bad-9', { amount: -100 }), 400, 'AMOUNT_INVALID'],
    ['amount fractional', order('bad-10', { amount: 1.5 }), 400, 'AMOUNT_INVALID'],
    ['amount fractional string', order('bad-11', { amount: '1.50' }), 400, 'AMOUNT_INVALID'],
    ['amount not a number', order('bad-12', { amount: 'ten' }), 400, 'AMOUNT_INVALID'],
    ['amount too large', order('bad-13', { amount: '100000000001' }), 400, 'AMOUNT_INVALID'],
    ['unknown wayCode', order('bad-14', { wayCode: 'BITCOIN' }), 400, 'WAY_CODE_UNSUPPORTED'],
    ['currency usd', order('bad-15', { currency: 'usd' }), 400, 'PARAM_INVALID'],
    ['bad notifyUrl', order('bad-16', { notifyUrl: 'ftp://x' }), 400, 'PARAM_INVALID'],
    ['bad channelExtra', order('bad-17', { channelExtra: '{oops' }), 400, 'PARAM_INVALID'],
    ['expiredTime too long', order('bad-18', { expiredTime: 999999 }), 400, 'PARAM_INVALID'],
    ['mchOrderNo with spaces', order('bad 19'), 400, 'PARAM_INVALID'],
  ];
  for (const [name, params, status, code, options] of cases) {
    const res = await m.call('/api/pay/unifiedOrder', params, options);
    assert.equal(res.status, status, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.code, 9999, name);
    assert.equal(res.body.errCode, code, `${name}: ${res.body.msg}`);
    assert.ok(res.body.msg.length > 5, name);
  }
  assert.equal(await count('pay_orders'), ordersBefore, 'no order was written by a refused request');

  const json = await fetch(`${stack.url}/api/pay/unifiedOrder`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"mchNo":' });
  assert.equal(json.status, 400);
  assert.equal(((await json.json()) as { code: number }).code, 9999);

  // the same mchOrderNo with other parameters is refused; the original is untouched
  const first = await m.call('/api/pay/unifiedOrder', order('dup-1', { amount: 500 }));
  assert.equal(first.status, 200);
  const conflict = await m.call('/api/pay/unifiedOrder', order('dup-1', { amount: 600 }));
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.errCode, 'MCH_ORDER_NO_CONFLICT');

  // refunds of unpaid orders, of unknown orders, and above the paid amount
  const unpaid = await m.call('/api/refund/refundOrder', { mchOrderNo: 'dup-1', mchRefundNo: 'r-unpaid', refundAmount: 1, currency: 'cny', refundReason: 'x' });
  assert.equal(unpaid.status, 409);
  assert.equal(unpaid.body.errCode, 'ORDER_STATE_INVALID');
  const unknown = await m.call('/api/refund/refundOrder', { mchOrderNo: 'nope', mchRefundNo: 'r-nope', refundAmount: 1, currency: 'cny', refundReason: 'x' });
  assert.equal(unknown.status, 404);
  const noKey = await m.call('/api/refund/refundOrder', { mchRefundNo: 'r-nokey', refundAmount: 1, currency: 'cny', refundReason: 'x' });
  assert.equal(noKey.status, 400);
  const refundsBefore = await count('pay_refunds');
  const zero = await m.call('/api/refund/refundOrder', { mchOrderNo: 'dup-1', mchRefundNo: 'r-zero', refundAmount: 0, currency: 'cny', refundReason: 'x' });
  assert.equal(zero.status, 400);
  assert.equal(await count('pay_refunds'), refundsBefore);

  // another merchant cannot see this merchant's orders
  const other = await merchant(stack, null, '另一家物业');
  const peek = await other.call('/api/pay/query', { mchOrderNo: 'dup-1' });
  assert.equal(peek.status, 404);
  // an app with an IP allow-list refuses other addresses before reading anything
  const created = await fetch(`${stack.url}/v1/admin/merchants`, { method: 'POST', headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' }, body: JSON.stringify({ name: '白名单物业', ipAllowlist: ['10.1.2.3'] }) });
  assert.equal(created.status, 201);
  const fenced = (await created.json()) as { mchNo: string; appId: string; appSecret: string };
  const p: Record<string, unknown> = { ...order('ip-1'), mchNo: fenced.mchNo, appId: fenced.appId, reqTime: String(Date.now()), version: '1.0', signType: 'MD5' };
  p.sign = sign(p, fenced.appSecret, 'MD5');
  const refusedIp = await fetch(`${stack.url}/api/pay/unifiedOrder`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(p) });
  assert.equal(refusedIp.status, 403);
  assert.equal(((await refusedIp.json()) as { errCode: string }).errCode, 'IP_NOT_ALLOWED');
  const badIp = await fetch(`${stack.url}/v1/admin/merchants`, { method: 'POST', headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', ipAllowlist: ['not-an-ip'] }) });
  assert.equal(badIp.status, 400);
  const transferBad = await m.call('/api/transferOrder', { mchOrderNo: 'tb-1', entryType: 'CASH', amount: 1, currency: 'cny', accountNo: '1', transferDesc: 'x' });
  assert.equal(transferBad.status, 400);
});

test('notifications: a merchant endpoint that fails twice gets the notification on the third attempt; attempts are recorded', async () => {
  const own = await notifySink();
  const m2 = await merchant(stack, own.url, '重试测试物业');
  own.failNext = 2;
  const created = await m2.call('/api/pay/unifiedOrder', order('retry-1'));
  const payOrderId = String(created.body.data?.payOrderId);
  await stack.sandbox.pay(payOrderId);
  await waitFor('delivered after retries', async () => own.received.find((x) => x.payOrderId === payOrderId), 20_000);
  const n = await waitFor('recorded as delivered', async () => {
    const list = await fetch(`${stack.url}/v1/admin/notifications?refId=${payOrderId}`, { headers: { authorization: 'Bearer test-admin-token-0123456789' } });
    const [first] = ((await list.json()) as { notifications: Array<{ id: string; state: string; attempts: number }> }).notifications;
    return first?.state === 'delivered' ? first : null;
  });
  const detail = (await (await fetch(`${stack.url}/v1/admin/notifications/${n.id}`, { headers: { authorization: 'Bearer test-admin-token-0123456789' } })).json()) as { attempts_log: Array<{ http_status: number }> };
  assert.equal(detail.attempts_log.length, 3);
  assert.deepEqual(detail.attempts_log.map((a: { http_status: number }) => a.http_status), [500, 500, 200]);
  // an operator can resend it
  const before = own.received.filter((x) => x.payOrderId === payOrderId).length;
  const resend = await fetch(`${stack.url}/v1/admin/notifications/${n.id}/resend`, { method: 'POST', headers: { authorization: 'Bearer test-admin-token-0123456789' } });
  assert.equal(resend.status, 200);
  await waitFor('resent', async () => own.received.filter((x) => x.payOrderId === payOrderId).length > before);
  await own.close();
});

test('notifications: a merchant that never answers success is given up after the schedule, then marked failed', async () => {
  sink.answer = 'fail';
  try {
    const created = await m.call('/api/pay/unifiedOrder', order('giveup-1'));
    const payOrderId = String(created.body.data?.payOrderId);
    await stack.sandbox.pay(payOrderId);
    const headers = { authorization: 'Bearer test-admin-token-0123456789' };
    const n = await waitFor('gave up', async () => {
      const list = (await (await fetch(`${stack.url}/v1/admin/notifications?refId=${payOrderId}`, { headers })).json()) as { notifications: Array<{ state: string; attempts: number }> };
      return list.notifications.find((x: { state: string }) => x.state === 'failed');
    }, 30_000);
    assert.equal(n.attempts, 4, 'first attempt + 3 retries of the test schedule');
  } finally {
    sink.answer = 'success';
  }
});
