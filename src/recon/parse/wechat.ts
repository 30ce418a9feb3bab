// WeChat Pay trade bills (交易账单: ALL, SUCCESS, REFUND), parsed line by line so memory
// does not grow with the file: columns are found by header name, every value loses its
// leading backtick, amounts become integers by string arithmetic, and the summary row
// must agree with the detail rows or the whole file is rejected. Callers import the
// records only after the parser has finished (nothing half-imported).
import { AmountInvalid, fastYuan, parseYuan } from './amount.ts';

export type BillErrorCode = 'BILL_HEADER_INVALID' | 'BILL_ROW_INVALID' | 'BILL_AMOUNT_INVALID' | 'BILL_TRUNCATED' | 'BILL_SUMMARY_MISMATCH' | 'BILL_TOO_LARGE'
  /** Not valid text in the expected encoding (e.g. UTF-8 bytes where GBK is expected). */
  | 'BILL_ENCODING_INVALID'
  /** The configured key does not decrypt the file (wrong key, wrong algorithm, damaged). */
  | 'BILL_DECRYPT_FAILED'
  /** A bank statement's balances do not chain: previous balance ± amount ≠ balance. */
  | 'BILL_BALANCE_BROKEN'
  /** The archive or workbook container is damaged or not what was configured. */
  | 'BILL_ARCHIVE_INVALID'
  /** A NUL byte or another control character no text field can hold (PostgreSQL refuses NUL). */
  | 'BILL_CONTROL_CHAR';

/** Control characters a statement's text never holds (tab, LF and CR are line structure). */
const CONTROL_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/;

/** Rejects text holding a NUL or another control character (BILL_CONTROL_CHAR). */
export function checkControlChars(text: string, line: number | null = null): void {
  if (CONTROL_CHARS.test(text)) throw new BillRejected('BILL_CONTROL_CHAR', 'a NUL byte or control character in the file: not a statement / 文件含有 NUL 或控制字符，不是对账单', line);
}

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
/** The columns a record is made of, in slot order (see WechatBillScanner.field). */
const SLOTS = [...REQUIRED, ...REFUND_COLUMNS] as const;
const SLOT = { time: 0, channelOrderNo: 1, payOrderId: 2, status: 3, settled: 4, fee: 5, channelRefundNo: 6, refundOrderId: 7, refunded: 8 } as const;
const ROWS_MAX = 50_000_000;
const BACKTICK = 96;
const SUMMARY_START = '总交易单数';
const UTF8_BOM_BYTES = '\u00ef\u00bb\u00bf';
/** A running sum is moved into its bigint before it can leave the safe-integer range (addends are below 1e15). */
const SUM_FLUSH = 4e15;

const unquote = (field: string) => (field.startsWith('`') ? field.slice(1) : field);

/** An exact sum of many amounts: a number while small, a bigint underneath. */
class Sum {
  private small = 0;
  private big = 0n;
  add(value: number | bigint): void {
    if (typeof value === 'bigint') {
      this.big += value;
      return;
    }
    this.small += value;
    if (this.small > SUM_FLUSH || this.small < -SUM_FLUSH) {
      this.big += BigInt(this.small);
      this.small = 0;
    }
  }
  get value(): bigint {
    return this.big + BigInt(this.small);
  }
}

/** An amount as the scanner keeps it: exact, as a number when small (fastYuan) else a bigint. */
function amountOf(text: string, scale: 2 | 5): number | bigint {
  return fastYuan(text, scale) ?? parseYuan(text, scale);
}

/**
 * The bill parser's state machine, one line at a time and without allocating a
 * record: line() reads a line (without its line break) and returns true when it was a
 * detail row, whose fields are then readable (field(), amountText, feeText, refund);
 * end() checks the summary against the rows. parseWechatBill builds records from it;
 * the staging fast path (parse.worker.ts) writes staging lines straight from it.
 */
export class WechatBillScanner {
  lineNo = 0;
  rows = 0;
  /** Of the current detail row: a refund (交易状态 REFUND) or a payment. */
  refund = false;
  /** Of the current detail row: 应结订单金额 (payment) or 退款金额 (refund), integer fen as decimal text. */
  amountText = '';
  /** Of the current detail row: 手续费 in 1e-5 yuan as decimal text. */
  feeText = '';
  private columns: Map<string, number> | null = null;
  private columnCount = 0;
  /** Field index → slot, or -1 for a column no record needs. */
  private slotOf: Int8Array = new Int8Array(0);
  private refundColumns = false;
  private readonly values: string[] = SLOTS.map(() => '');
  private summaryHeader: string[] | null = null;
  private summary: string[] | null = null;
  private readonly settled = new Sum();
  private readonly refunded = new Sum();
  private readonly fees = new Sum();
  private readonly bytes: boolean;
  private readonly summaryStart: string;

  /** A line or field as text (decoded when lines are byte strings). */
  private text(s: string): string {
    return this.bytes ? Buffer.from(s, 'latin1').toString('utf8') : s;
  }

  /** A field of the current detail row ('' when the bill has no such column). */
  field(slot: number): string {
    return this.values[slot];
  }

  /**
   * bytes: lines are byte strings (each char one byte of the UTF-8 file, as latin1
   * decodes it), and so are the fields; the header and summary are decoded here.
   */
  constructor(options: { bytes?: boolean } = {}) {
    this.bytes = options.bytes ?? false;
    this.summaryStart = this.bytes ? Buffer.from(SUMMARY_START, 'utf8').toString('latin1') : SUMMARY_START;
  }

  line(raw: string): boolean {
    this.lineNo += 1;
    checkControlChars(raw, this.lineNo);
    let line = raw.charCodeAt(raw.length - 1) === 13 ? raw.slice(0, -1) : raw;
    if (line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    else if (this.bytes && line.startsWith(UTF8_BOM_BYTES)) line = line.slice(3);
    if (line.charCodeAt(0) !== BACKTICK && line.trim() === '') return false;
    if (this.columns === null) {
      this.setHeader(this.text(line));
      return false;
    }
    if (this.summaryHeader === null && line.startsWith(this.summaryStart)) {
      this.summaryHeader = this.text(line).split(',');
      return false;
    }
    if (this.summaryHeader !== null) {
      if (this.summary !== null) throw new BillRejected('BILL_ROW_INVALID', 'text after the summary row', this.lineNo);
      this.summary = this.text(line).split(',').map(unquote);
      return false;
    }
    if (this.rows >= ROWS_MAX) throw new BillRejected('BILL_TOO_LARGE', `more than ${ROWS_MAX} rows`, this.lineNo);
    this.detail(line);
    this.rows += 1;
    return true;
  }

  end(): BillTotals {
    if (this.columns === null) throw new BillRejected('BILL_TRUNCATED', 'the file is empty');
    if (this.summaryHeader === null || this.summary === null) throw new BillRejected('BILL_TRUNCATED', 'the summary rows are missing: the file is cut short');
    const totals: BillTotals = { rows: this.rows, settledFen: this.settled.value, refundedFen: this.refunded.value, feeE5: this.fees.value };
    checkSummary(this.summaryHeader, this.summary, totals);
    return totals;
  }

  private setHeader(line: string): void {
    const columns = headerOf(line);
    const names = line.split(',');
    this.columns = columns;
    this.columnCount = columns.size;
    this.slotOf = new Int8Array(names.length).fill(-1);
    SLOTS.forEach((name, slot) => {
      const i = columns.get(name);
      if (i !== undefined) this.slotOf[i] = slot;
    });
    this.refundColumns = REFUND_COLUMNS.every((n) => columns.has(n));
  }

  /** Splits a detail row by commas, keeping only the slots' fields (without their backtick). */
  private detail(line: string): void {
    const values = this.values;
    values.fill('');
    let fields = 0;
    let ticks = true;
    let start = 0;
    for (;;) {
      const comma = line.indexOf(',', start);
      const stop = comma < 0 ? line.length : comma;
      if (line.charCodeAt(start) !== BACKTICK) ticks = false;
      const slot = fields < this.slotOf.length ? this.slotOf[fields] : -1;
      if (slot >= 0) values[slot] = line.charCodeAt(start) === BACKTICK ? line.slice(start + 1, stop) : line.slice(start, stop);
      fields += 1;
      if (comma < 0) break;
      start = comma + 1;
    }
    if (fields !== this.columnCount) throw new BillRejected('BILL_ROW_INVALID', `${fields} fields, the header has ${this.columnCount}`, this.lineNo);
    if (!ticks) throw new BillRejected('BILL_ROW_INVALID', 'a detail field does not start with a backtick', this.lineNo);
    this.refund = values[SLOT.status] === 'REFUND';
    if (this.refund && !this.refundColumns) throw new BillRejected('BILL_ROW_INVALID', 'a refund row in a bill without refund columns', this.lineNo);
    try {
      const amount = amountOf(values[this.refund ? SLOT.refunded : SLOT.settled], 2);
      const fee = amountOf(values[SLOT.fee], 5);
      (this.refund ? this.refunded : this.settled).add(amount);
      this.fees.add(fee);
      this.amountText = String(amount);
      this.feeText = String(fee);
    } catch (error) {
      if (error instanceof AmountInvalid) throw new BillRejected('BILL_AMOUNT_INVALID', this.text(error.message), this.lineNo);
      throw error;
    }
  }
}

export { SLOT as WECHAT_SLOT };

/**
 * Parses a bill given as lines (a stream of text lines, e.g. readline over the stored
 * file). Calls onRecord for each detail row and returns the totals it checked.
 */
export async function parseWechatBill(lines: AsyncIterable<string> | Iterable<string>, onRecord: (record: ChannelRecord) => void | Promise<void>): Promise<BillTotals> {
  const scan = new WechatBillScanner();
  for await (const line of lines) {
    if (scan.line(line)) await onRecord(recordOf(scan));
  }
  return scan.end();
}

function recordOf(scan: WechatBillScanner): ChannelRecord {
  const refund = scan.refund;
  return {
    kind: refund ? 'refund' : 'payment',
    payOrderId: scan.field(SLOT.payOrderId),
    channelOrderNo: scan.field(SLOT.channelOrderNo),
    refundOrderId: refund ? scan.field(SLOT.refundOrderId) : null,
    channelRefundNo: refund ? scan.field(SLOT.channelRefundNo) : null,
    amountFen: BigInt(scan.amountText),
    feeE5: BigInt(scan.feeText),
    status: scan.field(SLOT.status),
    time: scan.field(SLOT.time),
  };
}

function headerOf(line: string): Map<string, number> {
  const names = line.split(',').map((n) => n.trim());
  const columns = new Map(names.map((n, i) => [n, i]));
  const missing = REQUIRED.filter((n) => !columns.has(n));
  if (missing.length > 0) throw new BillRejected('BILL_HEADER_INVALID', `not a WeChat trade bill: the header lacks ${missing.join(', ')}`, 1);
  return columns;
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
