// The containers a bank statement comes in, each turned into rows of cells for
// BankStatementReader: CSV (UTF-8 or GBK, detected by BOM and UTF-8 validity unless
// configured; RFC 4180 quoting), .xlsx (exceljs, first worksheet, read whole and
// bounded) and .xls (our BIFF8 reader, xls.ts). CSV is streamed.
import ExcelJS from 'exceljs';
import { readZip } from '../../platform/zip.ts';
import { BankStatementReader, type BankRecord, type BankTotals, type Cell } from './bank.ts';
import { detectEncoding, linesOf, type TextEncoding } from './text.ts';
import { readXlsRows, XlsInvalid } from './xls.ts';
import { BillRejected } from './wechat.ts';

const QUOTED_LINES_MAX = 100;
const XLSX_ENTRIES_MAX = 1000;
/** Default bound of a .xlsx statement's uncompressed parts. */
const XLSX_BYTES_MAX = 256 * 1024 * 1024;

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

/**
 * A .xlsx statement, read whole (`bytesMax` bounds it, compressed and uncompressed):
 * exceljs's streaming WorkbookReader drops the archive's last entry at random on Node
 * 18+ (exceljs#3064: the workbook part is last in exceljs-written files), so the
 * archive is checked with our bounded zip reader and then loaded through its central
 * directory. The statement is the first worksheet.
 */
export async function parseBankXlsx(data: Buffer, onRecord: (record: BankRecord) => void, afterRow: AfterRow = () => {}, bytesMax = XLSX_BYTES_MAX): Promise<BankTotals> {
  const reader = new BankStatementReader(onRecord);
  const workbook = new ExcelJS.Workbook();
  try {
    readZip(data, { entriesMax: XLSX_ENTRIES_MAX, uncompressedBytesMax: bytesMax });
    await workbook.xlsx.load(data as unknown as ExcelJS.Buffer);
  } catch (error) {
    throw new BillRejected('BILL_ARCHIVE_INVALID', `not a readable .xlsx workbook: ${(error as Error).message}`);
  }
  const sheet = workbook.worksheets[0];
  if (!sheet) throw new BillRejected('BILL_ARCHIVE_INVALID', 'the workbook has no worksheet');
  for (let rowNo = 1; rowNo <= sheet.rowCount; rowNo += 1) {
    const row = sheet.findRow(rowNo);
    if (!row) continue;
    const values = row.values as Cell[] | Record<string, Cell>;
    reader.push(Array.isArray(values) ? values.slice(1).map(cellOf) : [], rowNo);
    await afterRow();
  }
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
