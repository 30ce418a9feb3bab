// UnionPay ACP transaction files (全渠道 ZM): a zip whose entries named INN…ZM_… hold
// the transactions (ZME_ entries are errors and are not read). Each line is GBK, fixed
// width measured in BYTES, one space between fields (reference/channel-formats.md).
// 交易代码 S22 is a purchase and S30 a refund; other codes (cancellations, pre-auth) are
// counted in `skippedRows` and not delivered. 交易金额 is 12 digits of fen; the 13-byte
// money fields are D/C and 12 digits of fen (D: charged to the merchant). The file has
// no summary line: every line is checked for its structure (field separators, digits,
// signs) and the file is rejected whole at the first bad one.
import iconv from 'iconv-lite';
import { readZip, ZipError } from '../../platform/zip.ts';
import { BillRejected, checkControlChars, type BillTotals, type ChannelRecord } from './wechat.ts';
import { isUtf8Prefix } from './text.ts';

export const ZM_FIELDS: ReadonlyArray<readonly [string, number]> = [
  ['交易代码', 3], ['代理机构标识码', 11], ['发送机构标识码', 11], ['系统跟踪号', 6], ['交易传输时间', 10], ['帐号', 19],
  ['交易金额', 12], ['商户类别', 4], ['终端类型', 2], ['查询流水号', 21], ['支付方式（旧）', 2], ['商户订单号', 32],
  ['支付卡类型', 2], ['原始交易的系统跟踪号', 6], ['原始交易日期时间', 10], ['商户手续费', 13], ['结算金额', 13],
  ['支付方式', 4], ['集团商户代码', 15], ['交易类型', 2], ['交易子类', 2], ['业务类型', 6], ['帐号类型', 2], ['账单类型', 4],
  ['账单号码', 32], ['交互方式', 1], ['原交易查询流水号', 21], ['商户代码', 15], ['分账入账方式', 1], ['二级商户代码', 15],
  ['二级商户简称', 32], ['二级商户分账入账金额', 13], ['清算净额', 13], ['终端号', 8], ['商户自定义域', 32], ['优惠金额', 13],
  ['发票金额', 13], ['分期付款附加手续费', 12], ['分期付款期数', 2], ['交易介质', 1], ['原始交易订单号', 32], ['保留使用', 98],
];

const SIGNED_MONEY = new Set(['商户手续费', '结算金额', '二级商户分账入账金额', '清算净额', '优惠金额', '发票金额']);
const OFFSETS = ZM_FIELDS.reduce<number[]>((acc, [, width], i) => [...acc, i === 0 ? 0 : acc[i - 1] + ZM_FIELDS[i - 1][1] + 1], []);
export const ZM_LINE_BYTES = OFFSETS[OFFSETS.length - 1] + ZM_FIELDS[ZM_FIELDS.length - 1][1];
/** A line may end early where only the reserved last field would follow. */
const LINE_BYTES_MIN = OFFSETS[OFFSETS.length - 1] - 1;
const ENTRY_BYTES_MAX = 512 * 1024 * 1024;
const UTF8_EVIDENCE_BYTES = 16;

export interface ZmTotals extends BillTotals {
  /** Lines with a 交易代码 other than S22/S30 (cancellations, pre-authorisations, …). */
  skippedRows: number;
}

/** Reads the INN…ZM_ entries of the zip and delivers purchases and refunds. */
export function parseUnionpayZm(zip: Buffer, billDate: string, onRecord: (record: ChannelRecord) => void): ZmTotals {
  let entries;
  try {
    entries = readZip(zip, { entriesMax: 64, uncompressedBytesMax: ENTRY_BYTES_MAX });
  } catch (error) {
    if (error instanceof ZipError) throw new BillRejected(error.code === 'ZIP_TRUNCATED' ? 'BILL_TRUNCATED' : 'BILL_ARCHIVE_INVALID', `not a readable zip (${error.code}): ${error.message}`);
    throw error;
  }
  const named = entries.map((e) => ({ name: e.utf8Name ? e.name.toString('utf8') : iconv.decode(e.name, 'gbk'), data: e.data }));
  const zm = named.filter((e) => /(^|\/)INN[^/]*ZM_/.test(e.name));
  if (zm.length === 0) throw new BillRejected('BILL_HEADER_INVALID', `no INN…ZM_ transaction file in the archive (found ${named.map((e) => e.name).join(', ') || 'nothing'})`);
  const totals: ZmTotals = { rows: 0, settledFen: 0n, refundedFen: 0n, feeE5: 0n, skippedRows: 0 };
  for (const entry of zm) parseEntry(entry.name, entry.data, billDate, totals, onRecord);
  return totals;
}

function parseEntry(name: string, data: Buffer, billDate: string, totals: ZmTotals, onRecord: (record: ChannelRecord) => void): void {
  let nonAscii = 0;
  for (const byte of data) if (byte >= 0x80) nonAscii += 1;
  if (nonAscii >= UTF8_EVIDENCE_BYTES && isUtf8Prefix(data)) {
    throw new BillRejected('BILL_ENCODING_INVALID', `${name} is UTF-8 text: UnionPay files are GBK (fixed width in GBK bytes)`);
  }
  let start = 0;
  let lineNo = 0;
  while (start < data.length) {
    let end = data.indexOf(0x0a, start);
    if (end < 0) end = data.length;
    lineNo += 1;
    let line = data.subarray(start, end);
    start = end + 1;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length === 0 || line.every((b) => b === 0x20)) continue;
    const fields = fieldsOf(line, `${name} line ${lineNo}`);
    const record = recordOf(fields, billDate, `${name} line ${lineNo}`);
    if (record === null) {
      totals.skippedRows += 1;
      continue;
    }
    totals.rows += 1;
    if (record.kind === 'payment') totals.settledFen += record.amountFen;
    else totals.refundedFen += record.amountFen;
    totals.feeE5 += record.feeE5;
    onRecord(record);
  }
}

function fieldsOf(line: Buffer, where: string): Map<string, string> {
  if (line.length < LINE_BYTES_MIN || line.length > ZM_LINE_BYTES) {
    throw new BillRejected('BILL_ROW_INVALID', `${where}: ${line.length} bytes, a ZM line has ${ZM_LINE_BYTES} (fixed width in GBK bytes)`);
  }
  const padded = line.length < ZM_LINE_BYTES ? Buffer.concat([line, Buffer.alloc(ZM_LINE_BYTES - line.length, 0x20)]) : line;
  const fields = new Map<string, string>();
  ZM_FIELDS.forEach(([field, width], i) => {
    const at = OFFSETS[i];
    if (i > 0 && padded[at - 1] !== 0x20) throw new BillRejected('BILL_ROW_INVALID', `${where}: no space before ${field} at byte ${at}: the columns are shifted`);
    const text = iconv.decode(padded.subarray(at, at + width), 'gbk');
    if (text.includes('\uFFFD')) throw new BillRejected('BILL_ENCODING_INVALID', `${where}: ${field} is not valid GBK`);
    checkControlChars(text);
    fields.set(field, text.trim());
  });
  return fields;
}

function fen(fields: Map<string, string>, field: string, where: string): bigint {
  const text = fields.get(field) ?? '';
  if (SIGNED_MONEY.has(field)) {
    if (text === '') return 0n;
    const match = /^([DC])(\d{12})$/.exec(text);
    if (!match) throw new BillRejected('BILL_AMOUNT_INVALID', `${where}: ${field} ${JSON.stringify(text)} is not D/C and 12 digits of fen`);
    return match[1] === 'D' ? BigInt(match[2]) : -BigInt(match[2]);
  }
  if (!/^\d{12}$/.test(text)) throw new BillRejected('BILL_AMOUNT_INVALID', `${where}: ${field} ${JSON.stringify(text)} is not 12 digits of fen`);
  return BigInt(text);
}

function recordOf(fields: Map<string, string>, billDate: string, where: string): ChannelRecord | null {
  const code = fields.get('交易代码') ?? '';
  if (!/^[A-Z0-9]{3}$/.test(code)) throw new BillRejected('BILL_ROW_INVALID', `${where}: 交易代码 ${JSON.stringify(code)} is not a transaction code`);
  for (const field of SIGNED_MONEY) fen(fields, field, where); // every money field is well formed, even the ones not used
  if (code !== 'S22' && code !== 'S30') return null;
  const refund = code === 'S30';
  const amountFen = fen(fields, '交易金额', where);
  const time = timeOf(fields.get('交易传输时间') ?? '', billDate, where);
  const orderId = fields.get('商户订单号') ?? '';
  const originalOrderId = fields.get('原始交易订单号') ?? '';
  if (orderId === '' || (refund && originalOrderId === '')) throw new BillRejected('BILL_ROW_INVALID', `${where}: ${refund ? '原始交易订单号' : '商户订单号'} is empty`);
  return {
    kind: refund ? 'refund' : 'payment',
    payOrderId: refund ? originalOrderId : orderId,
    channelOrderNo: refund ? fields.get('原交易查询流水号') ?? '' : fields.get('查询流水号') ?? '',
    refundOrderId: refund ? orderId : null,
    channelRefundNo: refund ? fields.get('查询流水号') ?? null : null,
    amountFen,
    feeE5: fen(fields, '商户手续费', where) * 1000n,
    status: refund ? 'REFUND' : 'SUCCESS',
    time,
  };
}

/** 交易传输时间 is MMDDhhmmss: the year is the bill date's (the previous one for a December line in a January file). */
function timeOf(text: string, billDate: string, where: string): string {
  const m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 12 || Number(m[2]) < 1 || Number(m[2]) > 31 || Number(m[3]) > 23 || Number(m[4]) > 59 || Number(m[5]) > 59) {
    throw new BillRejected('BILL_ROW_INVALID', `${where}: 交易传输时间 ${JSON.stringify(text)} is not MMDDhhmmss`);
  }
  let year = Number(billDate.slice(0, 4));
  if (m[1] === '12' && billDate.slice(5, 7) === '01') year -= 1;
  return `${year}-${m[1]}-${m[2]} ${m[3]}:${m[4]}:${m[5]}`;
}
