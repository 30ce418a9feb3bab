// Channel statements of the sandbox (reference/channel-formats.md): the WeChat Pay trade
// bill (ALL, SUCCESS, REFUND) and the Alipay zip of GBK CSVs, checked field by field and
// with integer-fen arithmetic on the decimal strings (never floats); Beijing-day
// boundaries; the zip reader (round trip, truncation, CRC, limits, mutations); and the
// statements of a running sandbox after real payments and a refund through the platform.
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { alipayBill, wechatBill, ALIPAY_ACCOUNT, WECHAT_APP_ID, WECHAT_MCH_ID, type StatementInput, type StatementPayment, type StatementRefund } from '../src/channel/sandbox/statements.ts';
import { readZip, writeZip, ZipError, type ZipEntry } from '../src/platform/zip.ts';
import { createSandboxAdapter } from '../src/channel/sandbox/adapter.ts';
import { signBody, SIGNATURE_HEADER } from '../src/channel/sandbox/protocol.ts';
import { startStack, merchant, waitFor, order, SANDBOX_KEY } from './payment.harness.ts';

// --- the formats, as channel-formats.md states them ---------------------------------

const WECHAT_ALL_HEADER = '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';
const WECHAT_REFUND_COLS = ['微信退款单号', '商户退款单号', '退款金额', '充值券退款金额', '退款类型', '退款状态'];
const WECHAT_SUMMARY_HEADER = '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额';
const WECHAT_SUCCESS_SUMMARY_HEADER = '总交易单数,应结订单总金额,手续费总金额,订单总金额';
const ALIPAY_DETAIL_HEADER = '支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注';
const ALIPAY_SUMMARY_HEADER = '门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）';
const ALIPAY_ID_COLS = ['支付宝交易号', '商户订单号', '退款批次号/请求号'];

// --- parsing helpers (strings and bigints only) ---------------------------------------

/** A yuan amount with exactly `decimals` places as an integer count of 10^-decimals yuan. */
function units(yuan: string, decimals = 2): bigint {
  const m = /^(-?)(\d+)\.(\d+)$/.exec(yuan);
  assert.ok(m, `not a decimal amount: ${JSON.stringify(yuan)}`);
  assert.equal(m[3].length, decimals, `${yuan} should have ${decimals} decimals`);
  const value = BigInt(m[2] + m[3]);
  return m[1] === '-' ? -value : value;
}
const fen = (yuan: string) => units(yuan, 2);
/** 手续费 has 5 decimals, but is always whole fen: the last 3 digits are zeros. */
function feeFen(yuan: string): bigint {
  const u = units(yuan, 5);
  assert.equal(u % 1000n, 0n, `fee ${yuan} is not whole fen`);
  return u / 1000n;
}
/** amount × 0.006 in fen, rounded half up (the sandbox's rate). */
const fee6 = (amount: bigint) => (amount * 6n * 2n + 1000n) / 2000n;
const sum = (values: bigint[]) => values.reduce((a, b) => a + b, 0n);

interface WechatBill { header: string[]; rows: Array<Record<string, string>>; summaryHeader: string[]; summary: Record<string, string> }

/** Parses a WeChat bill strictly: header, backticked rows, summary header, backticked summary. */
function parseWechat(text: string): WechatBill {
  assert.ok(text.endsWith('\r\n'), 'the bill ends with a line break');
  const lines = text.slice(0, -2).split('\r\n');
  const header = lines[0].split(',');
  assert.ok(!lines[0].includes('`'), 'the header row has no backticks');
  const ticked = (line: string, width: number) => {
    const fields = line.split(',');
    assert.equal(fields.length, width, `row has ${width} fields: ${line}`);
    for (const f of fields) assert.ok(f.startsWith('`'), `every field starts with a backtick: ${line}`);
    return fields.map((f) => f.slice(1));
  };
  assert.ok(lines.length >= 3);
  const rows = lines.slice(1, -2).map((line) => {
    const fields = ticked(line, header.length);
    return Object.fromEntries(header.map((h, i) => [h, fields[i]]));
  });
  const summaryHeader = lines[lines.length - 2].split(',');
  assert.ok(!lines[lines.length - 2].includes('`'), 'the summary header has no backticks');
  const s = ticked(lines[lines.length - 1], summaryHeader.length);
  return { header, rows, summaryHeader, summary: Object.fromEntries(summaryHeader.map((h, i) => [h, s[i]])) };
}

/** Checks the summary of a WeChat bill against its own detail rows. */
function checkWechatSummary(bill: WechatBill): void {
  const col = (name: string) => bill.rows.map((r) => r[name]);
  const s = bill.summary;
  assert.equal(s['总交易单数'], String(bill.rows.length));
  assert.equal(fen(s['应结订单总金额']), sum(col('应结订单金额').map(fen)));
  assert.equal(units(s['手续费总金额'], 5), sum(col('手续费').map((f) => units(f, 5))));
  assert.equal(fen(s['订单总金额']), sum(col('订单金额').map(fen)));
  if ('退款总金额' in s) {
    assert.equal(fen(s['退款总金额']), sum(col('退款金额').map(fen)));
    assert.equal(fen(s['充值券退款总金额']), sum(col('充值券退款金额').map(fen)));
    assert.equal(fen(s['申请退款总金额']), sum(col('申请退款金额').map(fen)));
  }
}

interface AlipayBill { names: string[]; comments: string[]; header: string[]; rows: Array<Record<string, string>>; trailer: string[]; summary: string[] }

/** Unzips and parses an Alipay bill: GBK names and contents, # comments, raw (unstripped) fields. */
function parseAlipay(zip: Buffer): AlipayBill {
  const entries = readZip(zip);
  assert.equal(entries.length, 2);
  for (const e of entries) assert.equal(e.utf8Name, false, 'GBK entry names, no UTF-8 flag');
  const names = entries.map((e) => iconv.decode(e.name, 'gbk'));
  const detail = iconv.decode(entries[0].data, 'gbk');
  assert.ok(detail.endsWith('\r\n'));
  const lines = detail.slice(0, -2).split('\r\n');
  const headerAt = lines.findIndex((l) => !l.startsWith('#'));
  const header = lines[headerAt].split(',');
  const endAt = lines.findIndex((l, i) => i > headerAt && l.startsWith('#'));
  const rows = lines.slice(headerAt + 1, endAt).map((line) => {
    const fields = line.split(',');
    assert.equal(fields.length, header.length, `row has ${header.length} fields: ${line}`);
    return Object.fromEntries(header.map((h, i) => [h, fields[i]]));
  });
  return {
    names, comments: lines.slice(0, headerAt), header, rows, trailer: lines.slice(endAt),
    summary: iconv.decode(entries[1].data, 'gbk').split('\r\n'),
  };
}

/** Checks the 交易合计 / 退款合计 lines against the rows. */
function checkAlipayTotals(bill: AlipayBill): void {
  const pays = bill.rows.filter((r) => r['业务类型'] === '交易');
  const refunds = bill.rows.filter((r) => r['业务类型'] === '退款');
  assert.equal(pays.length + refunds.length, bill.rows.length, 'every row is 交易 or 退款');
  const payLine = /^#交易合计：(\d+)笔，商家实收共(-?\d+\.\d{2})元，商家优惠共(-?\d+\.\d{2})元$/.exec(bill.trailer[1]);
  const refundLine = /^#退款合计：(\d+)笔，商家实收退款共(-?\d+\.\d{2})元，商家优惠退款共(-?\d+\.\d{2})元$/.exec(bill.trailer[2]);
  assert.ok(payLine, bill.trailer[1]);
  assert.ok(refundLine, bill.trailer[2]);
  assert.equal(Number(payLine[1]), pays.length);
  assert.equal(fen(payLine[2]), sum(pays.map((r) => fen(r['商家实收（元）']))));
  assert.equal(fen(payLine[3]), sum(pays.map((r) => fen(r['商家优惠（元）']))));
  assert.equal(Number(refundLine[1]), refunds.length);
  assert.equal(fen(refundLine[2]), sum(refunds.map((r) => fen(r['商家实收（元）']))));
  assert.equal(fen(refundLine[3]), sum(refunds.map((r) => fen(r['商家优惠（元）']))));
}

const strip = (id: string) => {
  assert.ok(id.endsWith('\t'), `an id field ends with a tab: ${JSON.stringify(id)}`);
  return id.slice(0, -1);
};

// --- a fixed day ----------------------------------------------------------------------

const D = '2026-11-21';
const at = (day: string, hms: string) => new Date(`${day}T${hms}+08:00`);
const pay = (n: number, amountFen: bigint, wayCode: string, successAt: Date, extra: Partial<StatementPayment> = {}): StatementPayment => ({
  outTradeNo: `P20261121000${n}`, tradeNo: `4200000000202611210000${n}`, amountFen, wayCode, subject: '2026年11月物业费', payer: `oUser${n}abcdef`,
  successAt, createdAt: new Date(successAt.getTime() - 60_000), ...extra,
});
const p1 = pay(1, 10000n, 'WX_NATIVE', at(D, '09:15:00'));
const p2 = pay(2, 250n, 'WX_JSAPI', at(D, '12:00:00'), { subject: '物业费,停车费' });
const p3 = pay(3, 1n, 'WX_BAR', at(D, '23:59:59'), { payer: null });
const p4 = pay(4, 800n, 'WX_NATIVE', at('2026-11-20', '23:59:59')); // the day before
const p5 = pay(5, 900n, 'WX_NATIVE', at('2026-11-22', '00:00:00')); // the day after
const r1: StatementRefund = {
  outRefundNo: 'R202611210001', refundNo: '50300000002026112100001', outTradeNo: p1.outTradeNo, tradeNo: p1.tradeNo, amountFen: 3000n,
  subject: p1.subject, requestedAt: at(D, '10:00:00'), successAt: at(D, '10:00:05'),
};
// requested on the day before, succeeded just after midnight: in D's bill
const r2: StatementRefund = {
  outRefundNo: 'R202611200002', refundNo: '50300000002026112000002', outTradeNo: p4.outTradeNo, tradeNo: p4.tradeNo, amountFen: 500n,
  subject: p4.subject, requestedAt: at('2026-11-20', '23:59:50'), successAt: at(D, '00:00:10'),
};
// succeeded on the day after: not in D's bill
const r3: StatementRefund = { ...r1, outRefundNo: 'R202611220003', refundNo: '50300000002026112200003', amountFen: 100n, requestedAt: at('2026-11-22', '00:00:00'), successAt: at('2026-11-22', '00:00:01') };
const fixture: StatementInput = { billDate: D, feeRate: '0.006', payments: [p5, p3, p1, p4, p2], refunds: [r3, r1, r2] };

test('WeChat ALL bill: header, backticked rows, payments then refunds, fees, rate, summary', () => {
  const text = wechatBill(fixture, 'ALL');
  assert.equal(text.split('\r\n')[0], WECHAT_ALL_HEADER);
  const bill = parseWechat(text);
  assert.equal(bill.summaryHeader.join(','), WECHAT_SUMMARY_HEADER);
  assert.deepEqual(bill.rows.map((r) => r['商户订单号']), [p1, p2, p3, r2, r1].map((x) => x.outTradeNo), 'payments by time, then refunds by time');
  assert.deepEqual(bill.rows.map((r) => r['交易状态']), ['SUCCESS', 'SUCCESS', 'SUCCESS', 'REFUND', 'REFUND']);

  for (const [row, p] of [[bill.rows[0], p1], [bill.rows[1], p2], [bill.rows[2], p3]] as const) {
    assert.equal(row['交易时间'], p === p1 ? '2026-11-21 09:15:00' : p === p2 ? '2026-11-21 12:00:00' : '2026-11-21 23:59:59');
    assert.equal(row['公众账号ID'], WECHAT_APP_ID);
    assert.equal(row['商户号'], WECHAT_MCH_ID);
    assert.equal(row['特约商户号'], '0');
    assert.equal(row['微信订单号'], p.tradeNo);
    assert.equal(row['用户标识'], p.payer ?? '');
    assert.equal(row['货币种类'], 'CNY');
    assert.equal(fen(row['应结订单金额']), p.amountFen);
    assert.equal(fen(row['订单金额']), p.amountFen);
    assert.equal(row['微信退款单号'], '0');
    assert.equal(row['商户退款单号'], '0');
    assert.equal(fen(row['退款金额']), 0n);
    assert.equal(fen(row['申请退款金额']), 0n);
    assert.equal(feeFen(row['手续费']), fee6(p.amountFen));
    assert.equal(row['费率'], '0.60%');
  }
  assert.deepEqual(bill.rows.slice(0, 3).map((r) => r['交易类型']), ['NATIVE', 'JSAPI', 'MICROPAY']);
  assert.deepEqual(bill.rows.slice(0, 3).map((r) => r['手续费']), ['0.60000', '0.02000', '0.00000'], '250 × 0.6% = 1.5 fen rounds half up to 2');
  assert.equal(bill.rows[1]['商品名称'], '物业费 停车费', 'a comma in the subject cannot split the field');

  for (const [row, r] of [[bill.rows[3], r2], [bill.rows[4], r1]] as const) {
    assert.equal(row['微信订单号'], r.tradeNo);
    assert.equal(row['微信退款单号'], r.refundNo);
    assert.equal(row['商户退款单号'], r.outRefundNo);
    assert.equal(fen(row['退款金额']), r.amountFen);
    assert.equal(fen(row['申请退款金额']), r.amountFen);
    assert.equal(fen(row['应结订单金额']), 0n);
    assert.equal(fen(row['订单金额']), 0n);
    assert.equal(row['退款状态'], 'SUCCESS');
    assert.equal(feeFen(row['手续费']), -fee6(r.amountFen), 'the fee is negative on refund rows');
    assert.ok(row['手续费'].startsWith('-'));
    assert.equal(row['费率'], '0.60%');
  }
  assert.equal(bill.rows[3]['交易时间'], '2026-11-20 23:59:50', 'a refund row carries its request time');
  assert.equal(bill.rows[4]['交易时间'], '2026-11-21 10:00:00');

  checkWechatSummary(bill);
  assert.deepEqual(bill.summary, {
    总交易单数: '5', 应结订单总金额: '102.51', 退款总金额: '35.00', 充值券退款总金额: '0.00', 手续费总金额: '0.41000', 订单总金额: '102.51', 申请退款总金额: '35.00',
  });
  // an empty last field (费率备注) leaves the row ending in ",`"
  assert.ok(text.split('\r\n')[1].endsWith(',`'));
});

test('WeChat SUCCESS and REFUND bills have the documented columns', () => {
  const all = parseWechat(wechatBill(fixture, 'ALL'));
  const success = parseWechat(wechatBill(fixture, 'SUCCESS'));
  const headerAll = WECHAT_ALL_HEADER.split(',');
  assert.deepEqual(success.header, headerAll.filter((h) => !WECHAT_REFUND_COLS.includes(h)));
  assert.equal(success.header.length, headerAll.length - 6);
  assert.equal(success.summaryHeader.join(','), WECHAT_SUCCESS_SUMMARY_HEADER);
  assert.deepEqual(success.rows.map((r) => r['商户订单号']), [p1, p2, p3].map((p) => p.outTradeNo));
  assert.ok(success.rows.every((r) => r['交易状态'] === 'SUCCESS'));
  for (const [i, row] of success.rows.entries()) {
    for (const h of success.header) assert.equal(row[h], all.rows[i][h], `SUCCESS ${h} equals ALL`);
  }
  checkWechatSummary(success);
  assert.deepEqual(success.summary, { 总交易单数: '3', 应结订单总金额: '102.51', 手续费总金额: '0.62000', 订单总金额: '102.51' });

  const refund = parseWechat(wechatBill(fixture, 'REFUND'));
  const after = headerAll.indexOf('代金券金额') + 1;
  assert.deepEqual(refund.header, [...headerAll.slice(0, after), '退款申请时间', '退款成功时间', ...headerAll.slice(after)]);
  assert.equal(refund.summaryHeader.join(','), WECHAT_SUMMARY_HEADER);
  assert.deepEqual(refund.rows.map((r) => r['商户退款单号']), [r2.outRefundNo, r1.outRefundNo]);
  assert.deepEqual(refund.rows.map((r) => [r['退款申请时间'], r['退款成功时间']]), [
    ['2026-11-20 23:59:50', '2026-11-21 00:00:10'], ['2026-11-21 10:00:00', '2026-11-21 10:00:05'],
  ]);
  for (const [i, row] of refund.rows.entries()) {
    for (const h of headerAll) assert.equal(row[h], all.rows[3 + i][h], `REFUND ${h} equals ALL`);
  }
  checkWechatSummary(refund);
  assert.deepEqual(refund.summary, { 总交易单数: '2', 应结订单总金额: '0.00', 退款总金额: '35.00', 充值券退款总金额: '0.00', 手续费总金额: '-0.21000', 订单总金额: '0.00', 申请退款总金额: '35.00' });
});

test('day boundaries are Beijing time: 23:59:59 CST is in the day, 00:00:00 the next day is not', () => {
  const edge = (hms: string, day: string) => pay(9, 100n, 'WX_NATIVE', at(day, hms), { outTradeNo: `EDGE-${day}-${hms.replaceAll(':', '')}` });
  const input: StatementInput = {
    billDate: D, feeRate: '0.006',
    payments: [edge('00:00:00', D), edge('23:59:59', D), edge('00:00:00', '2026-11-22'), edge('23:59:59', '2026-11-20')],
    refunds: [],
  };
  const ids = parseWechat(wechatBill(input)).rows.map((r) => r['商户订单号']);
  assert.deepEqual(ids, ['EDGE-2026-11-21-000000', 'EDGE-2026-11-21-235959']);
  // 23:59:59 CST on D is 15:59:59 UTC on D: a UTC-day implementation would agree here but
  // disagree at 08:00 CST, which is 00:00 UTC of the same day and 23:59:59 UTC of the day before
  const morning = { ...input, payments: [edge('07:59:59', D), edge('08:00:00', D)] };
  assert.equal(parseWechat(wechatBill(morning)).rows.length, 2);
  const alipayIds = parseAlipay(alipayBill(input, at('2026-11-22', '05:46:49'))).rows.map((r) => strip(r['商户订单号']));
  assert.deepEqual(alipayIds, ids);
  const next = parseWechat(wechatBill({ ...input, billDate: '2026-11-22' })).rows.map((r) => r['商户订单号']);
  assert.deepEqual(next, ['EDGE-2026-11-22-000000']);
});

test('Alipay bill: GBK zip of 业务明细 and 业务明细(汇总), comments, full-width headers, tabbed ids, refunds', () => {
  const zip = alipayBill(fixture, at('2026-11-22', '05:46:49'));
  const bill = parseAlipay(zip);
  assert.deepEqual(bill.names, [`${ALIPAY_ACCOUNT}_20261121_业务明细.csv`, `${ALIPAY_ACCOUNT}_20261121_业务明细(汇总).csv`]);
  assert.ok(bill.names[0].endsWith('_业务明细.csv') && bill.names[1].endsWith('_业务明细(汇总).csv'));
  // the names really are GBK bytes, not UTF-8
  const raw = readZip(zip);
  assert.deepEqual(raw[0].name, iconv.encode(bill.names[0], 'gbk'));
  assert.notDeepEqual(raw[0].name, Buffer.from(bill.names[0], 'utf8'));
  assert.ok(!raw[0].data.includes(Buffer.from('业务明细', 'utf8')), 'the content is GBK, not UTF-8');

  assert.deepEqual(bill.comments, [
    '#支付宝业务明细查询',
    `#账号：[${ALIPAY_ACCOUNT}]`,
    '#起始日期：[2026年11月21日 00:00:00]   终止日期：[2026年11月22日 00:00:00]',
    '#-----------------------------------------业务明细列表----------------------------------------',
  ]);
  assert.equal(bill.header.join(','), ALIPAY_DETAIL_HEADER);
  assert.ok(bill.header.filter((h) => h.includes('元')).every((h) => h.endsWith('（元）')), 'full-width parentheses');
  assert.equal(bill.trailer[0], '#-----------------------------------------业务明细列表结束------------------------------------');
  assert.equal(bill.trailer[3], '#导出时间：[2026年11月22日 05:46:49]');
  assert.equal(bill.trailer.length, 4);

  assert.deepEqual(bill.rows.map((r) => r['业务类型']), ['交易', '交易', '交易', '退款', '退款']);
  const pays = bill.rows.slice(0, 3);
  for (const [row, p] of [[pays[0], p1], [pays[1], p2], [pays[2], p3]] as const) {
    assert.equal(strip(row['支付宝交易号']), p.tradeNo);
    assert.equal(strip(row['商户订单号']), p.outTradeNo);
    assert.equal(row['退款批次号/请求号'], '');
    assert.equal(fen(row['订单金额（元）']), p.amountFen);
    assert.equal(fen(row['商家实收（元）']), p.amountFen);
    assert.equal(fen(row['服务费（元）']), -fee6(p.amountFen));
    assert.equal(row['完成时间'].slice(0, 10), D);
  }
  assert.equal(pays[0]['服务费（元）'], '-0.60', '服务费 is negative on payments');
  assert.equal(pays[0]['对方账户'], 'oUs***', 'the payer is masked');
  assert.equal(pays[1]['商品名称'], '物业费 停车费', 'a comma in the subject cannot shift the columns');
  const refunds = bill.rows.slice(3);
  for (const [row, r] of [[refunds[0], r2], [refunds[1], r1]] as const) {
    assert.equal(strip(row['支付宝交易号']), r.tradeNo, 'a refund repeats the original trade number');
    assert.equal(strip(row['商户订单号']), r.outTradeNo);
    assert.equal(strip(row['退款批次号/请求号']), r.outRefundNo, 'our refund number');
    assert.equal(fen(row['订单金额（元）']), -r.amountFen);
    assert.equal(fen(row['商家实收（元）']), -r.amountFen);
    assert.ok(row['订单金额（元）'].startsWith('-'));
  }
  for (const row of bill.rows) {
    for (const h of bill.header) {
      if (ALIPAY_ID_COLS.includes(h) && row[h] !== '') assert.ok(row[h].endsWith('\t'), `${h} ends with a tab`);
      else assert.ok(!row[h].includes('\t'), `${h} has no tab`);
    }
  }
  checkAlipayTotals(bill);
  assert.equal(bill.trailer[1], '#交易合计：3笔，商家实收共102.51元，商家优惠共0.00元');
  assert.equal(bill.trailer[2], '#退款合计：2笔，商家实收退款共-35.00元，商家优惠退款共0.00元');

  // the summary file
  assert.equal(bill.summary[bill.summary.length - 1], '');
  const headerAt = bill.summary.indexOf(ALIPAY_SUMMARY_HEADER);
  assert.ok(headerAt > 0, 'the summary header');
  const total = bill.summary.slice(headerAt + 1).map((l) => l.split(',')).find((f) => f[1] === '合计');
  assert.ok(total, 'a 合计 row');
  const s = Object.fromEntries(ALIPAY_SUMMARY_HEADER.split(',').map((h, i) => [h, total[i]]));
  assert.equal(s['交易订单总笔数'], '3');
  assert.equal(s['退款订单总笔数'], '2');
  assert.equal(fen(s['订单金额（元）']), sum(bill.rows.map((r) => fen(r['订单金额（元）']))));
  assert.equal(fen(s['商家实收（元）']), sum(bill.rows.map((r) => fen(r['商家实收（元）']))));
  assert.equal(fen(s['服务费（元）']), sum(bill.rows.map((r) => fen(r['服务费（元）']))));
  assert.equal(fen(s['实收净额（元）']), fen(s['商家实收（元）']) + fen(s['服务费（元）']));
  assert.equal(s['实收净额（元）'], '67.10');
});

// --- properties -------------------------------------------------------------------------

const DAY_START = at(D, '00:00:00').getTime();
const DAY_MS = 86_400_000;
/** Times mostly inside D, some on the day before or after. */
const timeArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: DAY_MS - 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: -DAY_MS, max: 2 * DAY_MS - 1 }) },
).map((ms) => new Date(DAY_START + ms));
const amountArb = fc.oneof(fc.bigInt({ min: 1n, max: 1000n }), fc.bigInt({ min: 1n, max: 10n ** 12n }));
const paymentArb = fc.record({ n: fc.nat(), amountFen: amountArb, successAt: timeArb, wayCode: fc.constantFrom('WX_NATIVE', 'WX_JSAPI', 'WX_BAR', 'ALI_QR') })
  .map(({ n, amountFen, successAt, wayCode }) => pay(n, amountFen, wayCode, successAt, { outTradeNo: `P${n}`, tradeNo: `T${n}` }));
const refundArb = fc.record({ n: fc.nat(), amountFen: amountArb, successAt: timeArb, delayMs: fc.integer({ min: 0, max: 3_600_000 }) })
  .map(({ n, amountFen, successAt, delayMs }): StatementRefund => ({
    outRefundNo: `R${n}`, refundNo: `C${n}`, outTradeNo: `P${n}`, tradeNo: `T${n}`, amountFen, subject: '退款',
    requestedAt: new Date(successAt.getTime() - delayMs), successAt,
  }));
const inputArb = fc.record({
  payments: fc.array(paymentArb, { maxLength: 25 }),
  refunds: fc.array(refundArb, { maxLength: 15 }),
  feeRate: fc.constantFrom('0.006', '0.0038', '0', '0.01', '0.0025'),
}).map((x): StatementInput => ({ billDate: D, ...x }));

test('property: WeChat and Alipay totals equal the detail sums and the input', () => {
  fc.assert(fc.property(inputArb, (input) => {
    const inDay = <T extends { successAt: Date }>(xs: T[]) => xs.filter((x) => x.successAt.getTime() >= DAY_START && x.successAt.getTime() < DAY_START + DAY_MS);
    const pays = inDay(input.payments);
    const refunds = inDay(input.refunds);
    const all = parseWechat(wechatBill(input, 'ALL'));
    checkWechatSummary(all);
    assert.equal(all.rows.length, pays.length + refunds.length);
    const kinds = all.rows.map((r) => r['交易状态']);
    assert.deepEqual(kinds, [...pays.map(() => 'SUCCESS'), ...refunds.map(() => 'REFUND')], 'payments, then refunds');
    assert.equal(fen(all.summary['应结订单总金额']), sum(pays.map((p) => p.amountFen)));
    assert.equal(fen(all.summary['退款总金额']), sum(refunds.map((r) => r.amountFen)));
    for (const row of all.rows) {
      const amount = row['交易状态'] === 'SUCCESS' ? fen(row['订单金额']) : -fen(row['退款金额']);
      const expected = amount * BigInt(input.feeRate.replace('.', '')) ;
      const scale = 10n ** BigInt(input.feeRate.split('.')[1]?.length ?? 0);
      const abs = expected < 0n ? -expected : expected;
      const rounded = (abs * 2n + scale) / (2n * scale);
      assert.equal(feeFen(row['手续费']), expected < 0n ? -rounded : rounded);
      assert.match(row['费率'], /^\d+\.\d{2}%$/);
    }
    const success = parseWechat(wechatBill(input, 'SUCCESS'));
    checkWechatSummary(success);
    assert.equal(success.rows.length, pays.length);
    const refundBill = parseWechat(wechatBill(input, 'REFUND'));
    checkWechatSummary(refundBill);
    assert.equal(refundBill.rows.length, refunds.length);
    assert.equal(units(all.summary['手续费总金额'], 5), units(success.summary['手续费总金额'], 5) + units(refundBill.summary['手续费总金额'], 5));

    const alipay = parseAlipay(alipayBill(input, new Date(DAY_START + DAY_MS + 3600_000)));
    checkAlipayTotals(alipay);
    assert.equal(alipay.rows.length, pays.length + refunds.length);
    assert.equal(sum(alipay.rows.map((r) => fen(r['商家实收（元）']))), sum(pays.map((p) => p.amountFen)) - sum(refunds.map((r) => r.amountFen)));
    assert.equal(sum(alipay.rows.map((r) => fen(r['服务费（元）']))), -units(all.summary['手续费总金额'], 5) / 1000n, 'the same fees in both formats');
  }), { numRuns: 150 });
});

const bytesArb = fc.uint8Array({ maxLength: 4000 }).map((a) => Buffer.from(a));
const compressibleArb = fc.tuple(fc.string({ maxLength: 20 }), fc.nat({ max: 400 })).map(([s, n]) => Buffer.from(s.repeat(n), 'utf8'));
const entryArb = fc.record({
  name: fc.uint8Array({ minLength: 1, maxLength: 60 }).map((a) => Buffer.from(a)),
  utf8Name: fc.boolean(),
  data: fc.oneof(bytesArb, compressibleArb),
});

test('property: readZip round-trips writeZip exactly', () => {
  fc.assert(fc.property(fc.array(entryArb, { maxLength: 20 }), (entries: ZipEntry[]) => {
    const read = readZip(writeZip(entries, at(D, '12:00:00')));
    assert.deepEqual(read.map((e) => ({ name: e.name, utf8Name: e.utf8Name, data: e.data })), entries.map((e) => ({ name: e.name, utf8Name: e.utf8Name ?? false, data: e.data })));
  }), { numRuns: 200 });
});

const CODES = ['ZIP_TRUNCATED', 'ZIP_CORRUPT', 'ZIP_CRC_MISMATCH', 'ZIP_UNSUPPORTED', 'ZIP_TOO_LARGE'];

test('property: any single-byte change either reads the same names and data or throws a ZipError', () => {
  const entries = [
    { name: Buffer.from('a.csv'), data: Buffer.from('交易时间,金额\r\n'.repeat(30)) },
    { name: iconv.encode('业务明细.csv', 'gbk'), data: Buffer.from('x') },
    { name: Buffer.from('empty'), data: Buffer.alloc(0) },
  ];
  const zip = writeZip(entries);
  fc.assert(fc.property(fc.nat({ max: zip.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
    const bad = Buffer.from(zip);
    bad[i] ^= x;
    let read;
    try {
      read = readZip(bad);
    } catch (error) {
      assert.ok(error instanceof ZipError, `a ZipError, not ${(error as Error).stack}`);
      assert.ok(CODES.includes(error.code), error.code);
      return;
    }
    assert.deepEqual(read.map((e) => [e.name, e.data]), entries.map((e) => [e.name, e.data]), `byte ${i} ^ ${x} changed the content silently`);
  }), { numRuns: 2000 });
});

// --- readZip errors ---------------------------------------------------------------------

const zipCode = (fn: () => unknown, code: string) => assert.throws(fn, (e: unknown) => {
  assert.ok(e instanceof ZipError, String(e));
  assert.equal(e.code, code, e.message);
  return true;
});

test('readZip: truncation, corruption, CRC mismatch, limits, unsupported features', () => {
  const entries = [
    { name: Buffer.from('one.txt'), data: Buffer.from('hello, world\n'.repeat(100)) },
    { name: Buffer.from('two.bin'), data: Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 251)) },
  ];
  const zip = writeZip(entries);
  const total = entries[0].data.length + entries[1].data.length;
  assert.equal(readZip(zip).length, 2);

  // every strict prefix is truncated; so is an empty buffer
  for (let n = 0; n < zip.length; n += 1) zipCode(() => readZip(zip.subarray(0, n)), 'ZIP_TRUNCATED');
  zipCode(() => readZip(Buffer.from('not a zip at all, just some text that is long enough')), 'ZIP_CORRUPT');

  // a flipped byte in stored deflate data (incompressible data is emitted as stored blocks)
  const noise = Buffer.concat(Array.from({ length: 64 }, (_, i) => createHash('sha256').update(`noise ${i}`).digest()));
  const noisy = writeZip([{ name: Buffer.from('noise'), data: noise }]);
  const compressedSize = noisy.readUInt32LE(18);
  assert.ok(compressedSize > noise.length, 'stored deflate blocks');
  const dataStart = 30 + 'noise'.length;
  const flipped = Buffer.from(noisy);
  flipped[dataStart + 1000] ^= 0x01; // well inside the 2048 literal bytes
  zipCode(() => readZip(flipped), 'ZIP_CRC_MISMATCH');
  // a flipped byte in the central directory's CRC
  const cdOffset = zip.readUInt32LE(zip.length - 22 + 16);
  const badCrc = Buffer.from(zip);
  badCrc[cdOffset + 16] ^= 0x80;
  zipCode(() => readZip(badCrc), 'ZIP_CRC_MISMATCH');
  // a central directory signature destroyed
  const badSig = Buffer.from(zip);
  badSig[cdOffset] ^= 0xff;
  zipCode(() => readZip(badSig), 'ZIP_CORRUPT');
  // a local header that disagrees with the central directory (name, method)
  const otherName = Buffer.from(zip);
  otherName[30] ^= 0x20; // 'one.txt' → 'One.txt' in the local header only
  zipCode(() => readZip(otherName), 'ZIP_CORRUPT');
  const otherMethod = Buffer.from(zip);
  otherMethod.writeUInt16LE(0, 8);
  zipCode(() => readZip(otherMethod), 'ZIP_CORRUPT');
  // garbage inside the deflate stream of the compressible entry
  const garbage = Buffer.from(zip);
  garbage.fill(0xff, 30 + 7, 30 + 7 + 8);
  assert.throws(() => readZip(garbage), (e: unknown) => e instanceof ZipError && (e.code === 'ZIP_CORRUPT' || e.code === 'ZIP_CRC_MISMATCH'));

  // limits
  zipCode(() => readZip(zip, { entriesMax: 1 }), 'ZIP_TOO_LARGE');
  assert.equal(readZip(zip, { entriesMax: 2 }).length, 2);
  zipCode(() => readZip(zip, { uncompressedBytesMax: total - 1 }), 'ZIP_TOO_LARGE');
  assert.equal(readZip(zip, { uncompressedBytesMax: total }).length, 2);
  // a bomb: 64 MiB of zeros compress to ~64 KiB; refused from the directory, before inflating
  const bomb = writeZip([{ name: Buffer.from('zeros'), data: Buffer.alloc(64 * 1024 * 1024) }]);
  assert.ok(bomb.length < 100 * 1024);
  zipCode(() => readZip(bomb, { uncompressedBytesMax: 1024 * 1024 }), 'ZIP_TOO_LARGE');
  // a bomb that lies about its size: inflation stops at the declared size
  const liar = Buffer.from(bomb);
  liar.writeUInt32LE(1000, 22); // local uncompressed size
  liar.writeUInt32LE(1000, liar.readUInt32LE(liar.length - 22 + 16) + 24); // central uncompressed size
  zipCode(() => readZip(liar, { uncompressedBytesMax: 1024 * 1024 }), 'ZIP_CORRUPT');
  // the default limits are 1000 entries
  const many = writeZip(Array.from({ length: 1000 }, (_, i) => ({ name: Buffer.from(`f${i}`), data: Buffer.from([i & 0xff]) })));
  assert.equal(readZip(many).length, 1000);
  const tooMany = Buffer.from(many);
  tooMany.writeUInt16LE(1001, tooMany.length - 22 + 8);
  tooMany.writeUInt16LE(1001, tooMany.length - 22 + 10);
  zipCode(() => readZip(tooMany), 'ZIP_TOO_LARGE');

  // unsupported: another compression method, encryption, zip64 markers
  const bzip = Buffer.from(zip);
  bzip.writeUInt16LE(12, cdOffset + 10);
  zipCode(() => readZip(bzip), 'ZIP_UNSUPPORTED');
  const encrypted = Buffer.from(zip);
  encrypted.writeUInt16LE(1, cdOffset + 8);
  zipCode(() => readZip(encrypted), 'ZIP_UNSUPPORTED');
  const zip64 = Buffer.from(zip);
  zip64.writeUInt32LE(0xffffffff, zip64.length - 22 + 16);
  zipCode(() => readZip(zip64), 'ZIP_UNSUPPORTED');
});

test('readZip reads a foreign archive: stored and deflate entries, UTF-8 flag, a directory, a comment', () => {
  // written by Python's zipfile; the comment itself contains an end-record signature
  const zip = Buffer.from('UEsDBBQAAAAAAABgdV1jqxWPDgAAAA4AAAAKAAAAc3RvcmVkLnR4dGhlbGxvLCBzdG9yZWQKUEsDBBQAAAgIAABgdV2RPh/2HwAAAKQBAAANAAAA5a+56LSm5Y2VLmNzdnuya8mzGZOfTd/2cvoWnZftE18umsvL9WRUcDAJAgBQSwMEFAAAAAAAAGB1XQAAAAAAAAAAAAAAAAYAAABlbXB0eS9QSwECFAMUAAAAAAAAYHVdY6sVjw4AAAAOAAAACgAAAAAAAAAAAAAAgAEAAAAAc3RvcmVkLnR4dFBLAQIUAxQAAAgIAABgdV2RPh/2HwAAAKQBAAANAAAAAAAAAAAAAACAATYAAADlr7notKbljZUuY3N2UEsBAhQDFAAAAAAAAGB1XQAAAAAAAAAAAAAAAAYAAAAAAAAAAAAAAIABgAAAAGVtcHR5L1BLBQYAAAAAAwADAKcAAACkAAAAIgBQSwUGIGZha2Ugc2lnbmF0dXJlIGluIHRoZSBjb21tZW50', 'base64');
  const entries = readZip(zip);
  assert.deepEqual(entries.map((e) => [e.name.toString('utf8'), e.utf8Name, e.data.toString('utf8')]), [
    ['stored.txt', false, 'hello, stored\n'],
    ['对账单.csv', true, '交易时间,金额\r\n'.repeat(20)],
    ['empty/', false, ''],
  ]);
  // a flipped byte in the stored entry's data is a CRC mismatch
  const bad = Buffer.from(zip);
  bad[30 + 'stored.txt'.length + 3] ^= 0x20;
  zipCode(() => readZip(bad), 'ZIP_CRC_MISMATCH');
});

// --- the running sandbox ----------------------------------------------------------------

test('sandbox over HTTP: statements list exactly the day\'s payments and refunds; today is refused; unsigned is 401', async () => {
  let clock = at(D, '10:00:00');
  const stack = await startStack({ sandboxNow: () => clock });
  try {
    const m = await merchant(stack);
    const adapter = createSandboxAdapter({ baseUrl: stack.sandboxUrl, key: SANDBOX_KEY });
    const paid = async (mchOrderNo: string, amount: number, wayCode: string) => {
      const created = await m.call('/api/pay/unifiedOrder', order(mchOrderNo, { amount, wayCode }));
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const payOrderId = String(created.body.data?.payOrderId);
      await stack.sandbox.pay(payOrderId, `oPayer${mchOrderNo}`);
      const data = await waitFor(`${mchOrderNo} paid`, async () => {
        const q = await m.call('/api/pay/query', { payOrderId });
        return q.body.data?.state === 2 ? q.body.data : null;
      });
      return { payOrderId, amount: BigInt(amount), tradeNo: String(data.channelOrderNo) };
    };

    const o1 = await paid('stmt-1', 12345, 'WX_NATIVE');
    clock = at(D, '11:30:00');
    const o2 = await paid('stmt-2', 250, 'ALI_QR');
    clock = at(D, '15:00:00');
    const refunded = await m.call('/api/refund/refundOrder', { payOrderId: o1.payOrderId, mchRefundNo: 'stmt-1-r1', refundAmount: 3000, currency: 'cny', refundReason: '多缴退还' });
    assert.equal(refunded.status, 200, JSON.stringify(refunded.body));
    const refundOrderId = String(refunded.body.data?.refundOrderId);
    const refundData = await waitFor('refund settled', async () => {
      const q = await m.call('/api/refund/query', { refundOrderId });
      return q.body.data?.state === 2 ? q.body.data : null;
    });
    const r1 = { refundOrderId, amount: 3000n, channelRefundNo: String(refundData.channelOrderNo) };
    clock = at(D, '23:59:59');
    const o3 = await paid('stmt-3', 1, 'WX_NATIVE');
    clock = at('2026-11-22', '00:00:00');
    const o4 = await paid('stmt-4', 777, 'WX_NATIVE');

    // "today" (in Beijing) is D+1: D's bill is ready, D+1's is not
    clock = at('2026-11-22', '10:00:00');
    for (const format of ['wechat', 'alipay'] as const) {
      await assert.rejects(adapter.downloadStatement({ billDate: '2026-11-22', format }), (e: Error & { code?: string }) => e.code === 'STATEMENT_NOT_READY');
      await assert.rejects(adapter.downloadStatement({ billDate: '2026-12-01', format }), (e: Error & { code?: string }) => e.code === 'STATEMENT_NOT_READY');
    }
    await assert.rejects(adapter.downloadStatement({ billDate: '2026-02-30', format: 'wechat' }), (e: Error & { code?: string }) => e.code === 'STATEMENT_ERROR');

    const wechat = parseWechat((await adapter.downloadStatement({ billDate: D, format: 'wechat' })).toString('utf8'));
    checkWechatSummary(wechat);
    assert.deepEqual(wechat.rows.map((r) => [r['交易状态'], r['商户订单号'], r['微信订单号'], fen(r['订单金额']), r['商户退款单号'], r['微信退款单号'], fen(r['退款金额'])]), [
      ['SUCCESS', o1.payOrderId, o1.tradeNo, o1.amount, '0', '0', 0n],
      ['SUCCESS', o2.payOrderId, o2.tradeNo, o2.amount, '0', '0', 0n],
      ['SUCCESS', o3.payOrderId, o3.tradeNo, o3.amount, '0', '0', 0n],
      ['REFUND', o1.payOrderId, o1.tradeNo, 0n, r1.refundOrderId, r1.channelRefundNo, r1.amount],
    ]);
    assert.deepEqual(wechat.rows.map((r) => r['交易时间']), ['2026-11-21 10:00:00', '2026-11-21 11:30:00', '2026-11-21 23:59:59', '2026-11-21 15:00:00']);
    assert.deepEqual(wechat.rows.map((r) => feeFen(r['手续费'])), [74n, 2n, 0n, -18n]);
    assert.equal(wechat.summary['应结订单总金额'], '125.96');
    assert.equal(wechat.summary['退款总金额'], '30.00');
    const success = parseWechat((await adapter.downloadStatement({ billDate: D, format: 'wechat', billType: 'SUCCESS' })).toString('utf8'));
    assert.deepEqual(success.rows.map((r) => r['商户订单号']), [o1, o2, o3].map((o) => o.payOrderId));
    const refundBill = parseWechat((await adapter.downloadStatement({ billDate: D, format: 'wechat', billType: 'REFUND' })).toString('utf8'));
    assert.deepEqual(refundBill.rows.map((r) => [r['商户退款单号'], r['退款申请时间'], fen(r['退款金额'])]), [[r1.refundOrderId, '2026-11-21 15:00:00', 3000n]]);

    const alipay = parseAlipay(await adapter.downloadStatement({ billDate: D, format: 'alipay' }));
    checkAlipayTotals(alipay);
    assert.deepEqual(alipay.names, [`${ALIPAY_ACCOUNT}_20261121_业务明细.csv`, `${ALIPAY_ACCOUNT}_20261121_业务明细(汇总).csv`]);
    assert.deepEqual(alipay.rows.map((r) => [r['业务类型'], strip(r['支付宝交易号']), strip(r['商户订单号']), fen(r['商家实收（元）']), r['退款批次号/请求号'] === '' ? '' : strip(r['退款批次号/请求号'])]), [
      ['交易', o1.tradeNo, o1.payOrderId, o1.amount, ''],
      ['交易', o2.tradeNo, o2.payOrderId, o2.amount, ''],
      ['交易', o3.tradeNo, o3.payOrderId, o3.amount, ''],
      ['退款', o1.tradeNo, o1.payOrderId, -r1.amount, r1.refundOrderId],
    ]);
    assert.equal(alipay.trailer[3], '#导出时间：[2026年11月22日 10:00:00]');

    // the next day's bill, once that day is over, holds only the 00:00:00 payment
    clock = at('2026-11-23', '09:00:00');
    const next = parseWechat((await adapter.downloadStatement({ billDate: '2026-11-22', format: 'wechat' })).toString('utf8'));
    assert.deepEqual(next.rows.map((r) => [r['商户订单号'], fen(r['订单金额']), r['交易时间']]), [[o4.payOrderId, o4.amount, '2026-11-22 00:00:00']]);
    const empty = parseWechat((await adapter.downloadStatement({ billDate: '2026-11-19', format: 'wechat' })).toString('utf8'));
    assert.equal(empty.rows.length, 0);
    assert.equal(empty.summary['总交易单数'], '0');

    // unsigned, wrongly signed and stale requests are refused
    const url = `${stack.sandboxUrl}/v1/statements/wechat?bill_date=${D}`;
    assert.equal((await fetch(url)).status, 401);
    assert.equal((await fetch(url, { headers: { [SIGNATURE_HEADER]: signBody('another-key', '') } })).status, 401);
    assert.equal((await fetch(url, { headers: { [SIGNATURE_HEADER]: signBody(SANDBOX_KEY, '', Date.now() - 10 * 60_000) } })).status, 401);
    assert.equal((await fetch(url, { headers: { [SIGNATURE_HEADER]: signBody(SANDBOX_KEY, '') } })).status, 200);
    const wrongKey = createSandboxAdapter({ baseUrl: stack.sandboxUrl, key: 'another-key' });
    await assert.rejects(wrongKey.downloadStatement({ billDate: D, format: 'alipay' }), (e: Error & { code?: string }) => e.code === 'STATEMENT_ERROR');
  } finally {
    await stack.close();
  }
});
