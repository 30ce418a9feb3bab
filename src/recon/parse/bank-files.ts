// The containers a bank statement comes in, each turned into rows of cells for
// BankStatementReader: CSV (UTF-8 or GBK, detected by BOM and UTF-8 validity unless
// configured; RFC 4180 quoting), .xlsx (exceljs's streaming WorkbookReader, first
// worksheet) and .xls (our BIFF8 reader, xls.ts). CSV and .xlsx are streamed.
import ExcelJS from 'exceljs';
import { Readable } from 'node:stream';
import { BankStatementReader, type BankRecord, type BankTotals, type Cell } from './bank.ts';
import { detectEncoding, linesOf, type TextEncoding } from './text.ts';
import { readXlsRows, XlsInvalid } from './xls.ts';
import { BillRejected } from './wechat.ts';

const QUOTED_LINES_MAX = 100;

/** Splits one CSV record; returns null when a quoted field continues on the next line. */
export function splitCsv(line: string): string[] | null {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"' && cell.trim() === '') {
      quoted = true;
      cell = '';
    } else if (c === ',') {
      cells.push(cell);
      cell = '';
    } else cell += c;
  }
  if (quoted) return null;
  cells.push(cell);
  return cells;
}

/** `afterRow` lets the caller hand over a full batch (it is awaited between rows). */
export type AfterRow = () => Promise<void> | void;

export async function parseBankCsv(input: AsyncIterable<Buffer>, encoding: TextEncoding | 'auto', onRecord: (record: BankRecord) => void, afterRow: AfterRow = () => {}): Promise<BankTotals> {
  let bytes = input;
  let chosen: TextEncoding;
  if (encoding === 'auto') {
    const detected = await detectEncoding(input);
    bytes = detected.all;
    chosen = detected.encoding;
  } else chosen = encoding;
  const reader = new BankStatementReader(onRecord);
  let rowNo = 0;
  let carried: string | null = null;
  let carriedLines = 0;
  for await (const line of linesOf(bytes, chosen)) {
    rowNo += 1;
    const text: string = carried === null ? line : `${carried}\n${line}`;
    const cells = splitCsv(text);
    if (cells === null) {
      carried = text;
      carriedLines += 1;
      if (carriedLines > QUOTED_LINES_MAX) throw new BillRejected('BILL_ROW_INVALID', 'a quoted field never closes', rowNo);
      continue;
    }
    carried = null;
    carriedLines = 0;
    reader.push(cells, rowNo);
    await afterRow();
  }
  if (carried !== null) throw new BillRejected('BILL_TRUNCATED', 'the file ends inside a quoted field', rowNo);
  return reader.finish();
}

export async function parseBankXlsx(input: AsyncIterable<Buffer>, onRecord: (record: BankRecord) => void, afterRow: AfterRow = () => {}): Promise<BankTotals> {
  const reader = new BankStatementReader(onRecord);
  const workbook = new ExcelJS.stream.xlsx.WorkbookReader(Readable.from(input), {
    sharedStrings: 'cache', styles: 'cache', hyperlinks: 'ignore', worksheets: 'emit', entries: 'ignore',
  });
  let sheets = 0;
  try {
    for await (const worksheet of workbook) {
      sheets += 1;
      if (sheets > 1) {
        for await (const _row of worksheet as unknown as AsyncIterable<unknown>) void _row; // the statement is the first worksheet; later ones are drained unread
        continue;
      }
      for await (const row of worksheet as unknown as AsyncIterable<ExcelJS.Row>) {
        const values = row.values as Cell[] | Record<string, Cell>;
        const cells = Array.isArray(values) ? values.slice(1).map(cellOf) : [];
        reader.push(cells, row.number);
        await afterRow();
      }
    }
  } catch (error) {
    if (error instanceof BillRejected) throw error;
    throw new BillRejected('BILL_ARCHIVE_INVALID', `not a readable .xlsx workbook: ${(error as Error).message}`);
  }
  if (sheets === 0) throw new BillRejected('BILL_ARCHIVE_INVALID', 'the workbook has no worksheet');
  return reader.finish();
}

/** exceljs cell values: rich text, formulas (their cached result), hyperlinks, errors. */
function cellOf(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || value instanceof Date) return value;
  const v = value as { richText?: Array<{ text: string }>; result?: unknown; text?: unknown; error?: string };
  if (Array.isArray(v.richText)) return v.richText.map((r) => r.text).join('');
  if ('result' in v || 'formula' in v || 'sharedFormula' in v) return cellOf(v.result); // a formula: its cached result (none = empty)
  if (typeof v.text === 'string') return v.text;
  if (typeof v.error === 'string') return v.error;
  return String(value);
}

export function parseBankXls(data: Buffer, onRecord: (record: BankRecord) => void): BankTotals {
  const reader = new BankStatementReader(onRecord);
  try {
    for (const { rowNo, cells } of readXlsRows(data)) reader.push(cells, rowNo);
  } catch (error) {
    if (error instanceof XlsInvalid) throw new BillRejected(error.truncated ? 'BILL_TRUNCATED' : 'BILL_ARCHIVE_INVALID', `not a readable .xls workbook: ${error.message}`);
    throw error;
  }
  return reader.finish();
}
