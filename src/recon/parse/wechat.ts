// WeChat Pay trade bills (交易账单: ALL, SUCCESS, REFUND), parsed line by line so memory
// does not grow with the file: columns are found by header name, every value loses its
// leading backtick, amounts become integers by string arithmetic, and the summary row
// must agree with the detail rows or the whole file is rejected. Callers import the
// records only after the parser has finished (nothing half-imported).
import { AmountInvalid, parseYuan } from './amount.ts';

export type BillErrorCode = 'BILL_HEADER_INVALID' | 'BILL_ROW_INVALID' | 'BILL_AMOUNT_INVALID' | 'BILL_TRUNCATED' | 'BILL_SUMMARY_MISMATCH' | 'BILL_TOO_LARGE'
  /** Not valid text in the expected encoding (e.g. UTF-8 bytes where GBK is expected). */
  | 'BILL_ENCODING_INVALID'
  /** The configured key does not decrypt the file (wrong key, wrong algorithm, damaged). */
  | 'BILL_DECRYPT_FAILED'
  /** A bank statement's balances do not chain: previous balance ± amount ≠ balance. */
  | 'BILL_BALANCE_BROKEN'
  /** The archive or workbook container is damaged or not what was configured. */
  | 'BILL_ARCHIVE_INVALID';

export class BillRejected extends Error {
  readonly code: BillErrorCode;
  readonly line: number | null;
  constructor(code: BillErrorCode, message: string, line: number | null = null) {
    super(line === null ? message : `line ${line}: ${message}`);
    this.name = 'BillRejected';
    this.code = code;
    this.line = line;
  }
}

export interface ChannelRecord {
  kind: 'payment' | 'refund';
  /** 商户订单号: our payOrderId. */
  payOrderId: string;
  channelOrderNo: string;
  /** 商户退款单号 / 微信退款单号 on refund rows. */
  refundOrderId: string | null;
  channelRefundNo: string | null;
  /** Payment: 应结订单金额; refund: 退款金额 (positive). */
  amountFen: bigint;
  /** 手续费 in 1e-5 yuan (negative on refunds), as the file states it. */
  feeE5: bigint;
  status: string;
  /** 交易时间 as written (Beijing time). */
  time: string;
}

export interface BillTotals {
  rows: number;
  settledFen: bigint;
  refundedFen: bigint;
  feeE5: bigint;
}

const REQUIRED = ['交易时间', '微信订单号', '商户订单号', '交易状态', '应结订单金额', '手续费'] as const;
const REFUND_COLUMNS = ['微信退款单号', '商户退款单号', '退款金额'] as const;
const ROWS_MAX = 50_000_000;

const unquote = (field: string) => (field.startsWith('`') ? field.slice(1) : field);

/**
 * Parses a bill given as lines (a stream of text lines, e.g. readline over the stored
 * file). Calls onRecord for each detail row and returns the totals it checked.
 */
export async function parseWechatBill(lines: AsyncIterable<string> | Iterable<string>, onRecord: (record: ChannelRecord) => void | Promise<void>): Promise<BillTotals> {
  let lineNo = 0;
  let columns: Map<string, number> | null = null;
  let summaryHeader: string[] | null = null;
  let summary: string[] | null = null;
  const totals: BillTotals = { rows: 0, settledFen: 0n, refundedFen: 0n, feeE5: 0n };
  for await (const raw of lines) {
    lineNo += 1;
    const line = raw.replace(/\r$/, '').replace(/^\uFEFF/, '');
    if (line.trim() === '') continue;
    if (columns === null) {
      columns = headerOf(line);
      continue;
    }
    if (summaryHeader === null && line.startsWith('总交易单数')) {
      summaryHeader = line.split(',');
      continue;
    }
    if (summaryHeader !== null) {
      if (summary !== null) throw new BillRejected('BILL_ROW_INVALID', 'text after the summary row', lineNo);
      summary = line.split(',').map(unquote);
      continue;
    }
    if (totals.rows >= ROWS_MAX) throw new BillRejected('BILL_TOO_LARGE', `more than ${ROWS_MAX} rows`, lineNo);
    const record = rowOf(line, columns, lineNo);
    totals.rows += 1;
    if (record.kind === 'payment') totals.settledFen += record.amountFen;
    else totals.refundedFen += record.amountFen;
    totals.feeE5 += record.feeE5;
    await onRecord(record);
  }
  if (columns === null) throw new BillRejected('BILL_TRUNCATED', 'the file is empty');
  if (summaryHeader === null || summary === null) throw new BillRejected('BILL_TRUNCATED', 'the summary rows are missing: the file is cut short');
  checkSummary(summaryHeader, summary, totals);
  return totals;
}

function headerOf(line: string): Map<string, number> {
  const names = line.split(',').map((n) => n.trim());
  const columns = new Map(names.map((n, i) => [n, i]));
  const missing = REQUIRED.filter((n) => !columns.has(n));
  if (missing.length > 0) throw new BillRejected('BILL_HEADER_INVALID', `not a WeChat trade bill: the header lacks ${missing.join(', ')}`, 1);
  return columns;
}

function rowOf(line: string, columns: Map<string, number>, lineNo: number): ChannelRecord {
  const fields = line.split(',');
  if (fields.length !== columns.size) throw new BillRejected('BILL_ROW_INVALID', `${fields.length} fields, the header has ${columns.size}`, lineNo);
  if (!fields.every((f) => f.startsWith('`'))) throw new BillRejected('BILL_ROW_INVALID', 'a detail field does not start with a backtick', lineNo);
  const get = (name: string) => {
    const i = columns.get(name);
    return i === undefined ? '' : unquote(fields[i]);
  };
  const status = get('交易状态');
  const refund = status === 'REFUND';
  const refundColumnsPresent = REFUND_COLUMNS.every((n) => columns.has(n));
  if (refund && !refundColumnsPresent) throw new BillRejected('BILL_ROW_INVALID', 'a refund row in a bill without refund columns', lineNo);
  try {
    return {
      kind: refund ? 'refund' : 'payment',
      payOrderId: get('商户订单号'),
      channelOrderNo: get('微信订单号'),
      refundOrderId: refund ? get('商户退款单号') : null,
      channelRefundNo: refund ? get('微信退款单号') : null,
      amountFen: refund ? parseYuan(get('退款金额')) : parseYuan(get('应结订单金额')),
      feeE5: parseYuan(get('手续费'), 5),
      status,
      time: get('交易时间'),
    };
  } catch (error) {
    if (error instanceof AmountInvalid) throw new BillRejected('BILL_AMOUNT_INVALID', error.message, lineNo);
    throw error;
  }
}

function checkSummary(header: string[], values: string[], totals: BillTotals): void {
  const value = (name: string) => {
    const i = header.indexOf(name);
    return i < 0 ? null : values[i] ?? null;
  };
  const expect = (name: string, actual: bigint, scale: 2 | 5) => {
    const text = value(name);
    if (text === null) return;
    let stated: bigint;
    try {
      stated = parseYuan(text, scale);
    } catch {
      throw new BillRejected('BILL_SUMMARY_MISMATCH', `summary ${name} is not an amount: ${JSON.stringify(text)}`);
    }
    if (stated !== actual) throw new BillRejected('BILL_SUMMARY_MISMATCH', `summary ${name} states ${text} but the detail rows add up to a different amount`);
  };
  const count = value('总交易单数');
  if (count === null || count !== String(totals.rows)) {
    throw new BillRejected('BILL_SUMMARY_MISMATCH', `summary 总交易单数 states ${count} but there are ${totals.rows} detail rows`);
  }
  expect('应结订单总金额', totals.settledFen, 2);
  expect('退款总金额', totals.refundedFen, 2);
  expect('手续费总金额', totals.feeE5, 5);
}
