// Clearing and settlement end to end through real HTTP: a property company's day
// (property, parking and elevator fees, a prepaid electricity top-up collected for
// the power bureau, a repair order whose labor goes to a contractor and whose 3% is
// the platform's, a refund) settled on the next working day and paid through the
// sandbox bank channel, the bureau's money remitted on its own cycle, the ledger
// verified, the statements adding up to the ledger. Then failed payouts, holds,
// running twice (and at once on PostgreSQL), holidays, and bad input.
// The sandbox's clock says when payments happen (past days, so they can be settled).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import ExcelJS from 'exceljs';
import { sql } from 'kysely';
import { startStack, merchant, waitFor, order, sandboxApi, type Stack, type MerchantClient } from './payment.harness.ts';
import { ADMIN_TOKEN } from './payment.harness.ts';
import { PG_ONLY } from './helpers.ts';

let stack: Stack;
let sandboxAt = new Date('2026-10-29T10:00:00+08:00');

before(async () => {
  stack = await startStack({ sandboxNow: () => sandboxAt });
});
after(async () => {
  await stack.close();
});

async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, any>; raw: Buffer; type: string }> {
  const res = await fetch(stack.url + path, {
    method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const raw = Buffer.from(await res.arrayBuffer());
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, raw, type, body: type.includes('json') ? JSON.parse(raw.toString()) : {} };
}

async function pay(m: MerchantClient, mchOrderNo: string, amount: number, extra: Record<string, unknown> = {}): Promise<string> {
  const created = await m.call('/api/pay/unifiedOrder', order(mchOrderNo, { amount, ...extra }));
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const payOrderId = String(created.body.data?.payOrderId);
  await stack.sandbox.pay(payOrderId);
  await waitFor(`order ${mchOrderNo} paid`, async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  return payOrderId;
}

const count = async (table: string) => Number((await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM ${sql.table(table)}`.execute(stack.t.db.kysely)).rows[0].n);
const account = (id: string) => stack.platform.ledger.getAccount(id);
/** What the party could still be paid: posted credits less posted and pending debits. */
const available = async (id: string) => {
  const a = await account(id);
  return a.credits_posted - a.debits_posted - a.debits_pending;
};
const partyOf = (mchNo: string) => `mch:${mchNo}:pending`;
let accountSeq = 0;

/** A merchant with a bank account to be paid to (without one, settlements wait for an operator). */
async function payee(name: string): Promise<MerchantClient> {
  const m = await merchant(stack, null, name);
  accountSeq += 1;
  const res = await admin('PUT', `/v1/admin/settlement/merchants/${m.mchNo}/party`, { accountNo: `62220202${String(accountSeq).padStart(8, '0')}`, accountName: name, bankName: '测试银行' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return m;
}

async function settle(date: string) {
  const res = await admin('POST', '/v1/admin/settlement/runs', { date });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function payoutsOf(partyId: string): Promise<Array<Record<string, string>>> {
  return (await admin('GET', `/v1/admin/settlement/parties/${partyId}/settlements`)).body.payouts;
}

async function waitPayouts(partyId: string, n: number, state: string) {
  return waitFor(`${n} payouts ${state} for ${partyId}`, async () => {
    const list = await payoutsOf(partyId);
    return list.filter((p) => p.state === state).length >= n ? list : null;
  });
}

test('a property company\'s day: fees, collections, a repair split, a refund; settled T+1, the utility remitted on its own cycle, ledger and statements tie', async () => {
  sandboxAt = new Date('2026-10-29T10:00:00+08:00'); // a Thursday
  const property = await merchant(stack, null, '幸福里物业服务有限公司');
  const contractor = await payee('安家维修工程队');
  const P = partyOf(property.mchNo);
  const C = partyOf(contractor.mchNo);
  const U = `util:${property.mchNo}:power`;

  // Property fees settle with no cut; repair orders pay the platform 3%; the channel costs 0.2%.
  assert.equal((await admin('PUT', `/v1/admin/settlement/merchants/${property.mchNo}/fee-rules`, { rule: { rate: '0' } })).status, 200);
  assert.equal((await admin('PUT', `/v1/admin/settlement/merchants/${property.mchNo}/fee-rules`, { category: 'repair', rule: { rate: '0.03', rounding: 'half_up', refundMode: 'proportional' } })).status, 200);
  assert.equal((await admin('PUT', '/v1/admin/settlement/channels/sandbox/cost-rule', { rule: { rate: '0.002', refundMode: 'proportional' } })).status, 200);
  const cfg = await admin('PUT', `/v1/admin/settlement/merchants/${property.mchNo}/party`, { cycle: 'T1', accountNo: '6222020200112233445', accountName: '幸福里物业服务有限公司', bankName: '工商银行' });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  const util = await admin('PUT', `/v1/admin/settlement/merchants/${property.mchNo}/party`, { bureau: 'power', name: '国网供电公司 代收电费', cycle: 'monthly', accountNo: '95588000111', accountName: '国网某市供电公司' });
  assert.equal(util.status, 200, JSON.stringify(util.body));
  assert.equal(util.body.party_id, U);
  assert.equal(util.body.cycle, 'monthly');

  const propertyFee = await pay(property, 'pf-2026-10-301', 120000, { subject: '2026年10月物业费' });
  await pay(property, 'park-2026-10-301', 3000, { subject: '车位管理费' });
  const elevator = await pay(property, 'elev-2026-10-301', 5000, { subject: '电梯费' });
  const topUp = await pay(property, 'elec-301-1', 20000, { subject: '预付电费充值', extParam: JSON.stringify({ custos: { category: 'utility', bureau: 'power' } }) });
  const repair = await pay(property, 'repair-301-1', 30000, {
    subject: '报修工单 水管更换',
    extParam: JSON.stringify({ custos: { category: 'repair', lines: [{ kind: 'labor', amountFen: 20000, payee: contractor.mchNo }, { kind: 'material', amountFen: 10000 }] } }),
  });

  // Fees are computed once, at success, and stored with the order.
  const fees = (await sql<{ pay_order_id: string; fee_fen: bigint; channel_cost_fen: bigint; category: string }>`SELECT pay_order_id, fee_fen, channel_cost_fen, category FROM settle_order_fees WHERE mch_no = ${property.mchNo}`.execute(stack.t.db.kysely)).rows;
  const feeOf = new Map(fees.map((f) => [f.pay_order_id, f]));
  assert.equal(feeOf.get(propertyFee)?.fee_fen, 0n, 'property fees: no cut');
  assert.equal(feeOf.get(repair)?.fee_fen, 900n, 'repair: the platform keeps 3%');
  assert.equal(feeOf.get(repair)?.category, 'repair');
  assert.equal(feeOf.get(topUp)?.category, 'utility');
  assert.equal(feeOf.get(propertyFee)?.channel_cost_fen, 240n);

  // The operator refunds the elevator fee in full.
  const refund = await property.call('/api/refund/refundOrder', { payOrderId: elevator, mchRefundNo: 'elev-301-r1', refundAmount: 5000, currency: 'cny', refundReason: '电梯费误收 / charged by mistake' });
  assert.equal(refund.status, 200, JSON.stringify(refund.body));
  await waitFor('refund settled', async () => (await property.call('/api/refund/query', { mchRefundNo: 'elev-301-r1' })).body.data?.state === 2);

  // Before the day is settled: the bureau's money is in its own account, the contractor has its share.
  assert.equal(await available(U), 20000n);
  assert.equal(await available(C), 19400n, 'labor 2/3 of the 29,100 left after the fee');
  assert.equal(await available(P), 120000n + 3000n + 5000n - 5000n + 9700n);
  assert.equal((await account('plat:fee_income')).credits_posted - (await account('plat:fee_income')).debits_posted, 900n);

  // Nothing is available on the day itself (T+1); the next working day (Friday) settles.
  const batch = await settle('2026-10-30');
  assert.equal(batch.settleDate, '2026-10-30');
  const bd = await admin('GET', '/v1/admin/settlement/batches/2026-10-30');
  const mine = (bd.body.settlements as Array<Record<string, string>>).filter((s) => [P, C, U].includes(s.party_id));
  assert.deepEqual(mine.map((s) => s.party_id).sort(), [C, P].sort(), 'the utility is not settled on the merchants\' cycle');
  const ps = mine.find((s) => s.party_id === P) as Record<string, string>;
  assert.equal(ps.gross_fen, String(120000 + 3000 + 5000 + 20000 + 30000));
  assert.equal(ps.fee_fen, '900');
  assert.equal(ps.refund_fen, '5000');
  assert.equal(ps.other_fen, String(-20000 - 19400));
  assert.equal(ps.net_fen, '132700');
  await waitPayouts(P, 1, 'success');
  await waitPayouts(C, 1, 'success');
  assert.equal(await available(P), 0n);
  assert.equal(await available(C), 0n);
  assert.equal(await available(U), 20000n, 'the bureau\'s money waits for its own cycle');

  // Run again: the same batch, nothing paid twice.
  const again = await settle('2026-10-30');
  assert.equal(again.batchId, batch.batchId);
  assert.equal(again.createdNow, 0);
  assert.equal((await payoutsOf(P)).length, 1);

  // The bureau's monthly remittance: the first working day of November.
  const nov = await settle('2026-11-02');
  assert.equal(nov.settleDate, '2026-11-02');
  const [remit] = await waitPayouts(U, 1, 'success');
  assert.equal(remit.amount_fen, '20000');
  assert.equal(remit.account_no, '95588000111');
  assert.equal(await available(U), 0n);

  // The sandbox bank got each payout once, under the payout id.
  for (const p of [...(await payoutsOf(P)), ...(await payoutsOf(U))]) {
    const seen = await sandboxApi(stack, 'GET', `/v1/transfers/${p.payout_id}`);
    assert.equal(seen.status, 200);
    assert.equal(String(seen.data.amount), p.amount_fen);
  }

  // Statements add up to the ledger: opening + entries = closing = the account's balance.
  for (const party of [P, C, U]) {
    const st = await admin('GET', `/v1/admin/settlement/statements/${party}?from=2026-10-01&to=2099-12-31`);
    assert.equal(st.status, 200, JSON.stringify(st.body));
    const sum = (st.body.rows as Array<{ amount_fen: string }>).reduce((s, r) => s + BigInt(r.amount_fen), 0n);
    assert.equal(BigInt(st.body.openingFen) + sum, BigInt(st.body.closingFen));
    const a = await account(party);
    assert.equal(BigInt(st.body.closingFen), a.credits_posted - a.debits_posted - a.debits_pending, `${party}: statement closing = ledger balance`);
  }
  const pst = await admin('GET', `/v1/admin/settlement/statements/${P}?from=2026-10-01&to=2099-12-31`);
  assert.equal(pst.body.totals.payment, String(120000 + 3000 + 5000 + 20000 + 30000));
  assert.equal(pst.body.totals.fee, '-900');
  assert.equal(pst.body.totals.refund, '-5000');
  assert.equal(pst.body.totals.payout, '-132700');

  const csv = await admin('GET', `/v1/admin/settlement/statements/${P}?from=2026-10-01&to=2099-12-31&format=csv`);
  assert.equal(csv.status, 200);
  assert.match(csv.type, /text\/csv/);
  const text = csv.raw.toString('utf8');
  assert.match(text, /期末余额 closing_fen,0,0\.00/);
  assert.ok(text.includes(elevator) && text.includes(repair), 'every order is on the statement');
  const xlsx = await admin('GET', `/v1/admin/settlement/statements/${P}?from=2026-10-01&to=2099-12-31&format=xlsx`);
  assert.equal(xlsx.status, 200);
  const book = new ExcelJS.Workbook();
  await book.xlsx.load(xlsx.raw as never);
  const sheet = book.worksheets[0];
  let fenSum = 0;
  sheet.eachRow((row, n) => {
    if (n > 4 && typeof row.getCell(4).value === 'number' && row.getCell(1).value !== '合计 total') fenSum += row.getCell(4).value as number;
  });
  assert.equal(fenSum, 0, 'the Excel rows add up to the closing balance (0 after the payout)');

  const report = await stack.platform.ledger.verify();
  assert.equal(report.balanced, true, JSON.stringify(report));
});

test('a failed payout returns the funds to the party; the next run pays them again', async () => {
  sandboxAt = new Date('2026-11-05T09:00:00+08:00'); // Thursday
  const m = await payee('失败出款物业');
  const party = partyOf(m.mchNo);
  await pay(m, 'fail-1', 8800);
  await sandboxApi(stack, 'POST', '/v1/sim/faults/reset');
  const faults = await fetch(`${stack.sandboxUrl}/v1/sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ transferResult: 'FAILED' }) });
  assert.equal(faults.status, 200);
  await settle('2026-11-06');
  const [failed] = await waitPayouts(party, 1, 'failed');
  // The bank's own code, from its answer to our query (a notification only triggers the query).
  assert.equal(failed.err_code, 'ACCOUNT_ERROR');
  const a = await account(party);
  assert.equal(a.debits_pending, 0n, 'the hold was voided');
  assert.equal(await available(party), 8800n, 'the money is the merchant\'s again');
  const st = await admin('GET', `/v1/admin/settlement/parties/${party}/settlements`);
  assert.equal(st.body.settlements[0].state, 'payout_failed');

  await fetch(`${stack.sandboxUrl}/v1/sim/faults/reset`, { method: 'POST' });
  await settle('2026-11-09'); // Monday
  const list = await waitPayouts(party, 1, 'success');
  assert.equal(list.length, 2);
  assert.equal(list.find((p) => p.state === 'success')?.amount_fen, '8800');
  assert.equal(await available(party), 0n);
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('a risk hold keeps money back from settlement until released', async () => {
  sandboxAt = new Date('2026-11-16T09:00:00+08:00'); // Monday
  const m = await payee('冻结测试物业');
  const party = partyOf(m.mchNo);
  await pay(m, 'hold-1', 10000);
  const placed = await admin('POST', '/v1/admin/settlement/holds', { ref: 'risk-hold-1', mchNo: m.mchNo, amountFen: '3000', note: '投诉核查中' });
  assert.equal(placed.status, 201, JSON.stringify(placed.body));
  const same = await admin('POST', '/v1/admin/settlement/holds', { ref: 'risk-hold-1', mchNo: m.mchNo, amountFen: '3000' });
  assert.equal(same.status, 201, 'placing the same hold again is a no-op');
  const clash = await admin('POST', '/v1/admin/settlement/holds', { ref: 'risk-hold-1', mchNo: m.mchNo, amountFen: '3001' });
  assert.equal(clash.status, 409);
  assert.equal(clash.body.code, 'HOLD_CONFLICT');
  await settle('2026-11-17');
  const [first] = await waitPayouts(party, 1, 'success');
  assert.equal(first.amount_fen, '7000');
  const s1 = (await admin('GET', `/v1/admin/settlement/parties/${party}/settlements`)).body.settlements[0];
  assert.equal(s1.hold_fen, '3000');
  assert.equal(await available(party), 3000n);

  await settle('2026-11-18'); // still held: nothing paid
  assert.equal((await payoutsOf(party)).length, 1);
  const released = await admin('DELETE', '/v1/admin/settlement/holds/risk-hold-1');
  assert.equal(released.status, 200);
  assert.equal(released.body.state, 'released');
  assert.equal((await admin('DELETE', '/v1/admin/settlement/holds/risk-hold-1')).status, 200, 'releasing twice changes nothing');
  await settle('2026-11-19');
  const list = await waitPayouts(party, 2, 'success');
  assert.deepEqual(list.map((p) => p.amount_fen).sort(), ['3000', '7000']);
  assert.equal(await available(party), 0n);
});

test('running the same settlement twice pays once', async () => {
  sandboxAt = new Date('2026-11-12T09:00:00+08:00');
  const ms = [await payee('重复结算A'), await payee('重复结算B')];
  for (const [i, m] of ms.entries()) await pay(m, `twice-${i}`, 1000 + i);
  const a = await settle('2026-11-13');
  const b = await settle('2026-11-13');
  assert.equal(a.batchId, b.batchId);
  assert.equal(b.createdNow, 0);
  for (const m of ms) {
    await waitPayouts(partyOf(m.mchNo), 1, 'success');
    assert.equal((await payoutsOf(partyOf(m.mchNo))).length, 1);
    assert.equal(await available(partyOf(m.mchNo)), 0n);
  }
});

test('the same settlement run concurrently pays once (PostgreSQL)', { skip: PG_ONLY }, async () => {
  sandboxAt = new Date('2026-11-10T09:00:00+08:00'); // Tuesday
  const ms = [];
  for (let i = 0; i < 4; i += 1) ms.push(await payee(`并发结算${i}`));
  for (const [i, m] of ms.entries()) await pay(m, `conc-${i}`, 2000 + i);
  const runs = await Promise.all([0, 1, 2, 3].map(() => admin('POST', '/v1/admin/settlement/runs', { date: '2026-11-11' })));
  for (const r of runs) assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(new Set(runs.map((r) => r.body.batchId)).size, 1);
  assert.equal(runs.reduce((s, r) => s + Number(r.body.createdNow), 0), 4, 'each settlement made by exactly one of the runs');
  for (const [i, m] of ms.entries()) {
    const list = await waitPayouts(partyOf(m.mchNo), 1, 'success');
    assert.equal(list.length, 1);
    assert.equal(list[0].amount_fen, String(2000 + i));
    assert.equal(await available(partyOf(m.mchNo)), 0n);
  }
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('business days: paid before National Day, available after it; the 2027 Spring Festival from the override table', async () => {
  sandboxAt = new Date('2026-09-30T15:00:00+08:00');
  const m = await payee('节假日物业');
  const party = partyOf(m.mchNo);
  const paid = await pay(m, 'holiday-1', 4200);
  const entryDay = async (ref: string) => (await sql<{ d: string }>`SELECT to_char(available_on, 'YYYY-MM-DD') AS d FROM settle_entries WHERE ref = ${ref} AND kind = 'payment'`.execute(stack.t.db.kysely)).rows[0].d;
  assert.equal(await entryDay(paid), '2026-10-08');
  await settle('2026-10-07');
  assert.equal((await payoutsOf(party)).length, 0, 'nothing during the holiday');
  await settle('2026-10-08');
  await waitPayouts(party, 1, 'success');

  // chinese-days 1.5.7 has no 2027 data. These rows are operator-entered TEST DATA in the
  // shape of a State Council notice, not the official 2027 schedule.
  const note = 'operator-entered test data, not the official 2027 notice';
  const put = await admin('PUT', '/v1/admin/settlement/calendar', {
    days: [
      ...['2027-02-05', '2027-02-06', '2027-02-07', '2027-02-08', '2027-02-09', '2027-02-10', '2027-02-11', '2027-02-12', '2027-02-13'].map((day) => ({ day, kind: 'holiday', note })),
      { day: '2027-01-31', kind: 'workday', note }, { day: '2027-02-20', kind: 'workday', note },
    ],
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const q = await admin('GET', '/v1/admin/settlement/calendar/2027-02-04');
  assert.deepEqual(q.body, { date: '2027-02-04', businessDay: true, nextBusinessDay: '2027-02-15' });
  assert.equal((await admin('GET', '/v1/admin/settlement/calendar/2027-01-30')).body.nextBusinessDay, '2027-01-31', 'a Sunday made a working day');
  sandboxAt = new Date('2027-02-04T11:00:00+08:00');
  assert.equal(await entryDay(await pay(m, 'spring-1', 100)), '2027-02-15');
  sandboxAt = new Date('2027-02-19T11:00:00+08:00');
  assert.equal(await entryDay(await pay(m, 'spring-2', 100)), '2027-02-20', 'the working Saturday');
  const bad = await admin('PUT', '/v1/admin/settlement/calendar', { days: [{ day: '2027-02-30', kind: 'holiday', note }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 'PARAM_INVALID');
});

test('bad input: 4xx with a stable code, and nothing written', async () => {
  const m = await merchant(stack, null, '错误输入物业');
  const rulesBefore = await count('settle_fee_rules');
  for (const rule of [{ rate: '1.5' }, { rate: 0.006 }, { rate: '0.01', minFen: '10', maxFen: '5' }, { rate: '0.01', rounding: 'banker' }, { rate: '0.01', refundMode: 'some' }, { rate: '0.01', surprise: 1 }]) {
    const res = await admin('PUT', `/v1/admin/settlement/merchants/${m.mchNo}/fee-rules`, { rule });
    assert.equal(res.status, 400, JSON.stringify(rule));
    assert.equal(res.body.code, 'FEE_RULE_INVALID', JSON.stringify(res.body));
    assert.ok(typeof res.body.requestId === 'string' && res.body.message.length > 10);
  }
  assert.equal(await count('settle_fee_rules'), rulesBefore);

  const unknown = await admin('PUT', '/v1/admin/settlement/merchants/M000000000/fee-rules', { rule: { rate: '0.01' } });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, 'MERCHANT_NOT_FOUND');
  const unknownParty = await admin('PUT', '/v1/admin/settlement/merchants/M000000000/party', { cycle: 'T1' });
  assert.equal(unknownParty.body.code, 'MERCHANT_NOT_FOUND');
  const hold = await admin('POST', '/v1/admin/settlement/holds', { ref: 'h-x', mchNo: 'M000000000', amountFen: '1' });
  assert.equal(hold.body.code, 'MERCHANT_NOT_FOUND');
  assert.equal(await count('settle_fee_rules'), rulesBefore);
  assert.equal((await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM settle_parties WHERE mch_no = 'M000000000'`.execute(stack.t.db.kysely)).rows[0].n, 0n);
  assert.equal((await admin('PUT', `/v1/admin/settlement/merchants/${m.mchNo}/party`, { cycle: 'T7' })).body.code, 'PARAM_INVALID');

  const batchesBefore = await count('settle_batches');
  const future = await admin('POST', '/v1/admin/settlement/runs', { date: '2099-01-04' });
  assert.equal(future.status, 400);
  assert.equal(future.body.code, 'SETTLE_DATE_FUTURE');
  for (const date of ['2026-13-01', '20261123', '2026-02-30']) {
    const bad = await admin('POST', '/v1/admin/settlement/runs', { date });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'SETTLE_DATE_INVALID');
  }
  assert.equal(await count('settle_batches'), batchesBefore);
  const noBatch = await admin('GET', '/v1/admin/settlement/batches/2001-01-01');
  assert.equal(noBatch.body.code, 'BATCH_NOT_FOUND');
  const noParty = await admin('GET', '/v1/admin/settlement/statements/mch:nobody:pending?from=2026-01-01&to=2026-01-31');
  assert.equal(noParty.status, 404);
  assert.equal(noParty.body.code, 'PARTY_NOT_FOUND');
  const noAuth = await fetch(`${stack.url}/v1/admin/settlement/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"date":"2026-11-20"}' });
  assert.equal(noAuth.status, 401);
});

test('refunds after a split or a collection: the fee comes back by the rule, the contractor\'s and the bureau\'s parts are clawed back in proportion', async () => {
  sandboxAt = new Date('2026-11-03T09:00:00+08:00'); // Tuesday
  const property = await payee('退款分账物业');
  const contractor = await payee('退款分账维修队');
  const P = partyOf(property.mchNo);
  const C = partyOf(contractor.mchNo);
  const W = `util:${property.mchNo}:water`;
  await admin('PUT', `/v1/admin/settlement/merchants/${property.mchNo}/fee-rules`, { category: 'repair', rule: { rate: '0.03', refundMode: 'proportional' } });
  await pay(property, 'rr-fee', 20000);
  const repair = await pay(property, 'rr-repair', 10000, { extParam: JSON.stringify({ custos: { category: 'repair', lines: [{ kind: 'labor', amountFen: '6000', payee: contractor.mchNo }, { kind: 'material', amountFen: '4000' }] } }) });
  const water = await pay(property, 'rr-water', 5000, { extParam: JSON.stringify({ custos: { category: 'utility', bureau: 'water' } }) });
  assert.equal(await available(C), 5820n, '6000/10000 of the 9,700 left after the 300 fee');
  assert.equal(await available(W), 5000n);
  assert.equal(await available(P), 20000n + 3880n);

  const half = await property.call('/api/refund/refundOrder', { payOrderId: repair, mchRefundNo: 'rr-r1', refundAmount: 5000, currency: 'cny', refundReason: '维修取消一半' });
  assert.equal(half.status, 200, JSON.stringify(half.body));
  await waitFor('repair refund', async () => (await property.call('/api/refund/query', { mchRefundNo: 'rr-r1' })).body.data?.state === 2);
  assert.equal(await available(C), 2910n, 'half of the contractor\'s share clawed back');
  assert.equal(await available(P), 23880n - 5000n + 150n + 2910n, 'the refund less the fee returned and the clawback');
  const all = await property.call('/api/refund/refundOrder', { payOrderId: water, mchRefundNo: 'rr-r2', refundAmount: 5000, currency: 'cny', refundReason: '电表户号错误' });
  assert.equal(all.status, 200, JSON.stringify(all.body));
  await waitFor('water refund', async () => (await property.call('/api/refund/query', { mchRefundNo: 'rr-r2' })).body.data?.state === 2);
  assert.equal(await available(W), 0n, 'the collection is taken back from the bureau\'s account, not from the property company\'s income');
  assert.equal(await available(P), 21940n);

  await settle('2026-11-04');
  const pp = await waitPayouts(P, 1, 'success');
  assert.equal(pp[0].amount_fen, '21940');
  const cp = await waitPayouts(C, 1, 'success');
  assert.equal(cp[0].amount_fen, '2910');
  const fee = (await sql<{ fee_fen: bigint; fee_returned_fen: bigint; refunded_fen: bigint }>`SELECT fee_fen, fee_returned_fen, refunded_fen FROM settle_order_fees WHERE pay_order_id = ${repair}`.execute(stack.t.db.kysely)).rows[0];
  assert.deepEqual(fee, { fee_fen: 300n, fee_returned_fen: 150n, refunded_fen: 5000n });
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('a settlement with no bank account, or of an operator-confirmed party, waits; it is paid only when confirmed', async () => {
  sandboxAt = new Date('2026-10-19T09:00:00+08:00'); // Monday
  const m = await merchant(stack, null, '人工确认物业');
  const party = partyOf(m.mchNo);
  const cfg = await admin('PUT', `/v1/admin/settlement/merchants/${m.mchNo}/party`, { minPayoutFen: '100' });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  await pay(m, 'confirm-1', 6600);
  await settle('2026-10-20');
  const listed = (await admin('GET', `/v1/admin/settlement/parties/${party}/settlements`)).body;
  assert.equal(listed.settlements.length, 1);
  assert.equal(listed.settlements[0].state, 'awaiting_confirm');
  assert.equal(listed.payouts.length, 0);
  const id = listed.settlements[0].settlement_id;
  // No bank account yet: the settlement waits, and confirming it says what to fix.
  const noAccount = await admin('POST', `/v1/admin/settlement/settlements/${id}/confirm`);
  assert.equal(noAccount.status, 409);
  assert.equal(noAccount.body.code, 'PARTY_ACCOUNT_MISSING');
  assert.equal((await payoutsOf(party)).length, 0);
  assert.equal((await account(party)).debits_pending, 0n, 'nothing held by the refused confirmation');
  const set = await admin('PUT', `/v1/admin/settlement/merchants/${m.mchNo}/party`, { confirm: 'operator', accountNo: '6217000010001234', accountName: '人工确认物业' });
  assert.equal(set.status, 200);
  const confirmed = await admin('POST', `/v1/admin/settlement/settlements/${id}/confirm`);
  assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
  const twice = await admin('POST', `/v1/admin/settlement/settlements/${id}/confirm`);
  assert.equal(twice.body.payout.payout_id, confirmed.body.payout.payout_id, 'confirming again returns the same payout');
  const [paid] = await waitPayouts(party, 1, 'success');
  assert.equal(paid.amount_fen, '6600');
  assert.equal((await admin('POST', '/v1/admin/settlement/settlements/S-nope/confirm')).body.code, 'SETTLEMENT_NOT_FOUND');
});

test('a payout the channel did not take (5xx) stays created; the retry sends the same payout id, once', async () => {
  sandboxAt = new Date('2026-10-21T09:00:00+08:00'); // Wednesday
  const m = await payee('出款重试物业');
  const party = partyOf(m.mchNo);
  await pay(m, 'retry-1', 7700);
  const faults = await fetch(`${stack.sandboxUrl}/v1/sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ api5xxNext: 1 }) });
  assert.equal(faults.status, 200);
  const run = await settle('2026-10-22');
  assert.equal(run.payouts.unavailable, 1);
  const [created] = await payoutsOf(party);
  assert.equal(created.state, 'created');
  assert.equal(created.attempts, 1);
  assert.equal((await account(party)).debits_pending, 7700n, 'held on the ledger while it waits');
  assert.equal((await sandboxApi(stack, 'GET', `/v1/transfers/${created.payout_id}`)).status, 404, 'the bank never took it');
  const retry = await admin('POST', '/v1/admin/settlement/payouts/dispatch');
  assert.equal(retry.status, 200);
  const [done] = await waitPayouts(party, 1, 'success');
  assert.equal(done.payout_id, created.payout_id);
  assert.equal(done.attempts, 2);
  // Sending again (as a crashed dispatcher would) is answered with the same transfer.
  await stack.platform.settlement.applyPayoutState(done.payout_id, { status: 'success', channelNo: null, amountFen: 7700n, successAt: null, errCode: null, errMsg: null });
  const a = await account(party);
  assert.equal(a.debits_posted, 7700n, 'posted once, though its success was applied twice');
  assert.equal(a.debits_pending, 0n);
  assert.equal(await available(party), 0n);
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('a refund still at the channel holds part of the balance: the settlement is marked short, nothing is paid, and the next run pays the rest', async () => {
  sandboxAt = new Date('2026-10-26T09:00:00+08:00'); // Monday
  const m = await payee('退款在途物业');
  const party = partyOf(m.mchNo);
  await pay(m, 'short-1', 10000);
  const drop = await fetch(`${stack.sandboxUrl}/v1/sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ notifyDrop: true }) });
  assert.equal(drop.status, 200);
  const refund = await m.call('/api/refund/refundOrder', { mchOrderNo: 'short-1', mchRefundNo: 'short-1-r', refundAmount: 4000, currency: 'cny', refundReason: '部分退款' });
  assert.equal(refund.status, 200, JSON.stringify(refund.body));
  assert.equal((await account(party)).debits_pending, 4000n, 'the refund is held while the channel works');
  const run = await settle('2026-10-27');
  assert.equal(run.short >= 1, true);
  const st = (await admin('GET', `/v1/admin/settlement/parties/${party}/settlements`)).body;
  assert.equal(st.settlements[0].state, 'short');
  assert.equal(st.payouts.length, 0, 'nothing paid that the ledger could not cover');
  assert.equal((await account(party)).debits_pending, 4000n);

  await fetch(`${stack.sandboxUrl}/v1/sim/faults/reset`, { method: 'POST' });
  await waitFor('refund settled by polling', async () => {
    await stack.platform.payment.refunds.pollOpen({ forceBefore: new Date(), limit: 100, concurrency: 1 });
    return (await m.call('/api/refund/query', { mchRefundNo: 'short-1-r' })).body.data?.state === 2;
  });
  await settle('2026-10-28');
  const [paid] = await waitPayouts(party, 1, 'success');
  assert.equal(paid.amount_fen, '6000');
  assert.equal(await available(party), 0n);
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});
