// Statement parsing through the one entry, parseStatement(kind, stream, options):
// every format round-trips from its generator (property tests: same records, same
// totals), outer layers (zip, SM4/AES) unwrap, malformed files are rejected whole with
// a typed code (and the whole-buffer formats hand over nothing), and a 200,000-row
// WeChat bill is parsed from a stream in batches that arrive long before the stream
// has been produced (streaming shown by order of events, not by timing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { parseStatement, BillRejected, type StatementKind, type RecordOf, type ParseOptions, type ChannelRecord, type BankRecord } from '../src/recon/parse/index.ts';
import { encrypt, type DecryptLayer } from '../src/recon/parse/layers.ts';
import { ZM_LINE_BYTES } from '../src/recon/parse/unionpay.ts';
import { alipayBill, unionpayZm, wechatBill, type StatementInput } from '../src/channel/sandbox/statements.ts';
import { readZip, writeZip } from '../src/platform/zip.ts';
import { applyRate } from '../src/platform/money.ts';
import { bankCsv, bankTextRows, bankXls, bankXlsx, totalsOf, BANK_HEADER, type BankRow } from './recon.bankfiles.ts';

const DAY = '2026-11-21';
const dayStart = Date.parse(`${DAY}T00:00:00+08:00`);

const inputArb: fc.Arbitrary<StatementInput> = fc.record({
  payments: fc.array(fc.record({ amount: fc.bigInt({ min: 1n, max: 10n ** 9n }), second: fc.integer({ min: 0, max: 86_399 }) }), { maxLength: 30 }),
  refunds: fc.array(fc.record({ amount: fc.bigInt({ min: 1n, max: 10n ** 9n }), second: fc.integer({ min: 0, max: 86_399 }) }), { maxLength: 15 }),
  subject: fc.constantFrom('物业费', '住宅专项维修资金（一期）', 'Parking fee', '车位管理费·月缴'),
}).map(({ payments, refunds, subject }) => ({
  billDate: DAY,
  feeRate: '0.006',
  payments: payments.map((p, i) => ({
    outTradeNo: `P2026112100${i}`, tradeNo: `4200${i}`, amountFen: p.amount, wayCode: 'WX_NATIVE', subject, payer: 'o1',
    successAt: new Date(dayStart + p.second * 1000), createdAt: new Date(dayStart),
  })),
  refunds: refunds.map((r, i) => ({
    outRefundNo: `R2026112100${i}`, refundNo: `5000${i}`, outTradeNo: `P2026112100${i}`, tradeNo: `4200${i}`, amountFen: r.amount, subject,
    requestedAt: new Date(dayStart), successAt: new Date(dayStart + r.second * 1000),
  })),
}));

const stream = (data: Buffer | string) => Readable.from([Buffer.from(data)]);
const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

async function parse<K extends StatementKind>(kind: K, data: Buffer | string | Readable, options: Omit<ParseOptions<K>, 'onBatch'> = {}) {
  const records: Array<RecordOf<K>> = [];
  const batches: number[] = [];
  const result = await parseStatement(kind, typeof data === 'string' || Buffer.isBuffer(data) ? stream(data) : data, {
    ...options,
    onBatch: (batch) => {
      batches.push(batch.length);
      records.push(...batch);
    },
  });
  return { records, batches, totals: result.totals };
}

/** Expects a typed rejection; returns how many records had been handed over. */
async function rejected(kind: StatementKind, data: Buffer | string, code: string, options: Omit<ParseOptions<StatementKind>, 'onBatch'> = {}): Promise<number> {
  let delivered = 0;
  await assert.rejects(parseStatement(kind, stream(data), { ...options, onBatch: (b) => { delivered += b.length; } }), (error: unknown) => {
    assert.ok(error instanceof BillRejected, `${kind} ${code}: ${String(error)}`);
    assert.equal(error.code, code, `${kind}: ${error.message}`);
    return true;
  });
  return delivered;
}

function expectChannel(records: ChannelRecord[], input: StatementInput) {
  const payments = records.filter((r) => r.kind === 'payment');
  const refunds = records.filter((r) => r.kind === 'refund');
  assert.deepEqual(payments.map((r) => `${r.payOrderId}=${r.amountFen}`).sort(), input.payments.map((p) => `${p.outTradeNo}=${p.amountFen}`).sort());
  assert.deepEqual(refunds.map((r) => `${r.refundOrderId}>${r.payOrderId}=${r.amountFen}`).sort(), input.refunds.map((r) => `${r.outRefundNo}>${r.outTradeNo}=${r.amountFen}`).sort());
  for (const r of records) assert.equal(r.feeE5, (r.kind === 'payment' ? 1n : -1n) * applyRate(r.amountFen, '0.006') * 1000n);
}

// --- channel formats ----------------------------------------------------------------

test('WeChat ALL/SUCCESS/REFUND, Alipay and UnionPay ZM round-trip through parseStatement (property test)', async () => {
  await fc.assert(fc.asyncProperty(inputArb, async (input) => {
    const settled = sum(input.payments.map((p) => p.amountFen));
    const refunded = sum(input.refunds.map((r) => r.amountFen));
    const all = await parse('wechat:ALL', wechatBill(input, 'ALL'), { batchRows: 7 });
    expectChannel(all.records, input);
    assert.ok(all.batches.every((n) => n <= 7), 'batches bounded');
    assert.equal(all.totals.settledFen, settled);
    assert.equal(all.totals.refundedFen, refunded);
    assert.equal((await parse('wechat:SUCCESS', wechatBill(input, 'SUCCESS'))).records.length, input.payments.length);
    assert.equal((await parse('wechat:REFUND', wechatBill(input, 'REFUND'))).records.length, input.refunds.length);
    const ali = await parse('alipay:trade', alipayBill(input, new Date(dayStart + 86_400_000)));
    expectChannel(ali.records, input);
    assert.equal(ali.totals.settledFen, settled);
    const zm = await parse('unionpay:ZM', unionpayZm(input), { billDate: DAY });
    expectChannel(zm.records, input);
    assert.equal(zm.totals.settledFen, settled);
    assert.equal(zm.totals.refundedFen, refunded);
    assert.equal(zm.totals.rows, input.payments.length + input.refunds.length);
    for (const r of zm.records) {
      assert.match(r.time, /^2026-11-2[12] \d\d:\d\d:\d\d$/);
      if (r.kind === 'refund') assert.equal(r.channelOrderNo, input.refunds.find((x) => x.outRefundNo === r.refundOrderId)?.tradeNo);
    }
  }), { numRuns: 40 });
});

test('UnionPay ZM: fixed width is measured in GBK bytes; other transaction codes are counted, not delivered', () => {
  const input = fc.sample(inputArb.filter((i) => i.payments.length >= 2 && i.refunds.length >= 1), { numRuns: 1, seed: 3 })[0];
  const zip = unionpayZm({ ...input, payments: input.payments.map((p) => ({ ...p, subject: '住宅专项维修资金（一期）' })) });
  const entries = readZip(zip);
  assert.equal(entries.length, 2);
  assert.match(entries[0].name.toString(), /^INN26112188ZM_777290058110048$/);
  const lines = entries[0].data.toString('latin1').split('\r\n').filter((l) => l !== '');
  for (const line of lines) assert.equal(Buffer.from(line, 'latin1').length, ZM_LINE_BYTES, 'every line is the documented byte width');
  assert.ok(iconv.decode(entries[0].data, 'gbk').includes('住宅专项维修资金'), 'Chinese text is GBK');
  // a cancellation (S31) line is well formed but not a purchase or refund
  const s31 = Buffer.concat([Buffer.from('S31'), entries[0].data.subarray(3, entries[0].data.indexOf(0x0a) + 1)]);
  const more = writeZip([{ name: entries[0].name, data: Buffer.concat([entries[0].data, s31]) }]);
  return parse('unionpay:ZM', more, { billDate: DAY }).then(({ records, totals }) => {
    assert.equal(records.length, lines.length);
    assert.equal(totals.skippedRows, 1);
  });
});

test('channel formats: malformed files are rejected whole with a clear code; zip formats hand over nothing', async () => {
  const input = fc.sample(inputArb.filter((i) => i.payments.length >= 3 && i.refunds.length >= 1), { numRuns: 1, seed: 5 })[0];
  const wx = wechatBill(input, 'ALL');
  const zm = unionpayZm(input);
  const zmData = readZip(zm)[0];
  const rezm = (data: Buffer) => writeZip([{ name: zmData.name, data }]);
  const firstLine = zmData.data.subarray(0, zmData.data.indexOf(0x0a) + 1);
  const amountAt = 3 + 1 + 11 + 1 + 11 + 1 + 6 + 1 + 10 + 1 + 19 + 1;
  const badAmount = Buffer.from(firstLine);
  badAmount.write('00000000x000', amountAt, 'latin1');
  const shifted = Buffer.concat([Buffer.from('S22 '), firstLine.subarray(3)]); // one byte too many: columns shift
  const utf8Zm = Buffer.from(iconv.decode(zmData.data, 'gbk'), 'utf8'); // the same text, UTF-8 bytes
  const cases: Array<[StatementKind, Buffer | string, string]> = [
    ['wechat:ALL', wx.replace('商户订单号', '订单号'), 'BILL_HEADER_INVALID'],
    ['wechat:ALL', wechatBill(input, 'SUCCESS'), 'BILL_HEADER_INVALID'], // a SUCCESS bill given as ALL
    ['wechat:ALL', wx.replace(/(\n`[^\n]*?`CNY,`)[\d.]+/, '$1x.00'), 'BILL_AMOUNT_INVALID'],
    ['wechat:ALL', Buffer.concat([Buffer.from(wx.slice(0, 200)), Buffer.from([0xff, 0xfe]), Buffer.from(wx.slice(200))]), 'BILL_ENCODING_INVALID'],
    ['wechat:ALL', wx.split('\r\n').map((l, i, all) => (i === all.length - 2 ? l.replace(/^`\d+/, '`999') : l)).join('\r\n'), 'BILL_SUMMARY_MISMATCH'],
    ['alipay:trade', alipayBill(input).subarray(0, 300), 'BILL_TRUNCATED'],
    ['unionpay:ZM', zm.subarray(0, zm.length - 40), 'BILL_TRUNCATED'],
    ['unionpay:ZM', writeZip([{ name: Buffer.from('INN261121ZME_1'), data: Buffer.alloc(0) }]), 'BILL_HEADER_INVALID'],
    ['unionpay:ZM', rezm(badAmount), 'BILL_AMOUNT_INVALID'],
    ['unionpay:ZM', rezm(shifted), 'BILL_ROW_INVALID'],
    ['unionpay:ZM', rezm(utf8Zm), 'BILL_ENCODING_INVALID'],
  ];
  for (const [kind, data, code] of cases) {
    const delivered = await rejected(kind, data, code, { billDate: DAY });
    if (!kind.startsWith('wechat')) assert.equal(delivered, 0, `${kind} ${code}: nothing handed over`);
  }
});

// --- bank statements -----------------------------------------------------------------

const bankArb: fc.Arbitrary<BankRow[]> = fc.record({
  opening: fc.bigInt({ min: 0n, max: 10n ** 11n }),
  moves: fc.array(fc.record({
    credit: fc.boolean(),
    amount: fc.bigInt({ min: 1n, max: 10n ** 10n }),
    name: fc.constantFrom('某市住房公积金管理中心', '张三', 'Acme, "Ltd"', '翠湖花园业主委员会'),
    remark: fc.constantFrom('', '3月物业费', 'line one\nline two', '退款, 多缴'),
  }), { maxLength: 40 }),
}).map(({ opening, moves }) => {
  let balance = opening;
  return moves.map((m, i) => {
    const debit = !m.credit && m.amount <= balance;
    balance += debit ? -m.amount : m.amount;
    return {
      date: i < 20 ? '2026-11-20' : DAY, time: `${String(8 + (i % 12)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:07`, serialNo: `SN${String(100000 + i)}`,
      direction: debit ? 'debit' : 'credit', amountFen: m.amount, balanceFen: balance, counterpartyName: m.name,
      counterpartyAccount: `62220202${String(i).padStart(8, '0')}`, counterpartyBank: '中国工商银行某市分行', summary: debit ? '转账支出' : '转账存入', remark: m.remark,
    } satisfies BankRow;
  });
});

function expectBank(records: BankRecord[], rows: BankRow[]) {
  assert.deepEqual(records, rows);
}

test('bank CSV (UTF-8, UTF-8 with BOM, GBK) and .xls round-trip: same records, same totals, balances chained (property test)', async () => {
  await fc.assert(fc.asyncProperty(bankArb, async (rows) => {
    const text = bankTextRows(rows);
    const { debitFen, creditFen } = totalsOf(rows);
    for (const encoding of ['utf8', 'utf8bom', 'gbk'] as const) {
      const got = await parse('bank:csv', bankCsv(text, encoding), { batchRows: 9 });
      expectBank(got.records, rows);
      assert.equal(got.totals.debitFen, debitFen);
      assert.equal(got.totals.creditFen, creditFen);
      assert.ok(got.batches.every((n) => n <= 9));
      if (rows.length > 0) {
        assert.equal(got.totals.closingBalanceFen, rows.at(-1)?.balanceFen);
        if (rows.length > 1) assert.equal(got.totals.order, 'ascending');
      }
    }
    const xls = await parse('bank:xls', bankXls(rows));
    expectBank(xls.records, rows);
    assert.equal(xls.totals.debitFen, debitFen);
    // newest first is a valid order too: the balances chain backwards
    if (rows.length > 1) {
      const reversed = await parse('bank:csv', bankCsv(bankTextRows([...rows].reverse()), 'utf8'));
      assert.equal(reversed.totals.order, 'descending');
      assert.equal(reversed.totals.closingBalanceFen, rows.at(-1)?.balanceFen);
    }
  }), { numRuns: 40 });
});

test('bank .xlsx (exceljs, read whole and bounded): dates, numbers, formula results round-trip, every time', async () => {
  for (const rows of fc.sample(bankArb, { numRuns: 6, seed: 13 })) {
    const got = await parse('bank:xlsx', await bankXlsx(rows));
    expectBank(got.records, rows);
    assert.deepEqual([got.totals.debitFen, got.totals.creditFen], Object.values(totalsOf(rows)));
  }
});

test('bank .xls: a workbook big enough to split the shared strings over CONTINUE records', async () => {
  const rows = fc.sample(bankArb, { numRuns: 200, seed: 17 }).flat().map((r, i) => ({ ...r, serialNo: `流水${i}`, counterpartyName: `${r.counterpartyName}${i}` }));
  let balance = 0n;
  for (const r of rows) {
    r.direction = 'credit';
    balance += r.amountFen;
    r.balanceFen = balance;
  }
  const file = bankXls(rows);
  assert.ok(file.length > 40_000, 'large enough for several SST CONTINUE records');
  const got = await parse('bank:xls', file);
  expectBank(got.records, rows);
});

test('bank .xls: a small workbook whose stream lives in the compound file\'s mini stream', async () => {
  const rows = fc.sample(bankArb, { numRuns: 20, seed: 37 }).flat().slice(0, 2);
  assert.equal(rows.length, 2);
  const got = await parse('bank:xls', bankXls(rows, { mini: true }));
  expectBank(got.records, rows);
});

test('bank statements: header synonyms and Excel-style cells', async () => {
  const text = [
    ['记账日期', '时间', '流水号', '支出金额', '收入金额', '账户余额', '对方账户名称', '对方帐号', '对方行名', '用途', '备注'],
    ['2026/11/21', '093000', 'A1', '', '1,000.00', '11,000.00', '业主甲', '1', '某行', '维修资金缴存', ''],
    ['20261121', '10:00', 'A2', '￥200.50', '', '10799.50', '某物业', '2', '某行', '维修支出', 'x'],
  ];
  const { records, totals } = await parse('bank:csv', bankCsv(text, 'gbk'));
  assert.deepEqual(records.map((r) => [r.date, r.time, r.direction, r.amountFen, r.balanceFen, r.summary]), [
    ['2026-11-21', '09:30:00', 'credit', 100000n, 1100000n, '维修资金缴存'],
    ['2026-11-21', '10:00:00', 'debit', 20050n, 1079950n, '维修支出'],
  ]);
  assert.equal(totals.openingBalanceFen, 1000000n);
});

test('bank statements: malformed files are rejected whole with a clear code', async () => {
  const rows = fc.sample(bankArb.filter((r) => r.length >= 4), { numRuns: 1, seed: 23 })[0];
  const text = bankTextRows(rows);
  const at = (i: number, col: number, value: string) => text.map((r, k) => (k === 4 + i ? r.map((c, j) => (j === col ? value : c)) : r));
  const cases: Array<[StatementKind, Buffer, string, string]> = [
    ['bank:csv', bankCsv(bankTextRows(rows, { header: BANK_HEADER.map((h) => (h.startsWith('贷方') ? '金额' : h)) }), 'utf8'), 'BILL_HEADER_INVALID', 'no credit column'],
    ['bank:csv', bankCsv([['just', 'some', 'text'], ['1', '2', '3']], 'utf8'), 'BILL_TRUNCATED', 'no header at all'],
    ['bank:csv', bankCsv(at(1, 5, '1.2.3'), 'utf8'), 'BILL_AMOUNT_INVALID', 'bad amount'],
    ['bank:csv', bankCsv(at(1, 5, '0.01'), 'utf8'), 'BILL_BALANCE_BROKEN', 'balance altered'],
    ['bank:csv', bankCsv(text.filter((_r, k) => k !== 5), 'utf8'), 'BILL_BALANCE_BROKEN', 'a row removed'],
    ['bank:csv', bankCsv(at(2, 0, '2026-02-30'), 'utf8'), 'BILL_ROW_INVALID', 'not a date'],
    ['bank:csv', bankCsv(text.map((r) => (r[0] === '合计' ? r.map((c, j) => (j === 4 ? '0.01' : c)) : r)), 'utf8'), 'BILL_SUMMARY_MISMATCH', '合计 differs'],
    ['bank:csv', bankCsv(at(0, 3, '1.00').map((r, k) => (k === 4 ? r.map((c, j) => (j === 4 ? '1.00' : c)) : r)), 'utf8'), 'BILL_ROW_INVALID', 'both debit and credit'],
    ['bank:csv', bankCsv(text, 'utf8'), 'BILL_ENCODING_INVALID', 'UTF-8 where GBK is configured'],
    ['bank:csv', Buffer.concat([bankCsv(text, 'gbk').subarray(0, 100), Buffer.from([0x81, 0x20]), bankCsv(text, 'gbk').subarray(100)]), 'BILL_ENCODING_INVALID', 'a byte that is not GBK'],
    ['bank:xls', bankXls(rows).subarray(0, 3000), 'BILL_TRUNCATED', 'truncated .xls'],
    ['bank:xls', Buffer.from('not a workbook at all, but long enough to have a header'.repeat(20)), 'BILL_ARCHIVE_INVALID', 'not an .xls'],
    ['bank:xlsx', bankCsv(text, 'utf8'), 'BILL_ARCHIVE_INVALID', 'a CSV given as .xlsx'],
  ];
  for (const [kind, data, code, name] of cases) {
    const encoding = name.startsWith('UTF-8 where GBK') || name.includes('not GBK') ? 'gbk' : 'auto';
    let delivered = 0;
    await assert.rejects(parseStatement(kind, stream(data), { encoding, onBatch: (b) => { delivered += b.length; } }), (error: unknown) => {
      assert.ok(error instanceof BillRejected, `${name}: ${String(error)}`);
      assert.equal(error.code, code, `${name}: ${error.message}`);
      return true;
    }, name);
    if (kind === 'bank:xls') assert.equal(delivered, 0, `${name}: nothing handed over`);
  }
});

test('bank .xls: any truncation or changed byte is either read or rejected as BillRejected, never another error (property test)', async () => {
  const rows = fc.sample(bankArb, { numRuns: 30, seed: 31 }).flat().slice(0, 120);
  const good = bankXls(rows);
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: good.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.boolean(), async (at, byte, cut) => {
    const bad = cut ? good.subarray(0, at) : Buffer.from(good);
    if (!cut) bad[at] = byte;
    try {
      await parseStatement('bank:xls', stream(bad), { onBatch: () => {} });
    } catch (error) {
      assert.ok(error instanceof BillRejected, `${cut ? 'cut at' : 'byte changed at'} ${at}: ${String(error)}`);
    }
  }), { numRuns: 400 });
});

// --- outer layers ----------------------------------------------------------------------

test('outer layers: zip and SM4-CBC / SM4-ECB / AES-256-CBC / AES-256-GCM unwrap; a wrong key parses nothing', async () => {
  const rows = fc.sample(bankArb.filter((r) => r.length >= 3), { numRuns: 1, seed: 29 })[0];
  const csv = bankCsv(bankTextRows(rows), 'gbk');
  const zipped = writeZip([{ name: iconv.encode('流水_20261121.csv', 'gbk'), data: csv }]);
  const keys: DecryptLayer[] = [
    { algorithm: 'sm4-cbc', keyHex: '0123456789abcdeffedcba9876543210' },
    { algorithm: 'sm4-ecb', keyHex: '0123456789abcdeffedcba9876543210' },
    { algorithm: 'aes-256-cbc', keyHex: 'aa'.repeat(32), ivHex: '00112233445566778899aabbccddeeff' },
    { algorithm: 'aes-256-gcm', keyHex: 'bb'.repeat(32) },
  ];
  assert.deepEqual((await parse('bank:csv', zipped, { layers: { unzip: true } })).records.length, rows.length);
  for (const layer of keys) {
    const sealed = encrypt(zipped, layer);
    const got = await parse('bank:csv', sealed, { layers: { decrypt: layer, unzip: true } });
    expectBank(got.records, rows);
    const wrong = { ...layer, keyHex: layer.keyHex.replace(/^../, 'ff') };
    assert.equal(await rejected('bank:csv', sealed, 'BILL_DECRYPT_FAILED', { layers: { decrypt: wrong, unzip: true } }), 0, `${layer.algorithm}: nothing parsed`);
  }
  await rejected('bank:csv', encrypt(csv, keys[0]), 'BILL_DECRYPT_FAILED', { layers: { decrypt: { ...keys[0], keyHex: 'abcd' } } });
  await rejected('bank:csv', zipped.subarray(0, zipped.length - 10), 'BILL_TRUNCATED', { layers: { unzip: true } });
  await rejected('bank:csv', writeZip([{ name: Buffer.from('a.csv'), data: csv }, { name: Buffer.from('b.csv'), data: csv }]), 'BILL_ARCHIVE_INVALID', { layers: { unzip: true } });
});

// --- streaming --------------------------------------------------------------------------

test('streaming: a 200,000-row WeChat bill is parsed from a stream in batches of 10,000, the first long before the stream ends', async () => {
  const rows = 200_000;
  const header = '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';
  let produced = 0;
  function* generate() {
    yield Buffer.from(header + '\r\n');
    const chunk: string[] = [];
    for (let i = 0; i < rows; i += 1) {
      produced += 1;
      chunk.push(`\`2026-11-21 10:00:00,\`wx1,\`1900000109,\`0,\`,\`42${i},\`P${i},\`o1,\`NATIVE,\`SUCCESS,\`OTHERS,\`CNY,\`1.00,\`0.00,\`0,\`0,\`0.00,\`0.00,\`,\`,\`物业费,\`,\`0.00600,\`0.60%,\`1.00,\`0.00,\`\r\n`);
      if (chunk.length === 500) yield Buffer.from(chunk.splice(0).join('')); // ~80 KB chunks, as a file stream gives
    }
    yield Buffer.from('总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n');
    yield Buffer.from(`\`${rows},\`${rows}.00,\`0.00,\`0.00,\`${(rows * 6 / 1000).toFixed(2)}000,\`${rows}.00,\`0.00\r\n`);
  }
  const producedAtBatch: number[] = [];
  let handed = 0;
  const result = await parseStatement('wechat:ALL', Readable.from(generate(), { objectMode: false, highWaterMark: 64 * 1024 }), {
    onBatch: (batch) => {
      assert.ok(batch.length <= 10_000);
      producedAtBatch.push(produced);
      handed += batch.length;
    },
  });
  assert.equal(result.totals.rows, rows);
  assert.equal(handed, rows);
  assert.equal(producedAtBatch.length, 20);
  assert.ok(producedAtBatch[0] < 20_000, `the first batch came when ${producedAtBatch[0]} of ${rows} rows had been produced`);
});
