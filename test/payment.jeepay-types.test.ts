// Conformance with Jeepay's JSON types (issue 23): every merchant endpoint is driven for
// real through the sandbox channel, and each field of its real answer has the JSON type
// that Jeepay's own SDK models declare. The table below is transcribed from
// /work/shared/reference/jeepay-api.md, "Response field types", on purpose NOT imported
// from src/, so a change to the code cannot quietly change the expectation. Also:
// notifications carry the same values as the query answers (form-encoded, as Jeepay
// sends them), reqTime in seconds/milliseconds/microseconds, and version 1.0 / 1.0.0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, merchant, notifySink, waitFor, order, type Stack, type MerchantClient, type NotifySink } from './payment.harness.ts';
import { verify } from '../src/payment/sign.ts';
import { RESPONSE_TYPES } from '../src/payment/jeepay.schemas.ts';

type T = 'string' | 'number' | 'decimal';
const fields = (spec: Partial<Record<T, string>>): Record<string, T> => {
  const out: Record<string, T> = {};
  for (const [type, names] of Object.entries(spec) as Array<[T, string]>) for (const name of names.split(',')) out[name.trim()] = type;
  return out;
};

/** jeepay-api.md, "Response field types", row by row. */
const JEEPAY: Record<string, Record<string, T>> = {
  unifiedOrder: fields({ string: 'payOrderId, mchOrderNo, payDataType, payData, errCode, errMsg', number: 'orderState' }),
  payQuery: fields({ string: 'payOrderId, mchNo, mchOrderNo, ifCode, wayCode, currency, clientIp, subject, body, channelOrderNo, errCode, errMsg, extParam', number: 'amount, state, createdAt, successTime' }),
  close: fields({ string: 'errCode, errMsg' }),
  refund: fields({ string: 'refundOrderId, mchRefundNo, channelOrderNo, errCode, errMsg', number: 'payAmount, refundAmount, state' }),
  refundQuery: fields({ string: 'refundOrderId, payOrderId, mchNo, appId, mchRefundNo, currency, channelOrderNo, errCode, errMsg, extParam', number: 'payAmount, refundAmount, state, createdAt, successTime' }),
  transfer: fields({ string: 'transferId, mchOrderNo, accountNo, accountName, bankName, channelOrderNo, channelResData, errCode, errMsg', number: 'amount, state' }),
  transferQuery: fields({ string: 'transferId, mchNo, appId, mchOrderNo, ifCode, entryType, currency, accountNo, accountName, bankName, transferDesc, channelExtra, channelOrderNo, channelResData, errCode, errMsg, extParam', number: 'amount, state, successTime, createdAt' }),
  divisionBind: fields({ string: 'receiverAlias, mchNo, appId, ifCode, accNo, accName, relationType, relationTypeName, channelExtInfo, errCode, errMsg', number: 'receiverId, receiverGroupId, accType, bindSuccessTime, bindState', decimal: 'divisionProfit' }),
  divisionExec: fields({ string: 'channelBatchOrderId, errCode, errMsg', number: 'state' }),
};

/** Fields Custos sends beyond Jeepay's models (docs/payment.md), typed by the same rule. */
const EXTRAS: Record<string, Record<string, T>> = {
  payQuery: fields({ string: 'appId', number: 'refundAmount' }),
  close: fields({ string: 'payOrderId, mchOrderNo', number: 'orderState' }),
  divisionExec: fields({ string: 'payOrderId, divisions' }),
};

function typeOf(value: unknown): T | string {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? 'number' : Number.isFinite(value) ? 'decimal' : 'non-finite';
  return typeof value;
}

/** Every field of a real answer has its table type; the fields named in `present` are there. */
function conforms(kind: string, data: Record<string, unknown> | undefined, present: string[]) {
  assert.ok(data, `${kind}: the answer has data`);
  const table = { ...JEEPAY[kind], ...EXTRAS[kind] };
  for (const [name, value] of Object.entries(data)) {
    const expected = table[name];
    assert.ok(expected, `${kind}.${name} is not a field of Jeepay's model nor a documented extra`);
    const actual = typeOf(value);
    const ok = expected === 'decimal' ? actual === 'decimal' || actual === 'number' : actual === expected;
    assert.ok(ok, `${kind}.${name}: Jeepay's type is ${expected}, the answer has ${JSON.stringify(value)} (${actual})`);
  }
  for (const name of present) assert.ok(name in data, `${kind}.${name} is in the answer`);
}

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

test('the declared response schemas agree with the table of jeepay-api.md', () => {
  for (const [kind, table] of Object.entries(JEEPAY)) {
    const declared = RESPONSE_TYPES[kind as keyof typeof RESPONSE_TYPES] as Record<string, string>;
    for (const [name, type] of Object.entries({ ...table, ...EXTRAS[kind] })) {
      const normalised = declared[name] === 'id' ? 'number' : declared[name];
      assert.equal(normalised, type, `${kind}.${name}`);
    }
  }
});

test('pay: unified order, query, notification and close answer in Jeepay\'s types', async () => {
  const created = await m.call('/api/pay/unifiedOrder', order('types-pay-1', { amount: 1234, extParam: 'ext', clientIp: '10.0.0.1' }));
  assert.equal(created.status, 200, JSON.stringify(created.body));
  conforms('unifiedOrder', created.body.data, ['payOrderId', 'mchOrderNo', 'orderState', 'payDataType', 'payData']);
  const payOrderId = String(created.body.data?.payOrderId);

  await stack.sandbox.pay(payOrderId);
  const note = await waitFor('payment notification', async () => sink.received.find((n) => n.payOrderId === payOrderId && n.state === '2'));
  const queried = await m.call('/api/pay/query', { payOrderId });
  conforms('payQuery', queried.body.data, ['amount', 'state', 'createdAt', 'successTime', 'refundAmount', 'payOrderId', 'mchNo', 'ifCode', 'wayCode', 'currency', 'subject', 'body', 'channelOrderNo', 'extParam', 'clientIp']);
  assert.equal(queried.body.data?.amount, 1234);
  assert.equal(queried.body.data?.state, 2);

  // The notification is Jeepay's form-encoded, signed copy of the query answer: every
  // number field is the decimal text of the same number, and the signature is computed
  // over the very same string (amount=1234&) as the JSON answer's.
  assert.equal(verify(note, m.appSecret, 'MD5'), true);
  for (const [name, type] of Object.entries({ ...JEEPAY.payQuery, ...EXTRAS.payQuery })) {
    const answer: unknown = queried.body.data?.[name];
    if (answer === undefined) continue;
    if (name === 'state' || name === 'successTime') continue; // the notification was sent at success; the query may be later
    if (type === 'number') assert.match(note[name], /^-?[0-9]+$/, `notification ${name} is an integer`);
    assert.equal(note[name], String(answer), `notification ${name} carries the query's value`);
  }
  assert.match(note.successTime, /^[0-9]{13}$/, 'successTime in ms');
  assert.match(note.reqTime, /^[0-9]{13}$/, 'reqTime in ms');

  const open = await m.call('/api/pay/unifiedOrder', order('types-pay-2'));
  const closed = await m.call('/api/pay/close', { payOrderId: open.body.data?.payOrderId });
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  conforms('close', closed.body.data, ['orderState']);
});

test('refund: refund and refund query answer in Jeepay\'s types; the refund notification carries the same values', async () => {
  const created = await m.call('/api/pay/unifiedOrder', order('types-refund-1', { amount: 5000 }));
  const payOrderId = String(created.body.data?.payOrderId);
  await stack.sandbox.pay(payOrderId);
  await waitFor('paid', async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  const refund = await m.call('/api/refund/refundOrder', { payOrderId, mchRefundNo: 'types-r-1', refundAmount: 1200, currency: 'cny', refundReason: '多缴退还', extParam: 'e' });
  assert.equal(refund.status, 200, JSON.stringify(refund.body));
  conforms('refund', refund.body.data, ['refundOrderId', 'mchRefundNo', 'payAmount', 'refundAmount', 'state']);
  assert.equal(refund.body.data?.payAmount, 5000);
  assert.equal(refund.body.data?.refundAmount, 1200);

  const done = await waitFor('refund settled', async () => {
    const q = await m.call('/api/refund/query', { mchRefundNo: 'types-r-1' });
    return q.body.data?.state === 2 ? q : null;
  });
  conforms('refundQuery', done.body.data, ['refundOrderId', 'payOrderId', 'mchNo', 'appId', 'mchRefundNo', 'currency', 'payAmount', 'refundAmount', 'state', 'createdAt', 'successTime', 'extParam']);
  const refundOrderId = String(done.body.data?.refundOrderId);
  const note = await waitFor('refund notification', async () => sink.received.find((n) => n.refundOrderId === refundOrderId));
  assert.equal(verify(note, m.appSecret, 'MD5'), true);
  for (const name of ['payAmount', 'refundAmount', 'state', 'createdAt', 'successTime']) {
    assert.equal(note[name], String(done.body.data?.[name]), `refund notification ${name}`);
  }
});

test('transfer: transfer and transfer query answer in Jeepay\'s types', async () => {
  const paid = await m.call('/api/pay/unifiedOrder', order('types-fund-1', { amount: 90000 }));
  await stack.sandbox.pay(String(paid.body.data?.payOrderId));
  await waitFor('paid', async () => (await m.call('/api/pay/query', { mchOrderNo: 'types-fund-1' })).body.data?.state === 2);
  const t = await m.call('/api/transferOrder', { mchOrderNo: 'types-out-1', entryType: 'BANK_CARD', amount: 20000, currency: 'cny', accountNo: '6222020200001234567', accountName: '某某维修公司', bankName: '工商银行', transferDesc: '维修工程款', extParam: 'x' });
  assert.equal(t.status, 200, JSON.stringify(t.body));
  conforms('transfer', t.body.data, ['transferId', 'mchOrderNo', 'amount', 'state', 'accountNo']);
  assert.equal(t.body.data?.amount, 20000);
  const q = await waitFor('payout success', async () => {
    const r = await m.call('/api/transfer/query', { mchOrderNo: 'types-out-1' });
    return r.body.data?.state === 2 ? r : null;
  });
  conforms('transferQuery', q.body.data, ['transferId', 'mchNo', 'appId', 'mchOrderNo', 'ifCode', 'entryType', 'currency', 'accountNo', 'transferDesc', 'amount', 'state', 'successTime', 'createdAt']);
});

test('division: receiver bind and division execute answer in Jeepay\'s types; numeric ids from Jeepay clients are accepted', async () => {
  const paid = await m.call('/api/pay/unifiedOrder', order('types-div-1', { amount: 10000, divisionMode: 2 }));
  await stack.sandbox.pay(String(paid.body.data?.payOrderId));
  await waitFor('paid', async () => (await m.call('/api/pay/query', { mchOrderNo: 'types-div-1' })).body.data?.state === 2);
  const bound = await m.call('/api/division/receiver/bind', { ifCode: 'sandbox', receiverAlias: '平台服务费', receiverGroupId: 1001, accType: 1, accNo: 'TYPES-001', accName: 'Custos 平台', relationType: 'SERVICE_PROVIDER', relationTypeName: '服务商', divisionProfit: 0.05 });
  assert.equal(bound.status, 200, JSON.stringify(bound.body));
  conforms('divisionBind', bound.body.data, ['receiverId', 'receiverGroupId', 'accType', 'bindState', 'bindSuccessTime', 'divisionProfit', 'accNo']);
  assert.equal(bound.body.data?.divisionProfit, 0.05);
  assert.equal(bound.body.data?.receiverGroupId, 1001);
  // a Jeepay client sends the receiverId back as the number it received
  const exec = await m.call('/api/division/exec', { mchOrderNo: 'types-div-1', useSysAutoDivisionReceivers: 0, receivers: JSON.stringify([{ receiverId: bound.body.data?.receiverId }]) });
  assert.equal(exec.status, 200, JSON.stringify(exec.body));
  conforms('divisionExec', exec.body.data, ['state']);
  const divisions = JSON.parse(String(exec.body.data?.divisions)) as Array<{ amount: unknown }>;
  assert.deepEqual(divisions.map((d) => d.amount), [500]);
  const badGroup = await m.call('/api/division/receiver/bind', { ifCode: 'sandbox', accType: 0, accNo: 'TYPES-002', receiverGroupId: 'group-a', divisionProfit: '0.01' });
  assert.equal(badGroup.status, 400);
  assert.equal(badGroup.body.errCode, 'PARAM_INVALID');
  const tooFine = await m.call('/api/division/receiver/bind', { ifCode: 'sandbox', accType: 0, accNo: 'TYPES-003', divisionProfit: '0.0000001' });
  assert.equal(tooFine.status, 400, 'at most 6 decimal places, as Jeepay stores it');
});

test('reqTime: seconds, milliseconds and microseconds are accepted; other lengths and stale times are refused', async () => {
  const now = Date.now();
  const accepted: Array<[string, string]> = [['10 digits (s)', String(Math.floor(now / 1000))], ['13 digits (ms)', String(now)], ['16 digits (µs)', `${now}123`]];
  for (const [name, reqTime] of accepted) {
    const res = await m.call('/api/pay/unifiedOrder', { ...order(`types-rt-${reqTime.length}`), reqTime });
    assert.equal(res.status, 200, `${name}: ${JSON.stringify(res.body)}`);
  }
  const asNumber = await m.call('/api/pay/unifiedOrder', { ...order('types-rt-num'), reqTime: now * 1000 + 7 });
  assert.equal(asNumber.status, 200, `16-digit JSON number: ${JSON.stringify(asNumber.body)}`);
  const refused: Array<[string, unknown]> = [
    ['stale µs', `${now - 10 * 60 * 1000}000`], ['future s', String(Math.floor(now / 1000) + 600)], ['11 digits', `${Math.floor(now / 1000)}0`],
    ['17 digits', `${now}1234`], ['9 digits', '170000000'], ['not digits', '17000000001x3'], ['negative', `-${now}`], ['decimal', `${now}.5`],
  ];
  for (const [name, reqTime] of refused) {
    const res = await m.call('/api/pay/unifiedOrder', { ...order(`types-rt-bad-${name.replace(/\W/g, '')}`), reqTime });
    assert.equal(res.status, 401, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.errCode, 'REQ_TIME_INVALID', name);
    assert.match(res.body.msg, /reqTime/, name);
  }
});

test('version: 1.0 and 1.0.0 are accepted, and a version this API does not speak is refused clearly', async () => {
  for (const version of ['1.0', '1.0.0']) {
    const res = await m.call('/api/pay/unifiedOrder', { ...order(`types-v-${version}`), version });
    assert.equal(res.status, 200, `${version}: ${JSON.stringify(res.body)}`);
  }
  const res = await m.call('/api/pay/unifiedOrder', { ...order('types-v-2'), version: '2.0' });
  assert.equal(res.status, 400);
  assert.equal(res.body.errCode, 'PARAM_INVALID');
  assert.match(res.body.msg, /version/);
});
