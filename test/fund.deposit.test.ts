// Deposits (交存) end to end on a real stack: bills with exact amounts, payment through
// the payment center and the sandbox channel, a developer's batch payment, duplicated
// and late notifications credited once, idempotent counter payments, top-up listing and
// bills, refunds, ownership transfer without money, role scoping, Excel reports that
// tie to the ledger, bad inputs, and `ledger.verify()` clean at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ExcelJS from 'exceljs';
import { sql } from 'kysely';
import { waitFor, sendChannelNotification, type Stack } from './payment.harness.ts';
import { fundStack, importCsv, csvRow, type Api } from './fund.deposit.harness.ts';
import { areaAmountFen, belowThreshold, depositAmount, topUpByDifference } from '../src/fund/deposit/formula.ts';
import { applyRate } from '../src/platform/money.ts';
import { LEDGER_CNY } from '../src/payment/types.ts';

let stack: Stack;
let api: Api;
const db = () => stack.t.db.kysely;

interface Unit { id: string; estateId: string; buildingId: string; roomNo: string; building: string; areaM2e2: string; sold: boolean; version: number; certNo: string | null }
let units: Unit[] = [];
let estateA = '';
let estateB = '';

const owner = (n: number) => ({ cert: `浙(2025)杭州市不动产权第10${n}号`, owner: `业主${n}`, sold: '是' });

before(async () => {
  ({ stack, api } = await fundStack());
  const res = await importCsv(api, [
    csvRow({ building: '1', room: '101', area: '98.50', ...owner(1) }),
    csvRow({ building: '1', room: '102', area: '120.00', ...owner(2) }),
    csvRow({ building: '1', room: '201', area: '88.05', ...owner(3) }),
    csvRow({ building: '1', room: '202', area: '66.66', ...owner(4) }),
    csvRow({ building: '1', room: '301', area: '101.01' }), // unsold: the developer pays
    csvRow({ building: '1', room: '302', area: '99.99' }), // unsold
    csvRow({ building: '2', type: '多层', floors: '6', room: '101', area: '75.30', ...owner(5) }),
    csvRow({ building: '2', type: '多层', floors: '6', room: '102', area: '80.00' }), // unsold
    csvRow({ estate: '绿城别墅', address: '杭州市余杭区别墅路8号', building: 'V1', type: '别墅', floors: '3', room: '1', area: '300', price: '8000000.00', ...owner(6) }),
    csvRow({ estate: '绿城别墅', address: '杭州市余杭区别墅路8号', building: 'V2', type: '别墅', floors: '3', room: '1', area: '280' }), // no price
  ]);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  units = (await api('GET', '/v1/fund/units')).body.units;
  estateA = units.find((u) => u.building === '1')!.estateId;
  estateB = units.find((u) => u.building === 'V1')!.estateId;
});
after(async () => {
  await stack.close();
});

const unit = (building: string, room: string) => units.find((u) => u.building === building && u.roomNo === room) as Unit;
const billOf = async (unitId: string, kind = 'first_deposit') => ((await api('GET', `/v1/fund/bills?unitId=${unitId}`)).body.bills as Array<Record<string, any>>).find((b) => b.kind === kind && b.state !== 'cancelled') as Record<string, any>;
const principal = async (unitId: string) => {
  const a = await stack.platform.ledger.getAccount(`hh:${unitId}:principal`);
  return a.credits_posted - a.debits_posted;
};
const fundMch = async () => (await sql<{ mch_no: string }>`SELECT mch_no FROM fund_merchant`.execute(db())).rows[0].mch_no;
const transfersLike = async (prefix: string) => (await sql<{ id: string; amount: bigint }>`SELECT id, amount FROM ledger_transfers WHERE id LIKE ${prefix + '%'} AND failure IS NULL ORDER BY id`.execute(db())).rows;

/** The payer picks WeChat on the payment center's H5 cashier, then pays at the sandbox. */
async function payAtSandbox(payOrderId: string) {
  const chosen = await fetch(`${stack.url}/cashier/${payOrderId}/pay`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'wayCode=WX_H5' });
  assert.equal(chosen.status, 303, await chosen.text());
  const paid = await stack.sandbox.pay(payOrderId);
  assert.equal(paid.status, 'SUCCESS');
  return paid;
}

test('first-deposit bills have exact amounts per the city standard; generating again creates none', async () => {
  const res = await api('POST', '/v1/fund/bills/generate', { estateId: estateA });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.created, 8);
  const expected = (area: bigint, fenPerM2: bigint) => (area * fenPerM2 + 50n) / 100n;
  for (const u of units.filter((x) => x.estateId === estateA)) {
    const bill = await billOf(u.id);
    assert.equal(BigInt(bill.amountFen), expected(BigInt(u.areaM2e2), u.building === '1' ? 9000n : 5000n), `${u.building}-${u.roomNo}`);
    assert.equal(bill.basis.method, 'area');
    assert.equal(bill.basis.rounding, 'half_up');
  }
  assert.equal((await billOf(unit('1', '101').id)).amountFen, '886500'); // 98.50 ㎡ × 90 元/㎡ = 8865.00 元
  assert.equal((await billOf(unit('1', '202').id)).amountFen, '599940'); // 66.66 × 90 = 5999.40
  assert.equal((await billOf(unit('2', '101').id)).amountFen, '376500'); // 75.30 × 50 = 3765.00
  const again = await api('POST', '/v1/fund/bills/generate', { estateId: estateA });
  assert.equal(again.body.created, 0);
  assert.equal(again.body.existing, 8);
  // the price method: 8,000,000.00 × 2% = 160,000.00; a unit without a price is skipped with a reason
  const villas = await api('POST', '/v1/fund/bills/generate', { estateId: estateB });
  assert.equal(villas.body.created, 1);
  assert.equal((await billOf(unit('V1', '1').id)).amountFen, '16000000');
  assert.equal(villas.body.skipped.length, 1);
  assert.match(villas.body.skipped[0].reason, /房价/);
});

test('bill amounts match the formula for random areas, prices and standards; the top-up threshold is exact (property)', () => {
  fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10_000_000n }), fc.bigInt({ min: 1n, max: 1_000_000n }), (areaM2e2, fenPerM2) => {
    const amount = areaAmountFen(areaM2e2, fenPerM2);
    // half up: the exact product (in hundredths of a fen) is within [amount − ½, amount + ½) fen
    const exact = areaM2e2 * fenPerM2;
    assert.ok(amount * 100n - 50n <= exact && exact < amount * 100n + 50n);
    assert.equal(depositAmount({ area_m2e2: areaM2e2, price_fen: null }, { method: 'area', fenPerM2 })?.amountFen, amount);
  }));
  fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10n ** 12n }), fc.integer({ min: 1, max: 2000 }), (priceFen, bp) => {
    const rate = (bp / 10_000).toFixed(4);
    const amount = depositAmount({ area_m2e2: 1n, price_fen: priceFen }, { method: 'price', rate })?.amountFen as bigint;
    assert.equal(amount, applyRate(priceFen, rate, 'half_up'));
    const exact = priceFen * BigInt(bp); // in 1/10000 fen
    assert.ok(amount * 10_000n - 5_000n <= exact && exact < amount * 10_000n + 5_000n);
  }));
  fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10n ** 9n }), fc.bigInt({ min: 0n, max: 10n ** 9n }), fc.integer({ min: 1, max: 10_000 }), (first, bal, bp) => {
    assert.equal(belowThreshold(first, bal, bp), Number(bal) * 10_000 < Number(first) * bp);
    const diff = topUpByDifference(first, bal);
    assert.equal(diff, bal >= first ? 0n : first - bal);
  }));
});

test('owner path through the sandbox: pay order → payment → notification → bill paid and household credited once', async () => {
  const u = unit('1', '101');
  const bill = await billOf(u.id);
  const pay = await api('POST', `/v1/fund/bills/${bill.id}/pay`, {});
  assert.equal(pay.status, 200, JSON.stringify(pay.body));
  assert.match(pay.body.cashierUrl, /\/cashier\/P/);
  const again = await api('POST', `/v1/fund/bills/${bill.id}/pay`, {});
  assert.equal(again.body.payOrderId, pay.body.payOrderId, 'an open pay order is reused: one bill, one order');
  const link = await sql<{ mch_order_no: string }>`SELECT mch_order_no FROM fund_pay_links WHERE bill_id = ${bill.id}`.execute(db());
  assert.deepEqual(link.rows.map((r) => r.mch_order_no), [`FB-${bill.id}-1`]);
  const paid = await payAtSandbox(pay.body.payOrderId);
  await waitFor('bill paid', async () => (await billOf(u.id)).state === 'paid');
  const after = await billOf(u.id);
  assert.equal(after.paidVia, 'payment');
  assert.equal(after.paidRef, pay.body.payOrderId);
  assert.match(after.receiptNo, /^WX\d{12}$/);
  assert.equal(await principal(u.id), 886500n);
  const mch = await stack.platform.ledger.getAccount(`mch:${await fundMch()}:pending`);
  assert.equal(mch.credits_posted - mch.debits_posted, 0n, 'the payment went on to the household account');
  // a household deposit is not merchant income: settlement books no fee and nothing to pay out
  const settled = await sql<{ n: number }>`SELECT (SELECT count(*) FROM settle_order_fees WHERE pay_order_id = ${pay.body.payOrderId})::int
    + (SELECT count(*) FROM settle_entries WHERE ref = ${pay.body.payOrderId})::int AS n`.execute(db());
  assert.equal(settled.rows[0].n, 0);

  // duplicated notifications (same event, new event) and a poll credit nothing more
  const n = { event_id: 'dup-evt-1', kind: 'pay' as const, out_no: pay.body.payOrderId, channel_no: paid.tradeNo, status: 'SUCCESS' as const, amount: '886500', success_time: paid.successAt, payer: paid.payer };
  for (const x of [n, n, { ...n, event_id: 'dup-evt-2' }]) assert.equal((await sendChannelNotification(stack, x)).status, 200);
  await stack.platform.payment.poll(0);
  assert.equal(await principal(u.id), 886500n);
  assert.deepEqual((await transfersLike(`fund:dep:${bill.id}`)).map((t) => [t.id, t.amount]), [[`fund:dep:${bill.id}`, 886500n]]);
  assert.equal((await api('POST', `/v1/fund/bills/${bill.id}/pay`, {})).body.code, 'FUND_BILL_PAID');
});

test('a late payment for a bill already paid at the counter is a duplicate: credited once, listed for refund', async () => {
  const u = unit('1', '102');
  const bill = await billOf(u.id);
  const pay = await api('POST', `/v1/fund/bills/${bill.id}/pay`, {});
  // the owner paid at the bank counter meanwhile
  const counter = await api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, { bankRef: 'ICBC-20261122-0001', amountFen: bill.amountFen, channel: 'counter' });
  assert.equal(counter.status, 201, JSON.stringify(counter.body));
  assert.equal(counter.body.bill.paidVia, 'counter');
  // ...and then the online payment succeeds late
  await payAtSandbox(pay.body.payOrderId);
  await waitFor('duplicate recorded', async () => {
    const r = await sql<{ outcome: string | null }>`SELECT outcome FROM fund_pay_links WHERE pay_order_id = ${pay.body.payOrderId}`.execute(db());
    return r.rows[0]?.outcome === 'duplicate';
  });
  assert.equal(await principal(u.id), BigInt(bill.amountFen), 'credited once');
  const dups = await api('GET', '/v1/fund/duplicates');
  assert.ok(dups.body.duplicates.some((d: { pay_order_id: string }) => d.pay_order_id === pay.body.payOrderId));
  const mch = await stack.platform.ledger.getAccount(`mch:${await fundMch()}:pending`);
  assert.equal(mch.credits_posted - mch.debits_posted, BigInt(bill.amountFen), 'the duplicate waits on the fund merchant for a refund');
});

test('counter payments are idempotent by bank reference; bad entries are refused and write nothing', async () => {
  const u = unit('1', '201');
  const bill = await billOf(u.id);
  const bank = async () => {
    const a = await stack.platform.ledger.getAccount('fund:hz:bank');
    return a.debits_posted - a.credits_posted;
  };
  const bankBefore = await bank();
  const wrong = await api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, { bankRef: 'ABC-0002', amountFen: '1', channel: 'transfer' });
  assert.equal(wrong.status, 400);
  assert.equal(wrong.body.code, 'FUND_AMOUNT_MISMATCH');
  for (const [body, code] of [[{ bankRef: 'x', amountFen: bill.amountFen }, 'FUND_PARAM_INVALID'], [{ bankRef: 'ABC-0002', amountFen: -5 }, 'FUND_PARAM_INVALID'],
    [{ bankRef: 'ABC-0002', amountFen: bill.amountFen, channel: 'cash' }, 'FUND_PARAM_INVALID']] as const) {
    const r = await api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, body);
    assert.equal(r.status, 400);
    assert.equal(r.body.code, code);
  }
  assert.equal((await billOf(u.id)).state, 'unpaid');
  const first = await api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, { bankRef: 'ABC-0002', amountFen: bill.amountFen, channel: 'transfer' });
  assert.equal(first.status, 201);
  const second = await api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, { bankRef: 'ABC-0002', amountFen: bill.amountFen, channel: 'transfer' });
  assert.equal(second.status, 200);
  assert.equal(second.body.replayed, true);
  assert.equal(await principal(u.id), BigInt(bill.amountFen));
  assert.equal(await bank() - bankBefore, BigInt(bill.amountFen), 'Dr fund:hz:bank once');
  const other = await billOf(unit('1', '202').id);
  const reused = await api('POST', `/v1/fund/bills/${other.id}/counter-payments`, { bankRef: 'ABC-0002', amountFen: other.amountFen });
  assert.equal(reused.status, 409);
  assert.equal(reused.body.code, 'FUND_BANK_REF_USED');
  const paidAgain = await api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, { bankRef: 'ABC-0003', amountFen: bill.amountFen });
  assert.equal(paidAgain.body.code, 'FUND_BILL_PAID');
  assert.equal((await billOf(unit('1', '202').id)).state, 'unpaid');
});

test("the developer's batch payment: one pay order for every unsold unit; on success every bill is paid and every household credited", async () => {
  const unsold = units.filter((u) => u.estateId === estateA && !u.sold);
  assert.equal(unsold.length, 3);
  const bills = await Promise.all(unsold.map((u) => billOf(u.id)));
  const batch = await api('POST', '/v1/fund/batches', { estateId: estateA, payer: '阳光房地产开发有限公司' });
  assert.equal(batch.status, 201, JSON.stringify(batch.body));
  assert.equal(batch.body.billCount, 3);
  assert.equal(BigInt(batch.body.amountFen), bills.reduce((s, b) => s + BigInt(b.amountFen), 0n), 'the batch total is the sum of its bills');
  const blocked = await api('POST', `/v1/fund/bills/${bills[0].id}/pay`, {});
  assert.equal(blocked.status, 409);
  assert.equal(blocked.body.code, 'FUND_BILL_IN_BATCH');
  const twice = await api('POST', '/v1/fund/batches', { estateId: estateA, payer: 'x', billIds: [bills[0].id] });
  assert.equal(twice.body.code, 'FUND_BILL_IN_BATCH');
  await payAtSandbox(batch.body.payOrderId);
  await waitFor('batch paid', async () => (await api('GET', `/v1/fund/batches/${batch.body.batchId}`)).body.state === 'paid');
  for (let i = 0; i < unsold.length; i += 1) {
    const b = await billOf(unsold[i].id);
    assert.equal(b.state, 'paid');
    assert.equal(b.paidVia, 'batch');
    assert.equal(await principal(unsold[i].id), BigInt(bills[i].amountFen));
  }
  const receipts = new Set((await Promise.all(unsold.map((u) => billOf(u.id)))).map((b) => b.receiptNo));
  assert.equal(receipts.size, 3, 'one receipt per bill');
});

test('top-up: households below 30% of their first deposit are listed, and top-up bills are generated by difference', async () => {
  const u = unit('2', '101');
  const bill = await billOf(u.id);
  await api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, { bankRef: 'CCB-TOPUP-01', amountFen: bill.amountFen });
  let list = await api('GET', `/v1/fund/estates/${estateA}/top-ups`);
  assert.equal(list.body.households.length, 0, 'nobody below the threshold yet');
  // a mistaken payment refund leaves 25% of the first deposit (376500 → 94125)
  const refund = await api('POST', `/v1/fund/units/${u.id}/refunds`, { requestKey: 'mistake-2-101', reason: 'mistaken_payment', note: '误缴退还', payee: '业主5', principalFen: '282375' });
  assert.equal(refund.status, 201, JSON.stringify(refund.body));
  list = await api('GET', `/v1/fund/estates/${estateA}/top-ups`);
  assert.deepEqual(list.body.households.map((h: Record<string, string>) => [h.unitId, h.firstDepositFen, h.principalFen, h.shortfallFen]), [[u.id, '376500', '94125', '282375']]);
  const gen = await api('POST', `/v1/fund/estates/${estateA}/top-ups`, { mode: 'difference' });
  assert.equal(gen.body.created, 1);
  assert.equal(gen.body.bills[0].amountFen, '282375');
  const again = await api('POST', `/v1/fund/estates/${estateA}/top-ups`, { mode: 'standard', coefficient: '0.5' });
  assert.equal(again.body.created, 0, 'one open top-up bill per unit');
  assert.equal((await api('POST', `/v1/fund/estates/${estateA}/top-ups`, { mode: 'standard', coefficient: 'half' })).body.code, 'FUND_PARAM_INVALID');
  const topUp = await billOf(u.id, 'top_up');
  assert.equal(topUp.amountFen, '282375');
  // a city with a 20% threshold would not list this household (25% ≥ 20%)
  await api('PUT', '/v1/fund/cities/hz', { name: '杭州市', topUpRatioBp: 2000 });
  assert.equal((await api('GET', `/v1/fund/estates/${estateA}/top-ups`)).body.households.length, 0);
  await api('PUT', '/v1/fund/cities/hz', { name: '杭州市', topUpRatioBp: 3000 });
});

test('refund on demolition moves principal and interest out; it is idempotent by request key', async () => {
  const u = unit('1', '201'); // paid by transfer above
  // interest allocated to the household (as the interest module will do): Dr fund:hz:yield / Cr hh interest
  const [r] = await stack.platform.ledger.createTransfers([{ id: 'test:interest:1', debit_account_id: 'fund:hz:yield', credit_account_id: `hh:${u.id}:interest`, amount: 1234n, ledger: LEDGER_CNY, code: 3402, flags: 0, pending_id: null, timeout_s: 0, ref: null, metadata: null }]);
  assert.equal(r, 'ok');
  const p = await principal(u.id);
  const body = { requestKey: 'demolish-1-201', reason: 'demolition', note: '房屋拆迁 / demolished', payee: '业主3' };
  const res = await api('POST', `/v1/fund/units/${u.id}/refunds`, body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.equal(res.body.refund.principal_fen, p.toString());
  assert.equal(res.body.refund.interest_fen, '1234');
  assert.equal(await principal(u.id), 0n);
  const i = await stack.platform.ledger.getAccount(`hh:${u.id}:interest`);
  assert.equal(i.credits_posted - i.debits_posted, 0n);
  const again = await api('POST', `/v1/fund/units/${u.id}/refunds`, body);
  assert.equal(again.status, 200);
  assert.equal(again.body.replayed, true);
  assert.equal((await transfersLike(`fund:ref:${res.body.refund.id}`)).length, 2);
  const empty = await api('POST', `/v1/fund/units/${u.id}/refunds`, { ...body, requestKey: 'demolish-1-201-b' });
  assert.equal(empty.status, 409);
  assert.equal(empty.body.code, 'FUND_NOTHING_TO_REFUND');
  const tooMuch = await api('POST', `/v1/fund/units/${unit('1', '101').id}/refunds`, { requestKey: 'too-much-1', reason: 'duplicate_payment', note: 'x', payee: 'y', principalFen: '886501' });
  assert.equal(tooMuch.body.code, 'FUND_BALANCE_SHORT');
  const audit = await sql<{ action: string }>`SELECT action FROM fund_audit WHERE target = ${'unit:' + u.id} ORDER BY id`.execute(db());
  assert.ok(audit.rows.some((a) => a.action === 'unit.refund'));
});

test('ownership transfer (过户) changes the owners and moves no money', async () => {
  const u = unit('1', '101');
  const accountsBefore = await sql`SELECT * FROM ledger_accounts WHERE id LIKE ${'hh:' + u.id + ':%'} ORDER BY id`.execute(db());
  const transfersBefore = (await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM ledger_transfers`.execute(db())).rows[0].n;
  const current = (await api('GET', `/v1/fund/units/${u.id}`)).body;
  const res = await api('POST', `/v1/fund/units/${u.id}/ownership-transfers`, { version: current.version, newOwners: [{ name: '新业主', idNo: '330106199001010011', phone: '13900000000' }], newCertNo: '浙(2026)杭州市不动产权第9999号' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.owners.map((o: { name: string }) => o.name), ['新业主']);
  assert.equal(res.body.certNo, '浙(2026)杭州市不动产权第9999号');
  const accountsAfter = await sql`SELECT * FROM ledger_accounts WHERE id LIKE ${'hh:' + u.id + ':%'} ORDER BY id`.execute(db());
  assert.deepEqual(accountsAfter.rows, accountsBefore.rows, 'balances and versions unchanged');
  assert.equal((await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM ledger_transfers`.execute(db())).rows[0].n, transfersBefore, 'no transfer at all');
  const stale = await api('POST', `/v1/fund/units/${u.id}/ownership-transfers`, { version: current.version, newOwners: [{ name: '又一人' }] });
  assert.equal(stale.body.code, 'FUND_VERSION_CONFLICT');
  const history = await api('GET', `/v1/fund/units/${u.id}/ownership-transfers`);
  assert.equal(history.body.transfers.length, 1);
  assert.equal(history.body.transfers[0].old_owners[0].name, '业主1');
});

test('roles: property company, committee and owner each see only their own; 403 FUND_FORBIDDEN otherwise', async () => {
  const issue = async (body: unknown) => {
    const r = await api('POST', '/v1/fund/principals', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.token as string;
  };
  const property = await issue({ role: 'property', subject: '阳光物业', estateIds: [estateA] });
  const committee = await issue({ role: 'committee', subject: '阳光花园业委会', estateIds: [estateA] });
  const mine = unit('1', '102');
  const ownerToken = await issue({ role: 'owner', subject: '业主2', unitIds: [mine.id] });
  const villa = unit('V1', '1');

  for (const token of [property, committee]) {
    assert.equal((await api('GET', `/v1/fund/estates/${estateA}`, undefined, token)).status, 200);
    assert.equal((await api('GET', `/v1/fund/estates/${estateA}/households`, undefined, token)).status, 200);
    assert.equal((await api('GET', `/v1/fund/reports/estates/${estateA}`, undefined, token)).status, 200);
    const list = await api('GET', '/v1/fund/estates', undefined, token);
    assert.deepEqual(list.body.estates.map((e: { id: string }) => e.id), [estateA]);
    for (const path of [`/v1/fund/estates/${estateB}`, `/v1/fund/units/${villa.id}`, `/v1/fund/bills?estateId=${estateB}`, `/v1/fund/reports/estates/${estateB}`, `/v1/fund/estates/${estateB}/top-ups`]) {
      const r = await api('GET', path, undefined, token);
      assert.equal(r.status, 403, path);
      assert.equal(r.body.code, 'FUND_FORBIDDEN');
    }
    for (const [method, path, body] of [['POST', '/v1/fund/imports', { city: 'hz', format: 'csv', contentBase64: '' }], ['POST', '/v1/fund/bills/generate', { estateId: estateA }],
      ['POST', `/v1/fund/units/${mine.id}/refunds`, {}], ['POST', '/v1/fund/principals', { role: 'owner' }]] as const) {
      assert.equal((await api(method, path, body, token)).body.code, 'FUND_FORBIDDEN', path);
    }
  }
  const own = await api('GET', `/v1/fund/units/${mine.id}`, undefined, ownerToken);
  assert.equal(own.status, 200);
  assert.equal(own.body.owners[0].idNo, null, 'no id numbers outside the center');
  assert.deepEqual((await api('GET', '/v1/fund/units', undefined, ownerToken)).body.units.map((u: { id: string }) => u.id), [mine.id]);
  assert.ok((await api('GET', '/v1/fund/bills', undefined, ownerToken)).body.bills.every((b: { unitId: string }) => b.unitId === mine.id));
  for (const path of [`/v1/fund/units/${unit('1', '101').id}`, `/v1/fund/estates/${estateA}`, '/v1/fund/estates', `/v1/fund/reports/units/${unit('1', '101').id}`, `/v1/fund/bills?unitId=${unit('1', '101').id}`]) {
    const r = await api('GET', path, undefined, ownerToken);
    assert.equal(r.status, 403, path);
    assert.equal(r.body.code, 'FUND_FORBIDDEN');
  }
  const otherBill = await billOf(unit('1', '202').id);
  assert.equal((await api('POST', `/v1/fund/bills/${otherBill.id}/pay`, {}, ownerToken)).body.code, 'FUND_FORBIDDEN');
  assert.equal((await api('GET', `/v1/fund/units/${mine.id}`, undefined, 'not-a-token')).status, 401);
});

test('Excel reports tie to the ledger: estate totals, unit rows and the daily summary equal the ledger balances', async () => {
  const res = await fetch(`${stack.url}/v1/fund/reports/estates/${estateA}`, { headers: { authorization: 'Bearer test-admin-token-0123456789' } });
  assert.equal(res.status, 200);
  const wb = new ExcelJS.Workbook();
  await wb.xlsx.load(Buffer.from(await res.arrayBuffer()) as never);
  const summary = wb.worksheets[0];
  const header = Array.from(summary.getRow(1).values as unknown[], (v) => String(v ?? ""));
  const col = (name: string) => header.findIndex((h) => h.startsWith(name));
  let totalRow: ExcelJS.Row | null = null;
  summary.eachRow((row) => {
    if (String(row.getCell(1).value).startsWith('合计')) totalRow = row;
  });
  assert.ok(totalRow);
  const estateUnits = units.filter((u) => u.estateId === estateA);
  let p = 0n;
  let i = 0n;
  for (const u of estateUnits) {
    p += await principal(u.id);
    const acc = await stack.platform.ledger.getAccount(`hh:${u.id}:interest`);
    i += acc.credits_posted - acc.debits_posted;
  }
  assert.ok(p > 0n);
  assert.equal(BigInt((totalRow as unknown as ExcelJS.Row).getCell(col('本金(分)')).value as number), p);
  assert.equal(BigInt((totalRow as unknown as ExcelJS.Row).getCell(col('利息(分)')).value as number), i);
  const households = wb.worksheets[1];
  const hHeader = Array.from(households.getRow(1).values as unknown[], (v) => String(v ?? ""));
  let rows = 0;
  for (let r = 2; r <= households.rowCount; r += 1) {
    const row = households.getRow(r);
    const id = String(row.getCell(hHeader.indexOf('房屋 unit_id')).value);
    assert.equal(BigInt(row.getCell(hHeader.findIndex((h) => h.startsWith('本金(分)'))).value as number), await principal(id), id);
    rows += 1;
  }
  assert.equal(rows, estateUnits.length);

  const daily = await stack.platform.fund.reports.dailySummaryData(new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10));
  const all = await sql<{ p: bigint; i: bigint }>`SELECT COALESCE(sum(CASE WHEN code = 3101 THEN credits_posted - debits_posted END), 0)::int8 AS p,
    COALESCE(sum(CASE WHEN code = 3102 THEN credits_posted - debits_posted END), 0)::int8 AS i FROM ledger_accounts`.execute(db());
  assert.equal(daily.closing.principal, all.rows[0].p);
  assert.equal(daily.closing.interest, all.rows[0].i);
  const moved = daily.movements.reduce((s, m) => s + (m.kind === 'principal' ? (m.side === 'credit' ? m.amount : -m.amount) : 0n), 0n);
  assert.equal(daily.opening.principal + moved, daily.closing.principal, 'opening + movements = closing');
  const xlsx = await fetch(`${stack.url}/v1/fund/reports/daily?date=2026-13-01`, { headers: { authorization: 'Bearer test-admin-token-0123456789' } });
  assert.equal(xlsx.status, 400);
  const unitReport = await fetch(`${stack.url}/v1/fund/reports/units/${unit('1', '101').id}`, { headers: { authorization: 'Bearer test-admin-token-0123456789' } });
  assert.equal(unitReport.status, 200);
});

test('races: parallel notifications, counter entries and pay requests for one bill credit it exactly once', async () => {
  const res = await importCsv(api, [csvRow({ estate: '竞态小区', address: '杭州市上城区竞态路1号', building: '9', room: '901', area: '50.00' })]);
  assert.equal(res.status, 200);
  const u = ((await api('GET', '/v1/fund/units')).body.units as Unit[]).find((x) => x.building === '9') as Unit;
  await api('POST', '/v1/fund/bills/generate', { unitIds: [u.id] });
  const bill = await billOf(u.id);
  const pays = await Promise.all(Array.from({ length: 6 }, () => api('POST', `/v1/fund/bills/${bill.id}/pay`, {})));
  assert.equal(new Set(pays.map((p) => p.body.payOrderId)).size, 1, 'one pay order however many pay requests');
  const payOrderId = pays[0].body.payOrderId as string;
  const paid = await payAtSandbox(payOrderId);
  const n = { kind: 'pay' as const, out_no: payOrderId, channel_no: paid.tradeNo, status: 'SUCCESS' as const, amount: bill.amountFen, success_time: paid.successAt, payer: paid.payer };
  const counters = Array.from({ length: 4 }, (_, i) => api('POST', `/v1/fund/bills/${bill.id}/counter-payments`, { bankRef: `RACE-${i}-0001`, amountFen: bill.amountFen }));
  const notes = Array.from({ length: 8 }, (_, i) => sendChannelNotification(stack, { ...n, event_id: `race-evt-${i}` }));
  const [counterResults] = await Promise.all([Promise.all(counters), Promise.all(notes)]);
  await waitFor('bill paid', async () => (await billOf(u.id)).state === 'paid');
  assert.ok(counterResults.every((r) => r.status === 201 || r.body.code === 'FUND_BILL_PAID'), JSON.stringify(counterResults.map((r) => r.body.code)));
  assert.ok(counterResults.filter((r) => r.status === 201).length <= 1);
  assert.equal(await principal(u.id), BigInt(bill.amountFen), 'credited exactly once');
  assert.deepEqual((await transfersLike(`fund:dep:${bill.id}`)).map((t) => t.id), [`fund:dep:${bill.id}`]);
  const counted = counterResults.some((r) => r.status === 201);
  const link = await sql<{ outcome: string | null }>`SELECT outcome FROM fund_pay_links WHERE pay_order_id = ${payOrderId}`.execute(db());
  assert.equal(link.rows[0].outcome, counted ? 'duplicate' : 'credited', 'the loser of the race is recorded as a duplicate');
});

test('bad inputs are 4xx with stable codes and write nothing; the ledger verifies clean', async () => {
  const count = async () => (await sql<{ n: bigint }>`SELECT (SELECT count(*) FROM fund_bills) + (SELECT count(*) FROM fund_batches) + (SELECT count(*) FROM fund_refunds) + (SELECT count(*) FROM ledger_transfers) AS n`.execute(db())).rows[0].n;
  const before = await count();
  const cases: Array<[string, string, unknown, number, string]> = [
    ['POST', '/v1/fund/bills/b_0000000000000000/pay', {}, 404, 'FUND_BILL_NOT_FOUND'],
    ['POST', '/v1/fund/bills/generate', {}, 400, 'FUND_PARAM_INVALID'],
    ['POST', '/v1/fund/bills/generate', { estateId: 'e_nope' }, 404, 'FUND_ESTATE_NOT_FOUND'],
    ['POST', '/v1/fund/bills/generate', { unitIds: ['bad id!'] }, 400, 'FUND_PARAM_INVALID'],
    ['POST', '/v1/fund/batches', { estateId: estateA, payer: '开发商' }, 409, 'FUND_NOTHING_TO_PAY'],
    ['POST', '/v1/fund/batches', { estateId: estateA }, 400, 'FUND_PARAM_INVALID'],
    ['POST', `/v1/fund/units/${unit('1', '101').id}/refunds`, { requestKey: 'k-0001', reason: 'gift', note: 'x', payee: 'y' }, 400, 'FUND_PARAM_INVALID'],
    ['POST', `/v1/fund/units/${unit('1', '101').id}/refunds`, { requestKey: 'k-0001', reason: 'demolition', note: 'x', payee: 'y', principalFen: '1' }, 400, 'FUND_PARAM_INVALID'],
    ['POST', `/v1/fund/units/${unit('1', '101').id}/refunds`, { requestKey: 'k-0001', reason: 'mistaken_payment', note: 'x', payee: 'y' }, 400, 'FUND_PARAM_INVALID'],
    ['POST', '/v1/fund/units/u_nope/refunds', { requestKey: 'k-0001', reason: 'demolition', note: 'x', payee: 'y' }, 404, 'FUND_UNIT_NOT_FOUND'],
    ['POST', `/v1/fund/estates/${estateA}/top-ups`, { mode: 'all' }, 400, 'FUND_PARAM_INVALID'],
    ['GET', '/v1/fund/receipts/WX202600000001?amountFen=1&code=0000-0000-0000-0000', undefined, 404, 'FUND_RECEIPT_INVALID'],
    ['GET', '/v1/fund/receipts/nonsense?amountFen=1&code=x', undefined, 404, 'FUND_RECEIPT_INVALID'],
    ['GET', '/v1/fund/receipts/WX202600000001?amountFen=abc&code=x', undefined, 400, 'FUND_PARAM_INVALID'],
    ['POST', '/v1/fund/principals', { role: 'owner', subject: 'x' }, 400, 'FUND_PARAM_INVALID'],
    ['POST', '/v1/fund/principals', { role: 'admin', subject: 'x' }, 400, 'FUND_PARAM_INVALID'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await api(method, path, body);
    assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, code, `${method} ${path}`);
  }
  assert.equal(await count(), before, 'nothing written');
  const report = await stack.platform.ledger.verify();
  assert.equal(report.balanced, true, JSON.stringify(report));
  assert.deepEqual(report.accounts_mismatched, []);
  assert.deepEqual(report.history_mismatched, []);
});
