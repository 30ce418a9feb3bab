// Reconciliation groundwork: the WeChat trade-bill parser against the sandbox's own
// bills (round trip, property-based), malformed files (a clear error, nothing
// returned), and streaming (memory does not grow with the file).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseWechatBill, BillRejected, type ChannelRecord } from '../src/recon/parse/wechat.ts';
import { parseYuan } from '../src/recon/parse/amount.ts';
import { alipayBill, wechatBill, type StatementInput } from '../src/channel/sandbox/statements.ts';
import { parseAlipayBill } from '../src/recon/parse/alipay.ts';
import { readZip, writeZip } from '../src/platform/zip.ts';
import iconv from 'iconv-lite';
import { applyRate } from '../src/platform/money.ts';

const DAY = '2026-11-21';
const dayStart = Date.parse(`${DAY}T00:00:00+08:00`);

const inputArb: fc.Arbitrary<StatementInput> = fc.record({
  payments: fc.array(fc.record({ amount: fc.bigInt({ min: 1n, max: 10n ** 9n }), second: fc.integer({ min: 0, max: 86_399 }) }), { maxLength: 40 }),
  refunds: fc.array(fc.record({ amount: fc.bigInt({ min: 1n, max: 10n ** 9n }), second: fc.integer({ min: 0, max: 86_399 }) }), { maxLength: 20 }),
}).map(({ payments, refunds }) => ({
  billDate: DAY,
  feeRate: '0.006',
  payments: payments.map((p, i) => ({
    outTradeNo: `P${i}`, tradeNo: `42${i}`, amountFen: p.amount, wayCode: 'WX_NATIVE', subject: '物业费', payer: 'o1',
    successAt: new Date(dayStart + p.second * 1000), createdAt: new Date(dayStart),
  })),
  refunds: refunds.map((r, i) => ({
    outRefundNo: `R${i}`, refundNo: `50${i}`, outTradeNo: `P${i}`, tradeNo: `42${i}`, amountFen: r.amount, subject: '物业费',
    requestedAt: new Date(dayStart), successAt: new Date(dayStart + r.second * 1000),
  })),
}));

async function parseText(text: string) {
  const records: ChannelRecord[] = [];
  const totals = await parseWechatBill(text.split('\n'), (r) => { records.push(r); });
  return { records, totals };
}

test('amounts: yuan text to integers by string arithmetic', () => {
  assert.equal(parseYuan('12.34'), 1234n);
  assert.equal(parseYuan('0.1'), 10n);
  assert.equal(parseYuan('-0.04000', 5), -4000n);
  assert.equal(parseYuan('0.00600', 5), 600n);
  assert.equal(parseYuan('100'), 10000n);
  assert.equal(parseYuan('1.230', 2), 123n);
  for (const bad of ['', '1e3', '1,000.00', '¥1', '1.234', 'NaN', '0x10']) assert.throws(() => parseYuan(bad), /amount|decimals/);
  fc.assert(fc.property(fc.bigInt({ min: -(10n ** 14n), max: 10n ** 14n }), (fen) => {
    const text = `${fen < 0n ? '-' : ''}${(fen < 0n ? -fen : fen) / 100n}.${((fen < 0n ? -fen : fen) % 100n).toString().padStart(2, '0')}`;
    assert.equal(parseYuan(text), fen);
  }));
});

test('round trip: every record of a sandbox bill comes back exactly, with checked totals', async () => {
  await fc.assert(fc.asyncProperty(inputArb, async (input) => {
    const { records, totals } = await parseText(wechatBill(input, 'ALL'));
    assert.equal(records.length, input.payments.length + input.refunds.length);
    const payments = records.filter((r) => r.kind === 'payment');
    const refunds = records.filter((r) => r.kind === 'refund');
    assert.deepEqual(payments.map((r) => r.amountFen).sort(), input.payments.map((p) => p.amountFen).sort());
    assert.deepEqual(refunds.map((r) => r.amountFen).sort(), input.refunds.map((p) => p.amountFen).sort());
    for (const r of payments) assert.equal(r.feeE5, applyRate(r.amountFen, '0.006') * 1000n);
    assert.equal(totals.settledFen, input.payments.reduce((a, p) => a + p.amountFen, 0n));
    assert.equal(totals.refundedFen, input.refunds.reduce((a, p) => a + p.amountFen, 0n));
    const onlySuccess = await parseText(wechatBill(input, 'SUCCESS'));
    assert.equal(onlySuccess.records.length, input.payments.length);
    const onlyRefunds = await parseText(wechatBill(input, 'REFUND'));
    assert.equal(onlyRefunds.records.length, input.refunds.length);
  }), { numRuns: 60 });
});

test('malformed bills are rejected whole with a code that says why', async () => {
  const input = fc.sample(inputArb.filter((i) => i.payments.length >= 2), { numRuns: 1, seed: 7 })[0];
  const good = wechatBill(input, 'ALL');
  const lines = good.split('\r\n');
  const cases: Array<[string, string, string]> = [
    ['empty file', '', 'BILL_TRUNCATED'],
    ['wrong header', good.replace('商户订单号', '订单号'), 'BILL_HEADER_INVALID'],
    ['an Alipay file', '#支付宝业务明细查询\n支付宝交易号,商户订单号\n', 'BILL_HEADER_INVALID'],
    ['bad amount', good.replace(/`(\d+)\.(\d\d),`0\.00,`0,`0/, '`1,2x.00,`0.00,`0,`0'), 'BILL_ROW_INVALID'],
    ['amount not a number', lines.map((l, i) => (i === 1 ? l.replace(/`OTHERS,`CNY,`[\d.]+/, '`OTHERS,`CNY,`abc') : l)).join('\r\n'), 'BILL_AMOUNT_INVALID'],
    ['cut short (no summary)', lines.slice(0, lines.length - 3).join('\r\n'), 'BILL_TRUNCATED'],
    ['summary disagrees', lines.map((l, i) => (i === lines.length - 2 ? l.replace(/^`\d+/, '`999') : l)).join('\r\n'), 'BILL_SUMMARY_MISMATCH'],
    ['summary total changed', lines.map((l, i) => (i === lines.length - 2 ? l.replace(/^(`\d+,`)(\d+)/, '$11$2') : l)).join('\r\n'), 'BILL_SUMMARY_MISMATCH'],
    ['a missing backtick', lines.map((l, i) => (i === 1 ? l.replace(/^`/, '') : l)).join('\r\n'), 'BILL_ROW_INVALID'],
  ];
  for (const [name, text, code] of cases) {
    let delivered = 0;
    await assert.rejects(parseWechatBill(text.split('\n'), () => { delivered += 1; }), (error: unknown) => {
      assert.ok(error instanceof BillRejected, `${name}: ${error}`);
      assert.equal(error.code, code, `${name}: ${error.message}`);
      return true;
    }, name);
    assert.ok(delivered <= input.payments.length + input.refunds.length, name);
  }
});

test('streaming: a 200,000-row bill parses without holding it in memory', async () => {
  const rows = 200_000;
  const header = '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';
  function* generate() {
    yield header + '\r\n';
    for (let i = 0; i < rows; i += 1) {
      yield `\`2026-11-21 10:00:00,\`wx1,\`1900000109,\`0,\`,\`42${i},\`P${i},\`o1,\`NATIVE,\`SUCCESS,\`OTHERS,\`CNY,\`1.00,\`0.00,\`0,\`0,\`0.00,\`0.00,\`,\`,\`物业费,\`,\`0.00600,\`0.60%,\`1.00,\`0.00,\`\r\n`;
    }
    yield '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n';
    yield `\`${rows},\`${rows}.00,\`0.00,\`0.00,\`${(rows * 6 / 1000).toFixed(2)}000,\`${rows}.00,\`0.00\r\n`;
  }
  // Live memory (after a full collection) is sampled while parsing: a parser that kept
  // the rows would grow by tens of MiB over this ~36 MB file; this one keeps totals only.
  v8.setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = process.memoryUsage().heapUsed;
  let peak = before;
  let seen = 0;
  const totals = await parseWechatBill(createInterface({ input: Readable.from(generate()), crlfDelay: Infinity }), () => {
    seen += 1;
    if (seen % 50_000 === 0) {
      gc();
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
  });
  assert.equal(totals.rows, rows);
  assert.equal(totals.settledFen, BigInt(rows) * 100n);
  assert.ok(peak - before < 8 * 1024 * 1024, `live heap grew by ${Math.round((peak - before) / 1048576)} MiB while parsing`);
});

test('Alipay: the zip of GBK CSV round-trips through the parser (property test)', () => {
  fc.assert(fc.property(inputArb, (input) => {
    const records: ChannelRecord[] = [];
    const totals = parseAlipayBill(alipayBill(input, new Date(dayStart + 86_400_000)), (r) => records.push(r));
    assert.equal(records.length, input.payments.length + input.refunds.length);
    assert.deepEqual(records.filter((r) => r.kind === 'payment').map((r) => r.payOrderId).sort(), input.payments.map((p) => p.outTradeNo).sort());
    assert.deepEqual(records.filter((r) => r.kind === 'refund').map((r) => r.refundOrderId).sort(), input.refunds.map((r) => r.outRefundNo).sort());
    assert.equal(totals.settledFen, input.payments.reduce((a, p) => a + p.amountFen, 0n));
    assert.equal(totals.refundedFen, input.refunds.reduce((a, r) => a + r.amountFen, 0n));
    for (const r of records) {
      assert.ok(!r.payOrderId.includes('\t') && !r.channelOrderNo.includes('\t'), 'ids lose their tab');
      assert.equal(r.feeE5, (r.kind === 'payment' ? 1n : -1n) * applyRate(r.amountFen, '0.006') * 1000n);
    }
  }), { numRuns: 40 });
});

test('Alipay: truncated zips, wrong encodings, wrong headers and disagreeing totals are rejected whole', () => {
  const input = fc.sample(inputArb.filter((i) => i.payments.length >= 2), { numRuns: 1, seed: 11 })[0];
  const good = alipayBill(input, new Date(dayStart + 86_400_000));
  const entries = readZip(good);
  const detail = iconv.decode(entries[0].data, 'gbk');
  const rezip = (text: string, encoding: 'gbk' | 'utf8' = 'gbk') => writeZip([{ name: entries[0].name, data: encoding === 'gbk' ? iconv.encode(text, 'gbk') : Buffer.from(text, 'utf8') }, entries[1]]);
  const cases: Array<[string, Buffer, string]> = [
    ['truncated zip', good.subarray(0, good.length - 30), 'BILL_TRUNCATED'],
    ['not a zip', Buffer.from('hello'), 'BILL_TRUNCATED'],
    ['UTF-8 instead of GBK', rezip(detail, 'utf8'), 'BILL_ROW_INVALID'],
    ['wrong header', rezip(detail.replace('商家实收（元）', '实收')), 'BILL_HEADER_INVALID'],
    ['bad amount', rezip(detail.replace(/,交易,([^,]*),([^,]*),([^,]*),,,,,([^,]*),([\d.]+),/, ',交易,$1,$2,$3,,,,,$4,$5,x,')), 'BILL_ROW_INVALID'],
    ['totals disagree', rezip(detail.replace(/#交易合计：(\d+)笔/, (_m, n) => `#交易合计：${Number(n) + 1}笔`)), 'BILL_SUMMARY_MISMATCH'],
    ['cut short', rezip(detail.split('#-----------------------------------------业务明细列表结束')[0]), 'BILL_TRUNCATED'],
  ];
  for (const [name, zip, code] of cases) {
    assert.throws(() => parseAlipayBill(zip, () => {}), (error: unknown) => {
      assert.ok(error instanceof BillRejected, `${name}: ${error}`);
      assert.equal(error.code, code, `${name}: ${error.message}`);
      return true;
    }, name);
  }
});
