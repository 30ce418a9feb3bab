// Bank account statements (银行流水), whatever the container (CSV, .xlsx, .xls): rows of
// cells, read by header name. Title and account lines above the header are skipped
// (the header is the first row naming a date, a debit and a credit column); the
// common synonyms are accepted; amounts become fen by string arithmetic (Excel numbers
// through their 15 significant digits, as Excel shows them). Checks, any of which
// rejects the whole file: one of debit/credit per row, dates and amounts well formed,
// the balances chain (previous balance ± amount = balance, in either row order), and
// a 合计 row, when present, equals the rows' sums.
import { AmountInvalid, parseYuan } from './amount.ts';
import { BillRejected, checkControlChars } from './wechat.ts';

export interface BankRecord {
  /** YYYY-MM-DD. */
  date: string;
  /** HH:mm:ss, or null when the statement has no time. */
  time: string | null;
  serialNo: string;
  /** debit = money out (借/支出), credit = money in (贷/收入). */
  direction: 'debit' | 'credit';
  /** As stated in its column: positive, or negative for a reversal (冲正). */
  amountFen: bigint;
  /** Balance after the row, or null when the statement has no balance column. */
  balanceFen: bigint | null;
  counterpartyName: string;
  counterpartyAccount: string;
  counterpartyBank: string;
  /** 摘要 / 用途. */
  summary: string;
  /** 附言 / 备注. */
  remark: string;
}

export interface BankTotals {
  rows: number;
  debitFen: bigint;
  creditFen: bigint;
  /** Balance before the first transaction and after the last (in time), when there is a balance column. */
  openingBalanceFen: bigint | null;
  closingBalanceFen: bigint | null;
  /** Row order the balances prove: ascending (oldest first) or descending; null with < 2 rows or no balances. */
  order: 'ascending' | 'descending' | null;
}

export type Cell = string | number | boolean | Date | null | undefined;

type Column = 'date' | 'time' | 'serialNo' | 'debit' | 'credit' | 'balance' | 'counterpartyName' | 'counterpartyAccount' | 'counterpartyBank' | 'summary' | 'purpose' | 'remark';

const SYNONYMS: Record<Column, string[]> = {
  date: ['交易日期', '记账日期', '入账日期', '日期', '交易时间戳'],
  time: ['交易时间', '时间', '记账时间'],
  serialNo: ['流水号', '交易流水号', '银行流水号', '交易流水', '流水'],
  debit: ['借方发生额', '支出金额', '借方金额', '支出', '付款金额', '借方'],
  credit: ['贷方发生额', '收入金额', '贷方金额', '收入', '收款金额', '贷方'],
  balance: ['余额', '账户余额', '当前余额', '交易后余额'],
  counterpartyName: ['对方户名', '对方账户名称', '对方名称', '对方账户名', '对方单位'],
  counterpartyAccount: ['对方账号', '对方账户', '对方帐号'],
  counterpartyBank: ['对方开户行', '对方行名', '对方开户机构', '对方开户银行'],
  summary: ['摘要', '摘要/用途', '交易摘要'],
  purpose: ['用途', '交易用途'],
  remark: ['附言', '备注', '交易附言'],
};

const HEADER_SEARCH_ROWS = 30;
const ROWS_MAX = 10_000_000;
const SUMMARY_ROW = /^(合计|总计|本页合计|本期合计|累计)/;

const normalize = (name: string) => name.replace(/[（(][^)）]*[)）]/g, '').replace(/[\s:：*]/g, '');

export function textOf(cell: Cell): string {
  if (cell === null || cell === undefined) return '';
  if (cell instanceof Date) return cell.toISOString();
  if (typeof cell === 'string') checkControlChars(cell.replace(/[\t\n\r]/g, ''));
  return String(cell).replace(/^\uFEFF/, '').replace(/\t/g, '').trim();
}

/** Reads a statement row by row; `finish` checks the totals and returns them. */
export class BankStatementReader {
  private columns: Map<Column, number> | null = null;
  private readonly totals: BankTotals = { rows: 0, debitFen: 0n, creditFen: 0n, openingBalanceFen: null, closingBalanceFen: null, order: null };
  private previous: BankRecord | null = null;
  private first: BankRecord | null = null;
  private forward = true;
  private backward = true;
  private ended = false;
  private summarySeen = false;
  private readonly onRecord: (record: BankRecord) => void;

  constructor(onRecord: (record: BankRecord) => void) {
    this.onRecord = onRecord;
  }

  /** One row of cells; rowNo is 1-based, for messages. */
  push(cells: Cell[], rowNo: number): void {
    const texts = cells.map(textOf);
    if (texts.every((t) => t === '')) return;
    if (this.columns === null) {
      if (rowNo > HEADER_SEARCH_ROWS) throw new BillRejected('BILL_HEADER_INVALID', `no header row in the first ${HEADER_SEARCH_ROWS} rows: a bank statement needs columns 交易日期, 借方发生额 (支出金额) and 贷方发生额 (收入金额)`, rowNo);
      this.columns = headerOf(texts); // null while the rows are titles above the header
      return;
    }
    const cell = (column: Column): Cell => {
      const i = this.columns?.get(column);
      return i === undefined ? null : cells[i];
    };
    const firstText = texts.find((t) => t !== '') ?? '';
    if (SUMMARY_ROW.test(firstText)) {
      this.checkSummary(cell('debit'), cell('credit'), rowNo);
      this.ended = true;
      return;
    }
    const date = dateOf(cell('date'));
    if (date === null) {
      if (textOf(cell('debit')) === '' && textOf(cell('credit')) === '') {
        this.ended = true; // a footer (制表人, 打印时间, …): nothing may follow it
        return;
      }
      throw new BillRejected('BILL_ROW_INVALID', `交易日期 ${JSON.stringify(textOf(cell('date')))} is not a date`, rowNo);
    }
    if (this.ended) throw new BillRejected('BILL_ROW_INVALID', `a transaction after the ${this.summarySeen ? '合计 row' : 'footer'}: the file is not one statement`, rowNo);
    if (this.totals.rows >= ROWS_MAX) throw new BillRejected('BILL_TOO_LARGE', `more than ${ROWS_MAX} rows`, rowNo);
    const record = this.recordOf(cell, date, rowNo);
    this.chain(record, rowNo);
    this.totals.rows += 1;
    if (record.direction === 'debit') this.totals.debitFen += record.amountFen;
    else this.totals.creditFen += record.amountFen;
    this.onRecord(record);
  }

  finish(): BankTotals {
    if (this.columns === null) throw new BillRejected('BILL_TRUNCATED', 'the file is empty or has no header row');
    const last = this.previous;
    if (this.first !== null && last !== null && this.first.balanceFen !== null && last.balanceFen !== null) {
      const ascending = this.forward;
      const oldest = ascending ? this.first : last;
      const newest = ascending ? last : this.first;
      this.totals.order = this.totals.rows < 2 ? null : ascending ? 'ascending' : 'descending';
      this.totals.openingBalanceFen = (oldest.balanceFen as bigint) - signed(oldest);
      this.totals.closingBalanceFen = newest.balanceFen;
    }
    return this.totals;
  }

  private recordOf(cell: (column: Column) => Cell, date: { date: string; time: string | null }, rowNo: number): BankRecord {
    const debit = amountOf(cell('debit'), '借方发生额', rowNo);
    const credit = amountOf(cell('credit'), '贷方发生额', rowNo);
    if ((debit === null || debit === 0n) === (credit === null || credit === 0n)) {
      throw new BillRejected('BILL_ROW_INVALID', debit ? 'both a debit and a credit amount: one row is one movement' : 'neither a debit nor a credit amount', rowNo);
    }
    const hasBalance = this.columns?.has('balance') ?? false;
    const balance = hasBalance ? amountOf(cell('balance'), '余额', rowNo) : null;
    if (hasBalance && balance === null) throw new BillRejected('BILL_ROW_INVALID', '余额 is empty', rowNo);
    const summary = textOf(cell('summary'));
    const purpose = textOf(cell('purpose'));
    return {
      date: date.date,
      time: timeOf(cell('time'), rowNo) ?? date.time,
      serialNo: textOf(cell('serialNo')),
      direction: debit !== null && debit !== 0n ? 'debit' : 'credit',
      amountFen: debit !== null && debit !== 0n ? debit : (credit as bigint),
      balanceFen: balance,
      counterpartyName: textOf(cell('counterpartyName')),
      counterpartyAccount: textOf(cell('counterpartyAccount')),
      counterpartyBank: textOf(cell('counterpartyBank')),
      summary: summary !== '' && purpose !== '' && summary !== purpose ? `${summary} / ${purpose}` : summary || purpose,
      remark: textOf(cell('remark')),
    };
  }

  /** Balances must chain, oldest-first or newest-first; the file is rejected when neither holds. */
  private chain(record: BankRecord, rowNo: number): void {
    const previous = this.previous;
    this.previous = record;
    if (this.first === null) this.first = record;
    if (previous === null || record.balanceFen === null || previous.balanceFen === null) return;
    if (previous.balanceFen + signed(record) !== record.balanceFen) this.forward = false;
    if (record.balanceFen + signed(previous) !== previous.balanceFen) this.backward = false;
    if (!this.forward && !this.backward) {
      throw new BillRejected('BILL_BALANCE_BROKEN', `余额 ${fenText(record.balanceFen)} does not follow from the previous row's ${fenText(previous.balanceFen)} ${record.direction === 'debit' ? '−' : '+'} ${fenText(record.amountFen)} (nor the other way round): a row is missing, altered or out of order`, rowNo);
    }
  }

  private checkSummary(debitCell: Cell, creditCell: Cell, rowNo: number): void {
    if (this.summarySeen) throw new BillRejected('BILL_ROW_INVALID', 'a second 合计 row', rowNo);
    this.summarySeen = true;
    const debit = amountOf(debitCell, '合计 借方', rowNo);
    const credit = amountOf(creditCell, '合计 贷方', rowNo);
    if (debit !== null && debit !== this.totals.debitFen) throw new BillRejected('BILL_SUMMARY_MISMATCH', `合计 debit ${fenText(debit)} but the rows add up to ${fenText(this.totals.debitFen)}`, rowNo);
    if (credit !== null && credit !== this.totals.creditFen) throw new BillRejected('BILL_SUMMARY_MISMATCH', `合计 credit ${fenText(credit)} but the rows add up to ${fenText(this.totals.creditFen)}`, rowNo);
  }
}

const signed = (r: BankRecord) => (r.direction === 'credit' ? r.amountFen : -r.amountFen);

function fenText(fen: bigint): string {
  const abs = fen < 0n ? -fen : fen;
  return `${fen < 0n ? '-' : ''}${abs / 100n}.${(abs % 100n).toString().padStart(2, '0')}`;
}

/** The columns, or null for a row that names none of the required ones (a title row). */
function headerOf(texts: string[]): Map<Column, number> | null {
  const names = texts.map(normalize);
  const columns = new Map<Column, number>();
  for (const [column, synonyms] of Object.entries(SYNONYMS) as Array<[Column, string[]]>) {
    for (const synonym of synonyms) {
      const at = names.indexOf(normalize(synonym));
      if (at >= 0 && ![...columns.values()].includes(at)) {
        columns.set(column, at);
        break;
      }
    }
  }
  const missing = (['date', 'debit', 'credit'] as const).filter((c) => !columns.has(c));
  if (missing.length > 0) {
    if (missing.length === 3) return null;
    throw new BillRejected('BILL_HEADER_INVALID', `the header ${JSON.stringify(texts.filter((t) => t !== '').join(','))} lacks ${missing.map((c) => SYNONYMS[c][0]).join(', ')}`);
  }
  return columns;
}

export function amountOf(cell: Cell, name: string, rowNo: number): bigint | null {
  if (cell === null || cell === undefined || cell === '') return null;
  let text: string;
  if (typeof cell === 'number') {
    if (!Number.isFinite(cell)) throw new BillRejected('BILL_AMOUNT_INVALID', `${name} is not a number`, rowNo);
    // Excel keeps 15 significant digits; the shortest text of that value is what Excel shows.
    text = String(Number(cell.toPrecision(15)));
  } else {
    text = textOf(cell).replace(/[,，\s¥￥]/g, '');
    if (text === '' || text === '-' || text === '--') return null;
  }
  try {
    return parseYuan(text);
  } catch (error) {
    if (error instanceof AmountInvalid) throw new BillRejected('BILL_AMOUNT_INVALID', `${name}: ${error.message}`, rowNo);
    throw error;
  }
}

const EXCEL_EPOCH_MS = Date.UTC(1899, 11, 30);
const DAY_MS = 86_400_000;

function validDate(y: number, m: number, d: number): string | null {
  const at = new Date(Date.UTC(y, m - 1, d));
  if (y < 1990 || y > 2999 || at.getUTCMonth() !== m - 1 || at.getUTCDate() !== d) return null;
  return at.toISOString().slice(0, 10);
}

function clock(h: number, m: number, s: number): string | null {
  if (h > 23 || m > 59 || s > 59) return null;
  return [h, m, s].map((n) => String(n).padStart(2, '0')).join(':');
}

/** A date cell: text (2026-11-21, 2026/11/21, 20261121, 2026年11月21日, with a time), a yyyymmdd number, an Excel serial, or a Date. */
export function dateOf(cell: Cell): { date: string; time: string | null } | null {
  if (cell instanceof Date) {
    const iso = cell.toISOString();
    const time = iso.slice(11, 19);
    return { date: iso.slice(0, 10), time: time === '00:00:00' ? null : time };
  }
  if (typeof cell === 'number') {
    if (Number.isInteger(cell) && cell >= 19900101 && cell <= 29991231) return dateOf(String(cell));
    if (cell >= 32_874 && cell < 401_769) { // 1990-01-01 … 2999-12-31 as Excel serials
      const ms = Math.round((cell * DAY_MS) / 1000) * 1000;
      return dateOf(new Date(EXCEL_EPOCH_MS + ms));
    }
    return null;
  }
  const text = textOf(cell);
  const m = /^(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$/.exec(text);
  if (!m) return null;
  const date = validDate(Number(m[1]), Number(m[2] ?? m[4]), Number(m[3] ?? m[5]));
  if (date === null) return null;
  const time = m[6] === undefined ? null : clock(Number(m[6]), Number(m[7]), Number(m[8] ?? 0));
  if (m[6] !== undefined && time === null) return null;
  return { date, time };
}

function timeOf(cell: Cell, rowNo: number): string | null {
  if (cell === null || cell === undefined || cell === '') return null;
  if (cell instanceof Date) return cell.toISOString().slice(11, 19);
  if (typeof cell === 'number' && cell >= 0 && cell < 1) {
    const s = Math.round(cell * 86_400);
    return clock(Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60);
  }
  const text = textOf(cell);
  const m = /^(?:\d{4}[-/]\d{1,2}[-/]\d{1,2}[ T]+)?(\d{1,2}):?(\d{2}):?(\d{2})?(?:\.\d+)?$/.exec(text);
  const time = m ? clock(Number(m[1]), Number(m[2]), Number(m[3] ?? 0)) : null;
  if (time === null) throw new BillRejected('BILL_ROW_INVALID', `交易时间 ${JSON.stringify(text)} is not a time`, rowNo);
  return time;
}
