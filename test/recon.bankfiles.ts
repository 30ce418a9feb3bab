// Bank statement generators for the parser tests: the same rows as CSV (UTF-8 or GBK),
// .xlsx (exceljs) and .xls (a minimal BIFF8 writer in a compound file, written here
// independently of the reader: SST split over CONTINUE records, LABELSST, LABEL,
// NUMBER, MULRK, FORMULA with cached results).
import ExcelJS from 'exceljs';
import iconv from 'iconv-lite';

export interface BankRow {
  date: string;
  time: string;
  serialNo: string;
  direction: 'debit' | 'credit';
  amountFen: bigint;
  balanceFen: bigint;
  counterpartyName: string;
  counterpartyAccount: string;
  counterpartyBank: string;
  summary: string;
  remark: string;
}

export const BANK_HEADER = ['交易日期', '交易时间', '交易流水号', '借方发生额（元）', '贷方发生额（元）', '余额', '对方户名', '对方账号', '对方开户行', '摘要', '附言'];

export const yuan = (fen: bigint) => `${fen < 0n ? '-' : ''}${(fen < 0n ? -fen : fen) / 100n}.${((fen < 0n ? -fen : fen) % 100n).toString().padStart(2, '0')}`;

export function totalsOf(rows: BankRow[]) {
  return {
    debitFen: rows.filter((r) => r.direction === 'debit').reduce((a, r) => a + r.amountFen, 0n),
    creditFen: rows.filter((r) => r.direction === 'credit').reduce((a, r) => a + r.amountFen, 0n),
  };
}

/** The rows as text cells, with title lines above the header and a 合计 row below. */
export function bankTextRows(rows: BankRow[], options: { header?: string[]; summary?: boolean } = {}): string[][] {
  const { debitFen, creditFen } = totalsOf(rows);
  const out: string[][] = [['账户明细查询'], ['账号：', '6222020200112233445', '户名：', '某市住房资金监管专户'], [], options.header ?? BANK_HEADER];
  for (const r of rows) {
    out.push([r.date, r.time, r.serialNo, r.direction === 'debit' ? yuan(r.amountFen) : '', r.direction === 'credit' ? yuan(r.amountFen) : '',
      yuan(r.balanceFen), r.counterpartyName, r.counterpartyAccount, r.counterpartyBank, r.summary, r.remark]);
  }
  if (options.summary ?? true) out.push(['合计', '', '', yuan(debitFen), yuan(creditFen), '', '', '', '', '', '']);
  return out;
}

const csvCell = (text: string) => (/[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);

export function bankCsv(rows: string[][], encoding: 'utf8' | 'utf8bom' | 'gbk'): Buffer {
  const text = rows.map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
  if (encoding === 'gbk') return iconv.encode(text, 'gbk');
  return Buffer.from((encoding === 'utf8bom' ? '\uFEFF' : '') + text, 'utf8');
}

export async function bankXlsx(rows: BankRow[]): Promise<Buffer> {
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('明细');
  sheet.addRow(['账户明细查询']);
  sheet.addRow([]);
  sheet.addRow(BANK_HEADER);
  for (const r of rows) {
    const row = sheet.addRow([new Date(`${r.date}T00:00:00Z`), r.time, r.serialNo, r.direction === 'debit' ? Number(yuan(r.amountFen)) : null,
      r.direction === 'credit' ? Number(yuan(r.amountFen)) : null, Number(yuan(r.balanceFen)), r.counterpartyName, r.counterpartyAccount, r.counterpartyBank, r.summary, r.remark]);
    row.getCell(1).numFmt = 'yyyy-mm-dd';
  }
  const { debitFen, creditFen } = totalsOf(rows);
  const last = rows.length + 3;
  sheet.addRow(['合计', null, null, { formula: `SUM(D4:D${last})`, result: Number(yuan(debitFen)) }, { formula: `SUM(E4:E${last})`, result: Number(yuan(creditFen)) }]);
  return Buffer.from(await workbook.xlsx.writeBuffer());
}

// --- a minimal BIFF8 writer ----------------------------------------------------------

function record(type: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(type, 0);
  head.writeUInt16LE(data.length, 2);
  return Buffer.concat([head, data]);
}

const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };
const f64 = (n: number) => { const b = Buffer.alloc(8); b.writeDoubleLE(n); return b; };
const wide = (s: string) => /[^\x00-\xff]/.test(s);
const charsOf = (s: string, w: boolean) => (w ? Buffer.from(s, 'utf16le') : Buffer.from(s, 'latin1'));

/** SST with CONTINUE records: a string's header never splits; its characters may, with a flags byte in front of the rest. */
function sstRecords(strings: string[], total: number): Buffer[] {
  const LIMIT = 8224;
  const out: Buffer[] = [];
  let type = 0x00fc;
  let current: Buffer[] = [u32(total), u32(strings.length)];
  let size = 8;
  const close = () => {
    out.push(record(type, Buffer.concat(current)));
    type = 0x003c;
    current = [];
    size = 0;
  };
  for (const s of strings) {
    const w = wide(s);
    if (size + 3 + (w ? 2 : 1) > LIMIT) close();
    current.push(u16(s.length), Buffer.from([w ? 1 : 0]));
    size += 3;
    let rest = s;
    for (let guard = 0; rest.length > 0 && guard < 1000; guard += 1) {
      const width = w ? 2 : 1;
      const fit = Math.floor((LIMIT - size) / width);
      if (fit === 0) {
        close();
        current.push(Buffer.from([w ? 1 : 0]));
        size = 1;
        continue;
      }
      const part = rest.slice(0, fit);
      current.push(charsOf(part, w));
      size += part.length * width;
      rest = rest.slice(part.length);
    }
  }
  close();
  return out;
}

const bof = (dt: number) => record(0x0809, Buffer.concat([u16(0x0600), u16(dt), u16(0x0dbb), u16(0x07cc), u32(0), u32(0x06)]));
const EOF_RECORD = record(0x000a, Buffer.alloc(0));
const cellHead = (row: number, col: number) => Buffer.concat([u16(row), u16(col), u16(0x0f)]);
const rkOf = (value: number): number | null => {
  const x100 = Math.round(value * 100);
  if (Math.abs(value * 100 - x100) > 1e-6 || Math.abs(x100) >= 2 ** 29) return null;
  return ((x100 << 2) | 3) >>> 0;
};

/** A BIFF8 workbook of one sheet; string cells go through the SST except column 10 (LABEL). */
export function bankXls(rows: BankRow[], options: { mini?: boolean } = {}): Buffer {
  const strings: string[] = [];
  const index = new Map<string, number>();
  let refs = 0;
  const sst = (s: string) => {
    refs += 1;
    if (!index.has(s)) {
      index.set(s, strings.length);
      strings.push(s);
    }
    return index.get(s) as number;
  };
  const cells: Buffer[] = [];
  const label = (row: number, col: number, s: string) => { if (s !== '') cells.push(record(0x00fd, Buffer.concat([cellHead(row, col), u32(sst(s))]))); };
  const inline = (row: number, col: number, s: string) => { if (s !== '') cells.push(record(0x0204, Buffer.concat([cellHead(row, col), u16(s.length), Buffer.from([wide(s) ? 1 : 0]), charsOf(s, wide(s))]))); };
  const number = (row: number, col: number, n: number) => cells.push(record(0x0203, Buffer.concat([cellHead(row, col), f64(n)])));
  label(0, 0, '账户明细查询');
  BANK_HEADER.forEach((h, col) => label(2, col, h));
  rows.forEach((r, i) => {
    const row = 3 + i;
    const serial = (Date.parse(`${r.date}T00:00:00Z`) - Date.UTC(1899, 11, 30)) / 86_400_000;
    number(row, 0, serial);
    label(row, 1, r.time);
    label(row, 2, r.serialNo);
    const amounts = [r.direction === 'debit' ? Number(yuan(r.amountFen)) : 0, r.direction === 'credit' ? Number(yuan(r.amountFen)) : 0, Number(yuan(r.balanceFen))];
    const rks = amounts.map(rkOf);
    if (rks.every((rk) => rk !== null)) {
      cells.push(record(0x00bd, Buffer.concat([u16(row), u16(3), ...rks.flatMap((rk) => [u16(0x0f), u32(rk as number)]), u16(5)])));
    } else amounts.forEach((a, k) => number(row, 3 + k, a));
    label(row, 6, r.counterpartyName);
    label(row, 7, r.counterpartyAccount);
    label(row, 8, r.counterpartyBank);
    label(row, 9, r.summary);
    inline(row, 10, r.remark);
  });
  const { debitFen, creditFen } = totalsOf(rows);
  const sumRow = 3 + rows.length;
  label(sumRow, 0, '合计');
  for (const [col, fen] of [[3, debitFen], [4, creditFen]] as const) {
    // FORMULA: cached number, options, chn, then an (ignored) formula expression
    cells.push(record(0x0006, Buffer.concat([cellHead(sumRow, col), f64(Number(yuan(fen))), u16(0), u32(0), u16(0)])));
  }
  const sheetName = 'Sheet1';
  const boundsheet = (at: number) => record(0x0085, Buffer.concat([u32(at), Buffer.from([0, 0, sheetName.length, 0]), Buffer.from(sheetName, 'latin1')]));
  const globalsWithout = Buffer.concat([bof(0x0005), boundsheet(0), ...sstRecords(strings, refs), EOF_RECORD]);
  const globals = Buffer.concat([bof(0x0005), boundsheet(globalsWithout.length), ...sstRecords(strings, refs), EOF_RECORD]);
  let stream = Buffer.concat([globals, bof(0x0010), ...cells, EOF_RECORD]);
  if (options.mini) {
    if (stream.length >= 4096) throw new Error('too many rows for a mini-stream workbook');
    return miniCompoundFile(stream);
  }
  if (stream.length < 4096) stream = Buffer.concat([stream, Buffer.alloc(4096 - stream.length)]);
  return compoundFile(stream);
}

const ENDOFCHAIN = 0xfffffffe;
const FREESECT = 0xffffffff;

function cfbHeader(fatSectors: number, dirSector: number, miniFatStart: number, miniFatSectors: number): Buffer {
  const header = Buffer.alloc(512);
  Buffer.from('d0cf11e0a1b11ae1', 'hex').copy(header, 0);
  header.writeUInt16LE(0x003e, 0x18);
  header.writeUInt16LE(3, 0x1a);
  header.writeUInt16LE(0xfffe, 0x1c);
  header.writeUInt16LE(9, 0x1e);
  header.writeUInt16LE(6, 0x20);
  header.writeUInt32LE(fatSectors, 0x2c);
  header.writeUInt32LE(dirSector, 0x30);
  header.writeUInt32LE(4096, 0x38);
  header.writeUInt32LE(miniFatStart, 0x3c);
  header.writeUInt32LE(miniFatSectors, 0x40);
  header.writeUInt32LE(ENDOFCHAIN, 0x44);
  for (let i = 0; i < 109; i += 1) header.writeUInt32LE(i < fatSectors ? i : FREESECT, 0x4c + i * 4);
  return header;
}

function dirEntry(name: string, type: number, start: number, size: number, child: number): Buffer {
  const e = Buffer.alloc(128);
  if (name) {
    Buffer.from(name + '\0', 'utf16le').copy(e, 0);
    e.writeUInt16LE((name.length + 1) * 2, 0x40);
  }
  e[0x42] = type;
  e[0x43] = 1;
  e.writeUInt32LE(FREESECT, 0x44);
  e.writeUInt32LE(FREESECT, 0x48);
  e.writeUInt32LE(child, 0x4c);
  e.writeUInt32LE(start, 0x74);
  e.writeUInt32LE(size, 0x78);
  return e;
}

/** A compound file whose small Workbook stream (< 4096 bytes) lives in the mini stream (64-byte sectors, mini FAT). */
export function miniCompoundFile(workbook: Buffer): Buffer {
  const miniSectors = Math.ceil(workbook.length / 64);
  const ministream = Buffer.concat([workbook, Buffer.alloc(miniSectors * 64 - workbook.length)]);
  const streamSectors = Math.ceil(ministream.length / 512);
  // sectors: 0 FAT, 1 directory, 2 mini FAT, 3… the mini stream (the root entry's stream)
  const fat = Buffer.alloc(512, 0xff);
  fat.writeUInt32LE(0xfffffffd, 0);
  fat.writeUInt32LE(ENDOFCHAIN, 4);
  fat.writeUInt32LE(ENDOFCHAIN, 8);
  for (let i = 0; i < streamSectors; i += 1) fat.writeUInt32LE(i === streamSectors - 1 ? ENDOFCHAIN : 3 + i + 1, (3 + i) * 4);
  const miniFat = Buffer.alloc(512, 0xff);
  for (let i = 0; i < miniSectors; i += 1) miniFat.writeUInt32LE(i === miniSectors - 1 ? ENDOFCHAIN : i + 1, i * 4);
  const directory = Buffer.concat([dirEntry('Root Entry', 5, 3, ministream.length, 1), dirEntry('Workbook', 2, 0, workbook.length, FREESECT),
    dirEntry('', 0, 0, 0, FREESECT), dirEntry('', 0, 0, 0, FREESECT)]);
  const body = Buffer.concat([ministream, Buffer.alloc(streamSectors * 512 - ministream.length)]);
  return Buffer.concat([cfbHeader(1, 1, 2, 1), fat, directory, miniFat, body]);
}

/** A version 3 compound file (512-byte sectors) holding one stream, "Workbook". */
export function compoundFile(workbook: Buffer): Buffer {
  const SECTOR = 512;
  const wbSectors = Math.ceil(workbook.length / SECTOR);
  let fatSectors = 1;
  while (fatSectors * 128 < fatSectors + 1 + wbSectors) fatSectors += 1;
  if (fatSectors > 109) throw new Error('workbook too large for this writer');
  const dirSector = fatSectors;
  const wbStart = fatSectors + 1;
  const fat = new Uint32Array(fatSectors * 128).fill(0xffffffff);
  for (let i = 0; i < fatSectors; i += 1) fat[i] = 0xfffffffd;
  fat[dirSector] = 0xfffffffe;
  for (let i = 0; i < wbSectors; i += 1) fat[wbStart + i] = i === wbSectors - 1 ? 0xfffffffe : wbStart + i + 1;
  const header = cfbHeader(fatSectors, dirSector, ENDOFCHAIN, 0);
  const directory = Buffer.concat([dirEntry('Root Entry', 5, ENDOFCHAIN, 0, 1), dirEntry('Workbook', 2, wbStart, workbook.length, FREESECT), dirEntry('', 0, 0, 0, FREESECT), dirEntry('', 0, 0, 0, FREESECT)]);
  const fatBytes = Buffer.alloc(fatSectors * SECTOR);
  fat.forEach((v, i) => fatBytes.writeUInt32LE(v, i * 4));
  const body = Buffer.concat([workbook, Buffer.alloc(wbSectors * SECTOR - workbook.length)]);
  return Buffer.concat([header, fatBytes, directory, body]);
}
