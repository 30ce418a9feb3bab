// Loss-prevention monitors on a real stack: a clean day (orders, a refund, a settlement
// paid out, maintenance-fund deposits online and at the counter) raises nothing; then
// each monitor catches a breach planted directly in the database, stores one alert per
// subject, holds settlement where money could leak, shows it in /metrics, and posts it
// to a robot webhook (a real loopback HTTP server) in the WeCom markdown format.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { sql } from 'kysely';
import { startStack, merchant, waitFor, order, ADMIN_TOKEN, type Stack, type MerchantClient } from './payment.harness.ts';
import { apiOf, setUpCity, importCsv, csvRow, type Api } from './fund.deposit.harness.ts';

let stack: Stack;
let api: Api;
let sandboxAt = new Date('2026-10-29T10:00:00+08:00');
const posts: Array<Record<string, any>> = [];
let hook: Server;
let property: MerchantClient;
const paid: string[] = [];
let unitIds: string[] = [];

before(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      posts.push({ contentType: req.headers['content-type'], body: JSON.parse(body) });
      res.setHeader('content-type', 'application/json');
      res.end('{"errcode":0,"errmsg":"ok"}');
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  const hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/cgi-bin/webhook/send?key=test`;
  stack = await startStack({ sandboxNow: () => sandboxAt, env: { CUSTOS_ALERT_WEBHOOK_URL: hookUrl } });
  api = apiOf(stack);
});
after(async () => {
  await stack.close();
  await new Promise<void>((resolve) => hook.close(() => resolve()));
});

const db = () => stack.t.db.kysely;
const run = () => stack.platform.risk.runMonitors();
async function admin(method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN) {
  const res = await fetch(stack.url + path, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : null };
}
const alerts = async (monitor: string) => (await admin('GET', `/v1/admin/risk/alerts?monitor=${monitor}`)).body.alerts as Array<Record<string, any>>;
const hold = async (ref: string) => (await sql<{ amount_fen: bigint; state: string; reason: string; mch_no: string }>`SELECT amount_fen, state, reason, mch_no FROM settle_holds WHERE ref = ${ref}`.execute(db())).rows[0];

async function pay(m: MerchantClient, mchOrderNo: string, amount: number): Promise<string> {
  const created = await m.call('/api/pay/unifiedOrder', order(mchOrderNo, { amount }));
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const payOrderId = String(created.body.data?.payOrderId);
  await stack.sandbox.pay(payOrderId);
  await waitFor(`order ${mchOrderNo} paid`, async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  return payOrderId;
}

test('a clean day raises nothing: orders, a refund, a settlement paid out, fund deposits online and at the counter', async () => {
  property = await merchant(stack, null, '幸福里物业');
  const party = await admin('PUT', `/v1/admin/settlement/merchants/${property.mchNo}/party`, { cycle: 'T1', accountNo: '6222020200112233445', accountName: '幸福里物业', bankName: '工商银行' });
  assert.equal(party.status, 200, party.text);
  for (const [no, amount] of [['pf-1', 120000], ['park-1', 3000], ['elev-1', 5000], ['pf-2', 88000]] as const) paid.push(await pay(property, no, amount));
  const refund = await property.call('/api/refund/refundOrder', { payOrderId: paid[2], mchRefundNo: 'elev-1-r1', refundAmount: 2000, currency: 'cny', refundReason: '部分退款' });
  assert.equal(refund.status, 200, JSON.stringify(refund.body));
  await waitFor('refund settled', async () => (await property.call('/api/refund/query', { mchRefundNo: 'elev-1-r1' })).body.data?.state === 2);
  const run1 = await admin('POST', '/v1/admin/settlement/runs', { date: '2026-10-30' });
  assert.equal(run1.status, 200, run1.text);
  await waitFor('payout paid', async () => {
    const list = (await admin('GET', `/v1/admin/settlement/parties/mch:${property.mchNo}:pending/settlements`)).body.payouts as Array<Record<string, string>>;
    return list.some((p) => p.state === 'success');
  });

  // The maintenance fund: a city, two houses, one deposit paid online, one at the bank counter.
  await setUpCity(api);
  const imported = await importCsv(api, [csvRow({ room: '101', owner: '张三', idNo: '330102199001011234', phone: '13800000001', sold: '是' }), csvRow({ room: '102', owner: '李四', idNo: '330102199001011235', phone: '13800000002', sold: '是' })]);
  assert.equal(imported.status, 200, JSON.stringify(imported.body));
  const units = (await api('GET', '/v1/fund/units')).body.units as Array<Record<string, string>>;
  unitIds = units.map((u) => u.id);
  assert.equal((await api('POST', '/v1/fund/bills/generate', { estateId: units[0].estateId })).status, 200);
  const billOf = async (unitId: string) => ((await api('GET', `/v1/fund/bills?unitId=${unitId}`)).body.bills as Array<Record<string, any>>)[0];
  const online = await billOf(units[0].id);
  const payRes = await api('POST', `/v1/fund/bills/${online.id}/pay`, {});
  assert.equal(payRes.status, 200, JSON.stringify(payRes.body));
  const chosen = await fetch(`${stack.url}/cashier/${payRes.body.payOrderId}/pay`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'wayCode=WX_H5' });
  assert.equal(chosen.status, 303);
  await stack.sandbox.pay(payRes.body.payOrderId);
  await waitFor('bill paid online', async () => (await billOf(units[0].id)).state === 'paid');
  const counterBill = await billOf(units[1].id);
  const counter = await api('POST', `/v1/fund/bills/${counterBill.id}/counter-payments`, { bankRef: 'ICBC-20261029-0001', amountFen: counterBill.amountFen, channel: 'counter' });
  assert.equal(counter.status, 201, JSON.stringify(counter.body));

  const found = await run();
  assert.deepEqual(found, { payment_posting: 0, refund_overrun: 0, payout_settlement: 0, fund_balance: 0, ledger_invariant: 0, stuck_work: 0 });
  assert.deepEqual((await admin('GET', '/v1/admin/risk/alerts')).body.alerts, []);
  assert.equal(posts.length, 0, 'nothing posted to the robot');
  const metrics = await admin('GET', '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /custos_risk_open_alerts\{monitor="payment_posting"\} 0/);
  // A second run reads only what changed (watermarks) and stays quiet.
  assert.deepEqual(Object.values(await run()), [0, 0, 0, 0, 0, 0]);
});

test('a payment posting deleted in the database: one alert, settlement held, robot post with the runbook, /metrics counts it', async () => {
  const victim = paid[3];
  await sql`DELETE FROM ledger_transfers WHERE id = ${`pay:${victim}`}`.execute(db());
  // the monitor's watermark has passed this order: the overlap window still covers it
  const found = await run();
  assert.equal(found.payment_posting, 1);
  const [a] = await alerts('payment_posting');
  assert.equal(a.subject, victim);
  assert.equal(a.state, 'open');
  assert.equal(a.amountFen, '88000');
  assert.equal(a.holdRef, `risk:payment_posting:${victim}`);
  const h = await hold(a.holdRef);
  assert.deepEqual({ ...h }, { amount_fen: 88000n, state: 'open', reason: 'risk', mch_no: property.mchNo });

  await waitFor('robot post', async () => posts.length >= 1);
  assert.equal(posts.length, 1);
  assert.match(String(posts[0].contentType), /application\/json/);
  assert.equal(posts[0].body.msgtype, 'markdown');
  const content = String(posts[0].body.markdown.content);
  assert.match(content, /payment_posting/);
  assert.match(content, new RegExp(victim));
  assert.match(content, /处置 \/ runbook: /);

  // Seen again: the same alert, counted, not posted twice, no second hold.
  await run();
  const again = await alerts('payment_posting');
  assert.equal(again.length, 1);
  assert.equal(again[0].seenCount, 2);
  assert.equal(posts.length, 1);
  assert.match((await admin('GET', '/metrics')).text, /custos_risk_open_alerts\{monitor="payment_posting"\} 1/);

  // Acknowledged: out of the open gauge; the hold stays until settlement releases it.
  const ack = await admin('POST', `/v1/admin/risk/alerts/${a.id}/ack`, { note: '补记后释放 / re-posted' });
  assert.equal(ack.status, 200, ack.text);
  assert.equal(ack.body.state, 'acked');
  assert.match((await admin('GET', '/metrics')).text, /custos_risk_open_alerts\{monitor="payment_posting"\} 0/);
  assert.equal((await hold(a.holdRef)).state, 'open');
  assert.equal((await admin('POST', '/v1/admin/risk/alerts/999999/ack', {})).body.code, 'RISK_ALERT_NOT_FOUND');
  assert.equal((await admin('POST', '/v1/admin/risk/alerts/abc/ack', {})).status, 400);
  assert.equal((await admin('GET', '/v1/admin/risk/alerts', undefined, null)).status, 401);
  assert.equal((await admin('GET', '/v1/admin/risk/alerts?state=bogus')).status, 400);
});

test('an over-refund forced past the service with SQL: alert and a hold of the excess', async () => {
  await sql`UPDATE pay_refunds SET refund_amount = 5300, updated_at = now() WHERE mch_refund_no = 'elev-1-r1'`.execute(db());
  const found = await run();
  assert.equal(found.refund_overrun, 1);
  const [a] = await alerts('refund_overrun');
  assert.equal(a.subject, paid[2]);
  assert.equal(a.amountFen, '300', 'the excess over the 5,000 paid');
  assert.equal((await hold(a.holdRef)).amount_fen, 300n);
  await waitFor('robot post', async () => posts.some((p) => String(p.body.markdown.content).includes('refund_overrun')));
});

test('a payout that differs from its settlement: alert and a hold of the difference', async () => {
  const [p] = (await sql<{ payout_id: string }>`SELECT payout_id FROM settle_payouts ORDER BY created_at LIMIT 1`.execute(db())).rows;
  await sql`UPDATE settle_payouts SET amount_fen = amount_fen + 100, updated_at = now() WHERE payout_id = ${p.payout_id}`.execute(db());
  const found = await run();
  assert.equal(found.payout_settlement, 1);
  const [a] = await alerts('payout_settlement');
  assert.equal(a.subject, p.payout_id);
  assert.equal((await hold(a.holdRef)).amount_fen, 100n);
});

test('a notification overdue on its schedule is stuck work', async () => {
  const inserted = await sql<{ id: string }>`
    INSERT INTO pay_notifications (kind, ref_id, mch_no, app_id, notify_url, body, state, next_at)
    VALUES ('pay_order', ${paid[0]}, ${property.mchNo}, ${property.appId}, 'http://127.0.0.1:9/n', 'x=1', 0, now() - interval '2 hours')
    RETURNING id::text AS id`.execute(db());
  const found = await run();
  assert.equal(found.stuck_work, 1);
  const [a] = await alerts('stuck_work');
  assert.equal(a.subject, `notification:${inserted.rows[0].id}`);
  assert.equal(a.holdRef, null, 'no money leaks from a late notification: no hold');
  await sql`DELETE FROM pay_notifications WHERE id = ${inserted.rows[0].id}::int8`.execute(db());
});

test('a ledger transfer altered after the mark: the accounts it touched disagree with their balances', async () => {
  const id = await pay(property, 'pf-3', 7000);
  await sql`UPDATE ledger_transfers SET amount = amount + 1 WHERE id = ${`pay:${id}`}`.execute(db());
  const found = await run();
  assert.ok(found.ledger_invariant >= 1, JSON.stringify(found));
  const subjects = (await alerts('ledger_invariant')).map((a) => a.subject).sort();
  assert.ok(subjects.includes(`account:mch:${property.mchNo}:pending`), subjects.join(','));
  await sql`UPDATE ledger_transfers SET amount = amount - 1 WHERE id = ${`pay:${id}`}`.execute(db());
});

test('a household balance changed in the database: the fund no longer sums to its supervision account, the ledger is unbalanced', async () => {
  await sql`UPDATE ledger_accounts SET credits_posted = credits_posted + 500 WHERE id = ${`hh:${unitIds[0]}:principal`}`.execute(db());
  const found = await run();
  assert.equal(found.fund_balance, 1);
  const [a] = await alerts('fund_balance');
  assert.equal(a.subject, 'city:hz');
  assert.equal(a.details.differenceFen, '500');
  assert.ok((await alerts('ledger_invariant')).some((x) => x.subject === 'ledger:1'), 'Σ debits ≠ Σ credits');
  await sql`UPDATE ledger_accounts SET credits_posted = credits_posted - 500 WHERE id = ${`hh:${unitIds[0]}:principal`}`.execute(db());
});
