// Daily statement files of the sandbox, in WeChat Pay's trade-bill text format,
// Alipay's zip-of-GBK-CSV format and UnionPay's zip of the fixed-width GBK ZM file
// (reference/channel-formats.md), built from what the sandbox actually processed that
// (Beijing) day.
import iconv from 'iconv-lite';
import { applyRate, fenToYuan } from '../../platform/money.ts';
import { cstDate, cstDateTime } from '../../platform/time.ts';
import { writeZip } from '../../platform/zip.ts';

export interface StatementPayment {
  outTradeNo: string;
  tradeNo: string;
  amountFen: bigint;
  wayCode: string;
  subject: string;
  payer: string | null;
  successAt: Date;
  createdAt: Date;
}

export interface StatementRefund {
  outRefundNo: string;
  refundNo: string;
  outTradeNo: string;
  tradeNo: string;
  amountFen: bigint;
  subject: string;
  requestedAt: Date;
  successAt: Date;
  /** The original payment's way and payer: refund rows repeat them. */
  wayCode?: string;
  payer?: string | null;
}

export interface StatementInput {
  billDate: string;
  feeRate: string; // decimal, e.g. "0.006"
  payments: StatementPayment[];
  refunds: StatementRefund[];
}

export const WECHAT_APP_ID = 'wxsandbox00000001';
export const WECHAT_MCH_ID = '1900000109';
export const ALIPAY_ACCOUNT = '20880211096256330156';

const WECHAT_ALL_HEADER = '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';
const WECHAT_SUMMARY_HEADER = '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额';

const WAY_TO_WECHAT_TYPE: Record<string, string> = {
  WX_JSAPI: 'JSAPI', WX_LITE: 'JSAPI', WX_NATIVE: 'NATIVE', WX_H5: 'MWEB', WX_APP: 'APP', WX_BAR: 'MICROPAY',
};

const tick = (fields: string[]) => fields.map((f) => '`' + f.replace(/[,\r\n`]/g, ' ')).join(',');

/** "0.006" → "0.60%": the rate in hundredths of a percent, rounded, as WeChat prints it. */
function percent(rate: string): string {
  const hundredths = applyRate(10_000n, rate);
  return `${hundredths / 100n}.${(hundredths % 100n).toString().padStart(2, '0')}%`;
}

function dayOf(input: StatementInput) {
  const payments = input.payments.filter((p) => cstDate(p.successAt) === input.billDate)
    .sort((a, b) => a.successAt.getTime() - b.successAt.getTime());
  const refunds = input.refunds.filter((r) => cstDate(r.successAt) === input.billDate)
    .sort((a, b) => a.successAt.getTime() - b.successAt.getTime());
  return { payments, refunds };
}

/** WeChat Pay trade bill (bill_type ALL, SUCCESS or REFUND), UTF-8 text. */
export function wechatBill(input: StatementInput, billType: 'ALL' | 'SUCCESS' | 'REFUND' = 'ALL'): string {
  const { payments, refunds } = dayOf(input);
  const lines: string[] = [];
  let count = 0;
  let settled = 0n;
  let refunded = 0n;
  let fees = 0n;
  let ordered = 0n;
  let requested = 0n;
  const rate = percent(input.feeRate);
  const headerAll = WECHAT_ALL_HEADER.split(',');
  const refundCols = ['微信退款单号', '商户退款单号', '退款金额', '充值券退款金额', '退款类型', '退款状态'];
  let header = headerAll;
  if (billType === 'SUCCESS') header = headerAll.filter((h) => !refundCols.includes(h));
  if (billType === 'REFUND') {
    const at = headerAll.indexOf('代金券金额') + 1;
    header = [...headerAll.slice(0, at), '退款申请时间', '退款成功时间', ...headerAll.slice(at)];
  }
  lines.push(header.join(','));
  const emit = (row: Record<string, string>) => lines.push(tick(header.map((h) => row[h] ?? '')));
  if (billType !== 'REFUND') {
    for (const p of payments) {
      const fee = applyRate(p.amountFen, input.feeRate);
      count += 1;
      settled += p.amountFen;
      fees += fee;
      ordered += p.amountFen;
      emit({
        交易时间: cstDateTime(p.successAt), 公众账号ID: WECHAT_APP_ID, 商户号: WECHAT_MCH_ID, 特约商户号: '0', 设备号: '',
        微信订单号: p.tradeNo, 商户订单号: p.outTradeNo, 用户标识: p.payer ?? '', 交易类型: WAY_TO_WECHAT_TYPE[p.wayCode] ?? 'NATIVE',
        交易状态: 'SUCCESS', 付款银行: 'OTHERS', 货币种类: 'CNY', 应结订单金额: fenToYuan(p.amountFen), 代金券金额: '0.00',
        微信退款单号: '0', 商户退款单号: '0', 退款金额: '0.00', 充值券退款金额: '0.00', 退款类型: '', 退款状态: '',
        商品名称: p.subject, 商户数据包: '', 手续费: fenToYuan(fee, 5), 费率: rate, 订单金额: fenToYuan(p.amountFen),
        申请退款金额: '0.00', 费率备注: '',
      });
    }
  }
  if (billType !== 'SUCCESS') {
    for (const r of refunds) {
      const fee = -applyRate(r.amountFen, input.feeRate);
      count += 1;
      refunded += r.amountFen;
      requested += r.amountFen;
      fees += fee;
      emit({
        交易时间: cstDateTime(r.requestedAt), 公众账号ID: WECHAT_APP_ID, 商户号: WECHAT_MCH_ID, 特约商户号: '0', 设备号: '',
        微信订单号: r.tradeNo, 商户订单号: r.outTradeNo, 用户标识: r.payer ?? '', 交易类型: WAY_TO_WECHAT_TYPE[r.wayCode ?? ''] ?? 'NATIVE', 交易状态: 'REFUND', 付款银行: 'OTHERS',
        货币种类: 'CNY', 应结订单金额: '0.00', 代金券金额: '0.00', 退款申请时间: cstDateTime(r.requestedAt),
        退款成功时间: cstDateTime(r.successAt), 微信退款单号: r.refundNo, 商户退款单号: r.outRefundNo,
        退款金额: fenToYuan(r.amountFen), 充值券退款金额: '0.00', 退款类型: 'ORIGINAL', 退款状态: 'SUCCESS', 商品名称: r.subject,
        商户数据包: '', 手续费: fenToYuan(fee, 5), 费率: rate, 订单金额: '0.00', 申请退款金额: fenToYuan(r.amountFen), 费率备注: '',
      });
    }
  }
  if (billType === 'SUCCESS') {
    lines.push('总交易单数,应结订单总金额,手续费总金额,订单总金额');
    lines.push(tick([String(count), fenToYuan(settled), fenToYuan(fees, 5), fenToYuan(ordered)]));
  } else {
    lines.push(WECHAT_SUMMARY_HEADER);
    lines.push(tick([String(count), fenToYuan(settled), fenToYuan(refunded), '0.00', fenToYuan(fees, 5), fenToYuan(ordered), fenToYuan(requested)]));
  }
  return lines.join('\r\n') + '\r\n';
}

const ALIPAY_DETAIL_HEADER = '支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注';
const ALIPAY_SUMMARY_HEADER = '门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）';

// A free-text field (商品名称, 对方账户) in a comma-separated row: a comma, quote or line
// break in it would shift every later column, so it becomes a space (like WeChat's tick).
const field = (text: string) => text.replace(/[,"\r\n]/g, ' ');

function cnDate(at: Date): string {
  const t = cstDateTime(at);
  return `${t.slice(0, 4)}年${t.slice(5, 7)}月${t.slice(8, 10)}日 ${t.slice(11)}`;
}

/** Alipay trade bill: a zip with the GBK detail CSV and the GBK summary CSV. */
export function alipayBill(input: StatementInput, exportedAt: Date = new Date()): Buffer {
  const { payments, refunds } = dayOf(input);
  const dayStart = new Date(Date.parse(`${input.billDate}T00:00:00+08:00`));
  const dayEnd = new Date(dayStart.getTime() + 86_400_000);
  const lines = [
    '#支付宝业务明细查询',
    `#账号：[${ALIPAY_ACCOUNT}]`,
    `#起始日期：[${cnDate(dayStart)}]   终止日期：[${cnDate(dayEnd)}]`,
    '#-----------------------------------------业务明细列表----------------------------------------',
    ALIPAY_DETAIL_HEADER,
  ];
  let payTotal = 0n;
  let payFee = 0n;
  let refundTotal = 0n;
  let refundFee = 0n;
  for (const p of payments) {
    const fee = applyRate(p.amountFen, input.feeRate);
    payTotal += p.amountFen;
    payFee += fee;
    lines.push([`${p.tradeNo}\t`, `${p.outTradeNo}\t`, '交易', field(p.subject), cstDateTime(p.createdAt), cstDateTime(p.successAt), '', '', '', '',
      p.payer ? field(`${p.payer.slice(0, 3)}***`) : '', fenToYuan(p.amountFen), fenToYuan(p.amountFen), '0.00', '0.00', '0.00', '0.00', '0.00', '',
      '0.00', '0.00', '', fenToYuan(-fee), '0.00', ''].join(','));
  }
  for (const r of refunds) {
    const fee = applyRate(r.amountFen, input.feeRate);
    refundTotal += r.amountFen;
    refundFee += fee;
    lines.push([`${r.tradeNo}\t`, `${r.outTradeNo}\t`, '退款', field(r.subject), cstDateTime(r.requestedAt), cstDateTime(r.successAt), '', '', '', '',
      '', fenToYuan(-r.amountFen), fenToYuan(-r.amountFen), '0.00', '0.00', '0.00', '0.00', '0.00', '', '0.00', '0.00', `${r.outRefundNo}\t`,
      fenToYuan(fee), '0.00', ''].join(','));
  }
  lines.push('#-----------------------------------------业务明细列表结束------------------------------------');
  lines.push(`#交易合计：${payments.length}笔，商家实收共${fenToYuan(payTotal)}元，商家优惠共0.00元`);
  lines.push(`#退款合计：${refunds.length}笔，商家实收退款共${fenToYuan(-refundTotal)}元，商家优惠退款共0.00元`);
  lines.push(`#导出时间：[${cnDate(exportedAt)}]`);
  const fees = refundFee - payFee;
  const net = payTotal - refundTotal + fees;
  const summary = [
    '#支付宝业务汇总查询',
    `#账号：[${ALIPAY_ACCOUNT}]`,
    ALIPAY_SUMMARY_HEADER,
    ['', '', String(payments.length), String(refunds.length), fenToYuan(payTotal - refundTotal), fenToYuan(payTotal - refundTotal), '0.00', '0.00', '0.00',
      fenToYuan(fees), '0.00', fenToYuan(net)].join(','),
    ['', '合计', String(payments.length), String(refunds.length), fenToYuan(payTotal - refundTotal), fenToYuan(payTotal - refundTotal), '0.00', '0.00', '0.00',
      fenToYuan(fees), '0.00', fenToYuan(net)].join(','),
    `#导出时间：[${cnDate(exportedAt)}]`,
  ];
  const compact = input.billDate.replaceAll('-', '');
  return writeZip([
    { name: iconv.encode(`${ALIPAY_ACCOUNT}_${compact}_业务明细.csv`, 'gbk'), data: iconv.encode(lines.join('\r\n') + '\r\n', 'gbk') },
    { name: iconv.encode(`${ALIPAY_ACCOUNT}_${compact}_业务明细(汇总).csv`, 'gbk'), data: iconv.encode(summary.join('\r\n') + '\r\n', 'gbk') },
  ], exportedAt);
}

// --- UnionPay ACP transaction file (ZM) ----------------------------------------------

export const UNIONPAY_MER_ID = '777290058110048';
const UNIONPAY_ACQ = '00049992900';

/** A field of a fixed-width line: GBK bytes, left-aligned, space-padded, cut at a character boundary. */
function gbkField(text: string, width: number): Buffer {
  let bytes = iconv.encode(text, 'gbk');
  for (let chars = text.length; bytes.length > width && chars > 0; chars -= 1) bytes = iconv.encode(text.slice(0, chars - 1), 'gbk');
  return Buffer.concat([bytes, Buffer.alloc(width - bytes.length, 0x20)]);
}

const digits = (n: bigint | number, width: number) => {
  const text = n.toString();
  if (text.length > width || text.startsWith('-')) throw new Error(`${text} does not fit ${width} digits`);
  return text.padStart(width, '0');
};
const signed = (fen: bigint) => (fen < 0n ? 'C' : 'D') + digits(fen < 0n ? -fen : fen, 12);
const mmddhhmmss = (at: Date) => cstDateTime(at).slice(5).replace(/[- :]/g, '');
const lastChars = (text: string, n: number) => text.slice(Math.max(0, text.length - n));

/**
 * UnionPay ACP transaction file for the day: a zip with INN<yymmdd>88ZM_<merId> (GBK,
 * fixed width in bytes, one space between fields; S22 purchases, S30 refunds) and an
 * empty ZME_ error file, as the channel's fileTransfer (txnType 76) delivers it.
 */
export function unionpayZm(input: StatementInput, merId: string = UNIONPAY_MER_ID, exportedAt: Date = new Date()): Buffer {
  const { payments, refunds } = dayOf(input);
  const originals = new Map(input.payments.map((p) => [p.outTradeNo, p]));
  const lines: Buffer[] = [];
  let trace = 0;
  const line = (fields: Array<[string, number]>) => {
    const parts: Buffer[] = [];
    fields.forEach(([text, width], i) => {
      if (i > 0) parts.push(Buffer.from(' '));
      parts.push(gbkField(text, width));
    });
    lines.push(Buffer.concat([...parts, Buffer.from('\r\n')]));
  };
  const row = (r: {
    code: 'S22' | 'S30'; at: Date; amountFen: bigint; queryId: string; orderId: string; feeFen: bigint; subject: string;
    origQueryId: string; origOrderId: string; origTrace: string; origAt: Date | null;
  }) => {
    trace += 1;
    const refund = r.code === 'S30';
    if (r.orderId.length > 32 || r.origOrderId.length > 32) throw new Error('UnionPay order ids have at most 32 characters');
    line([
      [r.code, 3], [UNIONPAY_ACQ, 11], [UNIONPAY_ACQ, 11], [digits(trace, 6), 6], [mmddhhmmss(r.at), 10], ['6216********0018', 19],
      [digits(r.amountFen, 12), 12], ['4900', 4], ['07', 2], [lastChars(r.queryId, 21), 21], ['00', 2], [r.orderId, 32], ['01', 2],
      [r.origTrace, 6], [r.origAt ? mmddhhmmss(r.origAt) : '', 10], [signed(refund ? -r.feeFen : r.feeFen), 13],
      [signed(refund ? r.amountFen : -r.amountFen), 13], ['', 4], ['', 15], [refund ? '04' : '01', 2], [refund ? '00' : '01', 2],
      ['000201', 6], ['01', 2], ['', 4], ['', 32], ['1', 1], [lastChars(r.origQueryId, 21), 21], [merId, 15], ['', 1], ['', 15],
      [r.subject, 32], ['C000000000000', 13], [signed(refund ? r.amountFen - r.feeFen : -(r.amountFen - r.feeFen)), 13], ['', 8],
      ['', 32], ['C000000000000', 13], ['C000000000000', 13], ['000000000000', 12], ['00', 2], ['0', 1], [r.origOrderId, 32], ['', 98],
    ]);
  };
  const traceOf = new Map<string, string>();
  for (const p of payments) {
    row({ code: 'S22', at: p.successAt, amountFen: p.amountFen, queryId: p.tradeNo, orderId: p.outTradeNo, feeFen: applyRate(p.amountFen, input.feeRate),
      subject: p.subject, origQueryId: '', origOrderId: '', origTrace: '', origAt: null });
    traceOf.set(p.outTradeNo, digits(trace, 6));
  }
  for (const r of refunds) {
    const original = originals.get(r.outTradeNo);
    row({ code: 'S30', at: r.successAt, amountFen: r.amountFen, queryId: r.refundNo, orderId: r.outRefundNo, feeFen: applyRate(r.amountFen, input.feeRate),
      subject: r.subject, origQueryId: r.tradeNo, origOrderId: r.outTradeNo, origTrace: traceOf.get(r.outTradeNo) ?? '000000', origAt: original?.successAt ?? null });
  }
  const yymmdd = input.billDate.replaceAll('-', '').slice(2);
  return writeZip([
    { name: Buffer.from(`INN${yymmdd}88ZM_${merId}`), data: Buffer.concat(lines) },
    { name: Buffer.from(`INN${yymmdd}88ZME_${merId}`), data: Buffer.alloc(0) },
  ], exportedAt);
}
