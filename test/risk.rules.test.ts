// Risk rules on order creation, through the signed Jeepay API: each rule both fires and
// stays quiet, refusals come in Jeepay's envelope with a stable errCode and write no
// order, hold-action rules let the order pay and hold its settlement for review, and the
// admin API validates what it is given.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { startStack, merchant, waitFor, order, ADMIN_TOKEN, type Stack, type MerchantClient } from './payment.harness.ts';

let stack: Stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack.close();
});

const db = () => stack.t.db.kysely;
async function admin(method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN) {
  const res = await fetch(stack.url + path, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: text.startsWith('{') ? JSON.parse(text) : null };
}
const rules = async (mchNo: string, body: Record<string, unknown>) => {
  const res = await admin('PUT', `/v1/admin/risk/rules/${mchNo}`, body);
  assert.equal(res.status, 200, res.text);
  return res.body;
};
const create = (m: MerchantClient, no: string, amount: number, extra: Record<string, unknown> = {}) => m.call('/api/pay/unifiedOrder', order(no, { amount, ...extra }));
const orders = async (mchNo: string) => Number((await sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_orders WHERE mch_no = ${mchNo}`.execute(db())).rows[0].n);
const holdsOf = async (mchNo: string) => (await sql<{ ref: string; amount_fen: bigint; reason: string }>`SELECT ref, amount_fen, reason FROM settle_holds WHERE mch_no = ${mchNo} ORDER BY ref`.execute(db())).rows;

async function pay(m: MerchantClient, no: string, amount: number, extra: Record<string, unknown> = {}): Promise<string> {
  const created = await create(m, no, amount, extra);
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const payOrderId = String(created.body.data?.payOrderId);
  await stack.sandbox.pay(payOrderId);
  await waitFor(`order ${no} paid`, async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  return payOrderId;
}

function refused(res: Awaited<ReturnType<MerchantClient['call']>>, errCode: string) {
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.code, 9999);
  assert.equal(res.body.errCode, errCode);
  assert.match(res.body.msg, / \/ /, 'zh-CN / English message');
}

test('single-order limit: above it refused (nothing written), at it accepted; with action hold the order pays and its settlement is held', async () => {
  const m = await merchant(stack);
  await rules(m.mchNo, { singleMaxFen: '50000' });
  refused(await create(m, 'single-1', 50001), 'RISK_LIMIT_EXCEEDED');
  assert.equal(await orders(m.mchNo), 0, 'a refused order is not stored');
  assert.equal((await create(m, 'single-2', 50000)).status, 200);

  const h = await merchant(stack, null, '审核商户');
  await rules(h.mchNo, { singleMaxFen: '50000', singleAction: 'hold' });
  const big = await pay(h, 'hold-1', 60000);
  await pay(h, 'hold-2', 40000);
  assert.deepEqual(await holdsOf(h.mchNo), [{ ref: `risk:rule:${big}`, amount_fen: 60000n, reason: 'risk' }], 'only the order above the limit is held');
  const alerts = (await admin('GET', '/v1/admin/risk/alerts?monitor=rule_hold')).body.alerts as Array<Record<string, any>>;
  assert.deepEqual(alerts.map((a) => a.subject), [big]);
  assert.equal(alerts[0].holdRef, `risk:rule:${big}`);
});

test('daily limit counts the merchant\'s successful orders today', async () => {
  const m = await merchant(stack);
  await rules(m.mchNo, { dailyMaxFen: '25000' });
  await pay(m, 'd-1', 10000);
  await pay(m, 'd-2', 10000);
  refused(await create(m, 'd-3', 10000), 'RISK_LIMIT_EXCEEDED');
  assert.equal((await create(m, 'd-4', 5000)).status, 200, 'up to the limit is fine');
});

test('payer velocity by client IP and by channel user (openid); other payers are unaffected', async () => {
  const m = await merchant(stack);
  await rules(m.mchNo, { velocityMax: 2, velocityWindowS: 600 });
  assert.equal((await create(m, 'v-1', 100, { clientIp: '203.0.113.9' })).status, 200);
  assert.equal((await create(m, 'v-2', 100, { clientIp: '203.0.113.9' })).status, 200);
  refused(await create(m, 'v-3', 100, { clientIp: '203.0.113.9' }), 'RISK_LIMIT_EXCEEDED');
  assert.equal((await create(m, 'v-4', 100, { clientIp: '203.0.113.10' })).status, 200, 'another IP');
  // a retry of an order already let through gets the same answer
  assert.equal((await create(m, 'v-1', 100, { clientIp: '203.0.113.9' })).status, 200);

  const openid = JSON.stringify({ openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' });
  assert.equal((await create(m, 'o-1', 100, { wayCode: 'WX_JSAPI', channelExtra: openid, clientIp: '198.51.100.1' })).status, 200);
  assert.equal((await create(m, 'o-2', 100, { wayCode: 'WX_JSAPI', channelExtra: openid, clientIp: '198.51.100.2' })).status, 200);
  refused(await create(m, 'o-3', 100, { wayCode: 'WX_JSAPI', channelExtra: openid, clientIp: '198.51.100.3' }), 'RISK_LIMIT_EXCEEDED');
});

test('amount far above the merchant\'s recent pattern: held for review by default; within k × the mean passes; no history, no judgement', async () => {
  const m = await merchant(stack);
  await rules(m.mchNo, { patternFactor: 3, patternSamples: 5 });
  const early = await pay(m, 'p-0', 90000); // fewer than 5 orders: no pattern yet
  for (let i = 1; i <= 5; i += 1) await pay(m, `p-${i}`, 1000);
  const normal = await pay(m, 'p-6', 2500); // mean of last 5 ≈ 1000 (the 90,000 has dropped out): 2.5× passes
  const spike = await pay(m, 'p-7', 50000);
  const holds = await holdsOf(m.mchNo);
  assert.deepEqual(holds.map((h) => h.ref), [`risk:rule:${spike}`]);
  assert.ok(![early, normal].some((id) => holds.some((h) => h.ref.endsWith(id))));

  await rules(m.mchNo, { patternFactor: 3, patternSamples: 5, patternAction: 'refuse' });
  refused(await create(m, 'p-8', 900000), 'RISK_LIMIT_EXCEEDED');
});

test('blocklists refuse by payer IP, payer account and merchant, and unblocking lets orders through again', async () => {
  const m = await merchant(stack);
  const put = async (kind: string, value: string) => assert.equal((await admin('PUT', '/v1/admin/risk/blocklist', { kind, value, reason: '盗刷 / card testing' })).status, 200);
  await put('ip', '192.0.2.66');
  refused(await create(m, 'b-1', 100, { clientIp: '192.0.2.66' }), 'RISK_BLOCKED');
  assert.equal((await create(m, 'b-2', 100, { clientIp: '192.0.2.67' })).status, 200);
  await put('payer', 'o-blocked-user');
  refused(await create(m, 'b-3', 100, { wayCode: 'WX_JSAPI', channelExtra: JSON.stringify({ openid: 'o-blocked-user' }) }), 'RISK_BLOCKED');
  await put('merchant', m.mchNo);
  refused(await create(m, 'b-4', 100), 'RISK_BLOCKED');
  const list = (await admin('GET', '/v1/admin/risk/blocklist')).body.entries as Array<Record<string, string>>;
  assert.equal(list.length, 3);
  assert.equal((await admin('DELETE', `/v1/admin/risk/blocklist/merchant/${m.mchNo}`)).status, 200);
  assert.equal((await admin('DELETE', `/v1/admin/risk/blocklist/merchant/${m.mchNo}`)).body.code, 'RISK_BLOCK_NOT_FOUND');
  assert.equal((await create(m, 'b-5', 100)).status, 200);
});

test('the default rules (*) apply to merchants without their own; a merchant\'s own row replaces them', async () => {
  await rules('*', { singleMaxFen: '100000' });
  const m = await merchant(stack);
  refused(await create(m, 'def-1', 100001), 'RISK_LIMIT_EXCEEDED');
  await rules(m.mchNo, {});
  assert.equal((await create(m, 'def-2', 100001)).status, 200);
  await rules('*', {});
});

test('the rules API refuses bad input and callers without the admin token', async () => {
  const bad = [
    { singleMaxFen: '-1' }, { singleMaxFen: '0' }, { singleMaxFen: 100 }, { singleAction: 'maybe' }, { velocityMax: 0 },
    { velocityWindowS: 100000 }, { patternFactor: 1 }, { patternSamples: 2 }, { unknown: 1 },
  ];
  for (const body of bad) {
    const res = await admin('PUT', '/v1/admin/risk/rules/M1', body);
    assert.equal(res.status, 400, `${JSON.stringify(body)} → ${res.text}`);
    assert.ok(res.body.code, res.text);
  }
  assert.equal((await admin('PUT', '/v1/admin/risk/rules/bad%00mch', {})).status, 400);
  assert.equal((await admin('PUT', '/v1/admin/risk/blocklist', { kind: 'ip', value: 'a\u0000b', reason: 'x' })).status, 400);
  assert.equal((await admin('PUT', '/v1/admin/risk/blocklist', { kind: 'card', value: 'x', reason: 'x' })).status, 400);
  assert.equal((await admin('GET', '/v1/admin/risk/rules', undefined, null)).status, 401);
  assert.equal((await admin('PUT', '/v1/admin/risk/rules/M1', {}, 'wrong-token-wrong-token')).status, 401);
});
