// A small reader for Excel 97–2003 workbooks (.xls, BIFF8), enough for bank
// statements: the Compound File Binary container (header, DIFAT, FAT, directory,
// mini stream) and, in its Workbook stream, the records that carry cell values of the
// first worksheet — SST (+CONTINUE), LABELSST, LABEL, NUMBER, RK, MULRK, BOOLERR and
// FORMULA's cached result (+STRING). Everything else (formats, styles, charts, macros)
// is skipped, nothing is evaluated, and values never become object keys — the class of
// bug behind SheetJS's CVE-2023-30533 has nowhere to happen. Every chain, loop and
// size is bounded; a malformed file is an XlsInvalid error.
import type { Cell } from './bank.ts';

export class XlsInvalid extends Error {
  readonly truncated: boolean;
  constructor(message: string, truncated = false) {
    super(message);
    this.name = 'XlsInvalid';
    this.truncated = truncated;
  }
}

const SIGNATURE = Buffer.from('d0cf11e0a1b11ae1', 'hex');
const ENDOFCHAIN = 0xfffffffe;
const FREESECT = 0xffffffff;
const HEADER_DIFAT_ENTRIES = 109;
const CELLS_MAX = 10_000_000;
const COLUMNS_MAX = 256;
const STRINGS_MAX = 5_000_000;

// --- Compound File Binary (MS-CFB) ------------------------------------------------

/** Follows a FAT chain; bounded by the number of sectors so a loop cannot hang us. */
function chain(next: (sector: number) => number, start: number, limit: number, what: string): number[] {
  const sectors: number[] = [];
  for (let s = start; s !== ENDOFCHAIN; s = next(s)) {
    if (s === FREESECT || s >= limit) throw new XlsInvalid(`${what}: broken sector chain (sector ${s})`, s !== FREESECT);
    if (sectors.length >= limit) throw new XlsInvalid(`${what}: sector chain loops`);
    sectors.push(s);
  }
  return sectors;
}

function readCfbStream(data: Buffer, wanted: string[]): Buffer {
  if (data.length < 512) throw new XlsInvalid('shorter than a compound file header', true);
  if (!data.subarray(0, 8).equals(SIGNATURE)) throw new XlsInvalid('not an Excel 97–2003 file (no compound file signature)');
  const shift = data.readUInt16LE(0x1e);
  if (shift !== 9 && shift !== 12) throw new XlsInvalid(`sector size 2^${shift} is not valid`);
  const sectorSize = 1 << shift;
  const sectorCount = Math.floor((data.length - sectorSize) / sectorSize) + (data.length % sectorSize === 0 ? 0 : 1);
  const readSector = (sector: number): Buffer => {
    const at = (sector + 1) * sectorSize;
    if (at + sectorSize > data.length) {
      if (at < data.length) return Buffer.concat([data.subarray(at), Buffer.alloc(at + sectorSize - data.length)]);
      throw new XlsInvalid(`sector ${sector} lies past the end of the file`, true);
    }
    return data.subarray(at, at + sectorSize);
  };
  // DIFAT: 109 entries in the header, then chained DIFAT sectors.
  const fatSectorCount = data.readUInt32LE(0x2c);
  if (fatSectorCount > sectorCount) throw new XlsInvalid('more FAT sectors than the file holds', true);
  const fatSectors: number[] = [];
  for (let i = 0; i < HEADER_DIFAT_ENTRIES && fatSectors.length < fatSectorCount; i += 1) fatSectors.push(data.readUInt32LE(0x4c + i * 4));
  let difat = data.readUInt32LE(0x44);
  for (let hops = 0; fatSectors.length < fatSectorCount; hops += 1) {
    if (difat === ENDOFCHAIN || difat === FREESECT || hops > sectorCount) throw new XlsInvalid('the DIFAT chain ends early', true);
    const sector = readSector(difat);
    const per = sectorSize / 4 - 1;
    for (let i = 0; i < per && fatSectors.length < fatSectorCount; i += 1) fatSectors.push(sector.readUInt32LE(i * 4));
    difat = sector.readUInt32LE(per * 4);
  }
  const fat = new Uint32Array(fatSectorCount * (sectorSize / 4));
  fatSectors.forEach((s, i) => {
    const sector = readSector(s);
    for (let k = 0; k < sectorSize / 4; k += 1) fat[i * (sectorSize / 4) + k] = sector.readUInt32LE(k * 4);
  });
  const limit = Math.min(fat.length, sectorCount);
  const nextFat = (s: number) => fat[s];
  const readChain = (start: number, size: number, what: string): Buffer => {
    const sectors = chain(nextFat, start, limit, what);
    const out = Buffer.concat(sectors.map(readSector));
    if (out.length < size) throw new XlsInvalid(`${what}: stream shorter than its size`, true);
    return out.subarray(0, size);
  };
  // Directory.
  const directory = Buffer.concat(chain(nextFat, data.readUInt32LE(0x30), limit, 'directory').map(readSector));
  const entries: Array<{ name: string; type: number; start: number; size: number }> = [];
  for (let at = 0; at + 128 <= directory.length; at += 128) {
    const nameBytes = Math.min(64, directory.readUInt16LE(at + 0x40));
    const name = directory.subarray(at, at + Math.max(0, nameBytes - 2)).toString('utf16le');
    const sizeHigh = shift === 12 ? directory.readUInt32LE(at + 0x7c) : 0;
    if (sizeHigh !== 0) throw new XlsInvalid('a stream larger than 4 GiB');
    entries.push({ name, type: directory[at + 0x42], start: directory.readUInt32LE(at + 0x74), size: directory.readUInt32LE(at + 0x78) });
  }
  const root = entries.find((e) => e.type === 5);
  if (!root) throw new XlsInvalid('no root entry in the compound file');
  const entry = entries.find((e) => e.type === 2 && wanted.includes(e.name));
  if (!entry) {
    if (entries.some((e) => e.name === 'Book')) throw new XlsInvalid('an Excel 5/95 workbook (BIFF5): save it as .xls 97–2003 or .xlsx');
    if (entries.some((e) => e.name === 'EncryptionInfo')) throw new XlsInvalid('an encrypted workbook: remove the password or configure decryption');
    throw new XlsInvalid(`no Workbook stream (the file holds ${entries.filter((e) => e.type === 2).map((e) => e.name).join(', ') || 'no streams'})`);
  }
  if (entry.size > data.length * 2 + 4096) throw new XlsInvalid('the Workbook stream claims more bytes than the file has', true);
  const cutoff = data.readUInt32LE(0x38) || 4096;
  if (entry.size >= cutoff) return readChain(entry.start, entry.size, 'Workbook');
  // Small streams live in the mini stream, 64-byte sectors chained by the mini FAT.
  const miniStream = readChain(root.start, root.size, 'mini stream');
  const miniFatStart = data.readUInt32LE(0x3c);
  const miniFatBytes = miniFatStart === ENDOFCHAIN ? Buffer.alloc(0) : Buffer.concat(chain(nextFat, miniFatStart, limit, 'mini FAT').map(readSector));
  const miniSize = 1 << data.readUInt16LE(0x20);
  const miniCount = Math.floor(miniFatBytes.length / 4);
  const miniSectors = chain((s) => miniFatBytes.readUInt32LE(s * 4), entry.start, Math.min(miniCount, Math.ceil(miniStream.length / miniSize)), 'Workbook (mini)');
  const out = Buffer.concat(miniSectors.map((s) => miniStream.subarray(s * miniSize, (s + 1) * miniSize)));
  if (out.length < entry.size) throw new XlsInvalid('Workbook (mini): stream shorter than its size', true);
  return out.subarray(0, entry.size);
}

// --- BIFF8 records -------------------------------------------------------------------

const BOF = 0x0809;
const EOF = 0x000a;
const BOUNDSHEET = 0x0085;
const SST = 0x00fc;
const CONTINUE = 0x003c;
const FILEPASS = 0x002f;
const LABELSST = 0x00fd;
const LABEL = 0x0204;
const NUMBER = 0x0203;
const RK = 0x027e;
const MULRK = 0x00bd;
const BOOLERR = 0x0205;
const FORMULA = 0x0006;
const STRING = 0x0207;

interface BiffRecord {
  type: number;
  /** Offset of the record header in the stream. */
  at: number;
  data: Buffer;
}

function* records(stream: Buffer, from: number): Generator<BiffRecord> {
  let at = from;
  while (at + 4 <= stream.length) {
    const type = stream.readUInt16LE(at);
    const size = stream.readUInt16LE(at + 2);
    if (at + 4 + size > stream.length) throw new XlsInvalid(`record 0x${type.toString(16)} at ${at} runs past the end`, true);
    yield { type, at, data: stream.subarray(at + 4, at + 4 + size) };
    at += 4 + size;
  }
}

/** Reads across a record and its CONTINUE records; a string's characters that cross into a CONTINUE restart with a flags byte. */
class Segments {
  private readonly parts: Buffer[];
  private part = 0;
  private at = 0;
  constructor(parts: Buffer[]) {
    this.parts = parts;
  }
  private ensure(): void {
    while (this.part < this.parts.length && this.at >= this.parts[this.part].length) {
      this.part += 1;
      this.at = 0;
    }
    if (this.part >= this.parts.length) throw new XlsInvalid('a string runs past the end of its record', true);
  }
  u8(): number {
    this.ensure();
    return this.parts[this.part][this.at++];
  }
  u16(): number {
    return this.u8() | (this.u8() << 8);
  }
  u32(): number {
    return (this.u16() | (this.u16() << 16)) >>> 0;
  }
  skip(bytes: number): void {
    for (let left = bytes; left > 0;) {
      this.ensure();
      const take = Math.min(left, this.parts[this.part].length - this.at);
      this.at += take;
      left -= take;
    }
  }
  chars(count: number, highByte: boolean): string {
    let out = '';
    let wide = highByte;
    for (let left = count; left > 0;) {
      if (this.at >= (this.parts[this.part]?.length ?? 0)) {
        this.part += 1;
        this.at = 0;
        if (this.part >= this.parts.length) throw new XlsInvalid('a string runs past the end of its record', true);
        wide = (this.parts[this.part][this.at++] & 1) === 1; // the flags byte of the continuation
      }
      const buf = this.parts[this.part];
      const width = wide ? 2 : 1;
      const take = Math.min(left, Math.floor((buf.length - this.at) / width));
      if (take === 0) throw new XlsInvalid('a character split across records');
      const bytes = buf.subarray(this.at, this.at + take * width);
      out += wide ? bytes.toString('utf16le') : bytes.toString('latin1');
      this.at += take * width;
      left -= take;
    }
    return out;
  }
  /** XLUnicodeRichExtendedString (SST entries). */
  richString(): string {
    const count = this.u16();
    const flags = this.u8();
    const runs = flags & 0x08 ? this.u16() : 0;
    const ext = flags & 0x04 ? this.u32() : 0;
    const text = this.chars(count, (flags & 1) === 1);
    this.skip(runs * 4 + ext);
    return text;
  }
}

function unicodeString(data: Buffer, at: number): string {
  if (at + 3 > data.length) throw new XlsInvalid('a string record is cut short', true);
  const count = data.readUInt16LE(at);
  const wide = (data[at + 2] & 1) === 1;
  const end = at + 3 + count * (wide ? 2 : 1);
  if (end > data.length) throw new XlsInvalid('a string record is cut short', true);
  return wide ? data.subarray(at + 3, end).toString('utf16le') : data.subarray(at + 3, end).toString('latin1');
}

function rkValue(rk: number): number {
  let value: number;
  if (rk & 0x02) value = (rk | 0) >> 2;
  else {
    const buf = Buffer.alloc(8);
    buf.writeUInt32LE(0, 0);
    buf.writeUInt32LE((rk & 0xfffffffc) >>> 0, 4);
    value = buf.readDoubleLE(0);
  }
  return rk & 0x01 ? value / 100 : value;
}

/** The first worksheet's non-empty rows, in row order, as cells. */
export function readXlsRows(file: Buffer): Array<{ rowNo: number; cells: Cell[] }> {
  const stream = readCfbStream(file, ['Workbook', 'WORKBOOK', 'workbook']);
  const strings: string[] = [];
  let sheetAt = -1;
  let first = true;
  const globals = records(stream, 0);
  for (const record of globals) {
    if (first) {
      if (record.type !== BOF || record.data.length < 4 || record.data.readUInt16LE(0) !== 0x0600) throw new XlsInvalid('not a BIFF8 workbook (Excel 97–2003)');
      first = false;
      continue;
    }
    if (record.type === FILEPASS) throw new XlsInvalid('the workbook is password-protected');
    if (record.type === BOUNDSHEET && sheetAt < 0 && record.data.length >= 6 && record.data[5] === 0) sheetAt = record.data.readUInt32LE(0);
    if (record.type === SST) {
      const parts = [record.data];
      let next = record.at + 4 + record.data.length;
      while (next + 4 <= stream.length && stream.readUInt16LE(next) === CONTINUE) {
        const size = stream.readUInt16LE(next + 2);
        parts.push(stream.subarray(next + 4, next + 4 + size));
        next += 4 + size;
      }
      const reader = new Segments(parts);
      reader.u32(); // total references
      const unique = reader.u32();
      if (unique > STRINGS_MAX) throw new XlsInvalid(`${unique} shared strings: more than ${STRINGS_MAX}`);
      for (let i = 0; i < unique; i += 1) strings.push(reader.richString());
    }
    if (record.type === EOF) break;
  }
  if (first) throw new XlsInvalid('the Workbook stream is empty', true);
  if (sheetAt < 0 || sheetAt >= stream.length) throw new XlsInvalid('no worksheet in the workbook');
  const rows = new Map<number, Cell[]>();
  let cells = 0;
  const put = (row: number, col: number, value: Cell) => {
    if (col >= COLUMNS_MAX) throw new XlsInvalid(`column ${col} is beyond BIFF8's ${COLUMNS_MAX}`);
    if (++cells > CELLS_MAX) throw new XlsInvalid(`more than ${CELLS_MAX} cells`);
    let cellsOfRow = rows.get(row);
    if (!cellsOfRow) {
      cellsOfRow = [];
      rows.set(row, cellsOfRow);
    }
    cellsOfRow[col] = value;
  };
  let sheetBof = true;
  let formulaAt: { row: number; col: number } | null = null;
  let ended = false;
  for (const { type, data } of records(stream, sheetAt)) {
    if (sheetBof) {
      if (type !== BOF || data.length < 4 || data.readUInt16LE(2) !== 0x0010) throw new XlsInvalid('the first sheet does not start with a worksheet BOF');
      sheetBof = false;
      continue;
    }
    if (type === EOF) {
      ended = true;
      break;
    }
    if (type !== STRING) formulaAt = null;
    if ([LABELSST, LABEL, NUMBER, RK, MULRK, BOOLERR, FORMULA].includes(type) && data.length < 6) throw new XlsInvalid(`cell record 0x${type.toString(16)} is cut short`, true);
    switch (type) {
      case LABELSST: {
        if (data.length < 10) throw new XlsInvalid('LABELSST is cut short', true);
        const index = data.readUInt32LE(6);
        if (index >= strings.length) throw new XlsInvalid(`shared string ${index} does not exist (the table has ${strings.length})`);
        put(data.readUInt16LE(0), data.readUInt16LE(2), strings[index]);
        break;
      }
      case LABEL:
        put(data.readUInt16LE(0), data.readUInt16LE(2), unicodeString(data, 6));
        break;
      case NUMBER:
        if (data.length < 14) throw new XlsInvalid('NUMBER is cut short', true);
        put(data.readUInt16LE(0), data.readUInt16LE(2), data.readDoubleLE(6));
        break;
      case RK:
        if (data.length < 10) throw new XlsInvalid('RK is cut short', true);
        put(data.readUInt16LE(0), data.readUInt16LE(2), rkValue(data.readUInt32LE(6)));
        break;
      case MULRK: {
        const row = data.readUInt16LE(0);
        const firstCol = data.readUInt16LE(2);
        const count = (data.length - 6) / 6;
        if (!Number.isInteger(count) || data.readUInt16LE(data.length - 2) !== firstCol + count - 1) throw new XlsInvalid('MULRK is malformed');
        for (let i = 0; i < count; i += 1) put(row, firstCol + i, rkValue(data.readUInt32LE(4 + i * 6 + 2)));
        break;
      }
      case BOOLERR:
        if (data.length < 8) throw new XlsInvalid('BOOLERR is cut short', true);
        put(data.readUInt16LE(0), data.readUInt16LE(2), data[7] === 0 ? data[6] === 1 : null);
        break;
      case FORMULA: {
        if (data.length < 14) throw new XlsInvalid('FORMULA is cut short', true);
        const row = data.readUInt16LE(0);
        const col = data.readUInt16LE(2);
        if (data.readUInt16LE(12) !== 0xffff) put(row, col, data.readDoubleLE(6));
        else if (data[6] === 0) formulaAt = { row, col }; // the text follows in a STRING record
        else if (data[6] === 1) put(row, col, data[8] === 1);
        else if (data[6] === 3) put(row, col, '');
        break;
      }
      case STRING:
        if (formulaAt) put(formulaAt.row, formulaAt.col, unicodeString(data, 0));
        formulaAt = null;
        break;
      default:
        break;
    }
  }
  if (!ended) throw new XlsInvalid('the worksheet has no end (EOF record): the file is cut short', true);
  return [...rows.entries()].sort((a, b) => a[0] - b[0]).map(([row, values]) => ({ rowNo: row + 1, cells: Array.from(values, (v) => v ?? null) }));
}
