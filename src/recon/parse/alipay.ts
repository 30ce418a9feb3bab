// Alipay trade bills (业务明细): a zip of GBK CSV files. The detail file's rows are read
// by header name; ids lose their trailing tab; 业务类型 交易 is a payment and 退款 a
// refund (negative amounts, our refund number in 退款批次号/请求号); the 交易合计 and
// 退款合计 comment lines must agree with the rows or the whole file is rejected.
import iconv from 'iconv-lite';
import { readZip, ZipError } from '../../platform/zip.ts';
import { AmountInvalid, parseYuan } from './amount.ts';
import { BillRejected, checkControlChars, type BillTotals, type ChannelRecord } from './wechat.ts';

const REQUIRED = ['支付宝交易号', '商户订单号', '业务类型', '完成时间', '商家实收（元）', '服务费（元）'] as const;
const ENTRY_BYTES_MAX = 512 * 1024 * 1024;

export function parseAlipayBill(zip: Buffer, onRecord: (record: ChannelRecord) => void): BillTotals {
  let entries;
  try {
    entries = readZip(zip, { entriesMax: 16, uncompressedBytesMax: ENTRY_BYTES_MAX });
  } catch (error) {
    if (error instanceof ZipError) throw new BillRejected('BILL_TRUNCATED', `not a readable zip (${error.code}): ${error.message}`);
    throw error;
  }
  const names = entries.map((e) => (e.utf8Name ? e.name.toString('utf8') : iconv.decode(e.name, 'gbk')));
  const index = names.findIndex((n) => n.endsWith('业务明细.csv'));
  if (index < 0) throw new BillRejected('BILL_HEADER_INVALID', `no 业务明细.csv in the archive (found ${names.join(', ') || 'nothing'})`);
  const text = iconv.decode(entries[index].data, 'gbk');
  if (text.includes('\uFFFD')) throw new BillRejected('BILL_ROW_INVALID', 'the detail file is not valid GBK');
  checkControlChars(text);
  return parseDetail(text.split(/\r?\n/), onRecord);
}

function parseDetail(lines: string[], onRecord: (record: ChannelRecord) => void): BillTotals {
  let columns: Map<string, number> | null = null;
  const totals: BillTotals = { rows: 0, settledFen: 0n, refundedFen: 0n, feeE5: 0n };
  let payments = 0;
  let refunds = 0;
  let statedPay: { count: number; fen: bigint } | null = null;
  let statedRefund: { count: number; fen: bigint } | null = null;
  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const pay = /^#交易合计：(\d+)笔，商家实收共(-?[\d.]+)元/.exec(line);
      if (pay) statedPay = { count: Number(pay[1]), fen: parseYuan(pay[2]) };
      const refund = /^#退款合计：(\d+)笔，商家实收退款共(-?[\d.]+)元/.exec(line);
      if (refund) statedRefund = { count: Number(refund[1]), fen: parseYuan(refund[2]) };
      return;
    }
    if (columns === null) {
      const names = line.split(',').map((n) => n.trim());
      columns = new Map(names.map((n, k) => [n, k]));
      const missing = REQUIRED.filter((n) => !columns?.has(n));
      if (missing.length > 0) throw new BillRejected('BILL_HEADER_INVALID', `not an Alipay trade bill: the header lacks ${missing.join(', ')}`, lineNo);
      return;
    }
    const fields = line.split(',');
    if (fields.length !== columns.size) throw new BillRejected('BILL_ROW_INVALID', `${fields.length} fields, the header has ${columns.size}`, lineNo);
    const get = (name: string) => (fields[columns?.get(name) ?? -1] ?? '').replace(/\t$/, '').trim();
    const type = get('业务类型');
    if (type !== '交易' && type !== '退款') throw new BillRejected('BILL_ROW_INVALID', `unknown 业务类型 ${JSON.stringify(type)}`, lineNo);
    try {
      const received = parseYuan(get('商家实收（元）'));
      const fee = -parseYuan(get('服务费（元）'), 5); // the file states the fee charged as a negative amount
      const record: ChannelRecord = {
        kind: type === '交易' ? 'payment' : 'refund',
        payOrderId: get('商户订单号'),
        channelOrderNo: get('支付宝交易号'),
        refundOrderId: type === '退款' ? get('退款批次号/请求号') || null : null,
        channelRefundNo: null,
        amountFen: type === '交易' ? received : -received,
        feeE5: fee,
        status: type === '交易' ? 'SUCCESS' : 'REFUND',
        time: get('完成时间'),
      };
      totals.rows += 1;
      totals.feeE5 += fee;
      if (record.kind === 'payment') {
        payments += 1;
        totals.settledFen += record.amountFen;
      } else {
        refunds += 1;
        totals.refundedFen += record.amountFen;
      }
      onRecord(record);
    } catch (error) {
      if (error instanceof AmountInvalid) throw new BillRejected('BILL_AMOUNT_INVALID', error.message, lineNo);
      throw error;
    }
  });
  if (columns === null) throw new BillRejected('BILL_TRUNCATED', 'the detail file has no header');
  const pay = statedPay as { count: number; fen: bigint } | null;
  const refund = statedRefund as { count: number; fen: bigint } | null;
  if (pay === null || refund === null) throw new BillRejected('BILL_TRUNCATED', 'the 交易合计 / 退款合计 lines are missing: the file is cut short');
  if (pay.count !== payments || pay.fen !== totals.settledFen) throw new BillRejected('BILL_SUMMARY_MISMATCH', `交易合计 states ${pay.count} rows / ${pay.fen} fen, the rows give ${payments} / ${totals.settledFen}`);
  if (refund.count !== refunds || -refund.fen !== totals.refundedFen) throw new BillRejected('BILL_SUMMARY_MISMATCH', `退款合计 states ${refund.count} rows / ${refund.fen} fen, the rows give ${refunds} / ${-totals.refundedFen}`);
  return totals;
}
