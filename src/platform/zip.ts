// A minimal zip writer and reader (stored or deflate, no zip64, no encryption, one
// disk): enough to produce and read channel statement archives such as Alipay's,
// whose entry names are GBK bytes (no UTF-8 flag). Names are kept as raw bytes: the
// caller decodes them (GBK, or UTF-8 when the flag is set).
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  /** The entry name as raw bytes (GBK for Alipay; UTF-8 sets the UTF-8 flag). */
  name: Buffer;
  utf8Name?: boolean;
  data: Buffer;
}

const ENTRIES_MAX = 1000;

export function writeZip(entries: ZipEntry[], date: Date = new Date()): Buffer {
  if (entries.length > ENTRIES_MAX) throw new Error('too many zip entries');
  const dosTime = ((date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1)) & 0xffff;
  const dosDate = (((date.getFullYear() - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate()) & 0xffff;
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const compressed = deflateRawSync(entry.data);
    const crc = crc32(entry.data);
    const flags = entry.utf8Name ? 0x0800 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt16LE(dosTime, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(entry.data.length, 22);
    local.writeUInt16LE(entry.name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, entry.name, compressed);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(dosTime, 12);
    central.writeUInt16LE(dosDate, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(entry.data.length, 24);
    central.writeUInt16LE(entry.name.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, entry.name);
    offset += 30 + entry.name.length + compressed.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}

// --- reader -------------------------------------------------------------------------
//
// The reader trusts the central directory (as unzip does), not a scan of local headers:
// it finds the end-of-central-directory record (EOCD) at the end of the file, walks the
// central directory it points to, and for each entry checks the local header, inflates
// the data and checks its size and CRC-32. Every problem throws a ZipError with a stable
// `code`; nothing is returned unless every entry was read and verified.
//
// Bounds, checked before any data is inflated: the number of entries, and the sum of
// the uncompressed sizes the central directory declares. Inflation is capped at the
// declared size of each entry, so a zip bomb cannot allocate more than the limit.

export type ZipErrorCode =
  /** The input ends early: no EOCD record, or a record or entry runs past the end. */
  | 'ZIP_TRUNCATED'
  /** Structurally wrong: a bad signature, inconsistent sizes or names, bad deflate data. */
  | 'ZIP_CORRUPT'
  /** An entry's data does not match its CRC-32. */
  | 'ZIP_CRC_MISMATCH'
  /** zip64, multi-disk, encrypted, or a compression method other than stored/deflate. */
  | 'ZIP_UNSUPPORTED'
  /** More entries or more uncompressed bytes than the limits allow. */
  | 'ZIP_TOO_LARGE';

export class ZipError extends Error {
  readonly code: ZipErrorCode;
  constructor(code: ZipErrorCode, message: string) {
    super(`zip: ${message}`);
    this.name = 'ZipError';
    this.code = code;
  }
}

export interface ZipReadLimits {
  /** Most entries accepted (default 1000). */
  entriesMax?: number;
  /** Most uncompressed bytes accepted, summed over all entries (default 1 GiB). */
  uncompressedBytesMax?: number;
}

/** An entry as read: `utf8Name` is always set (general-purpose flag bit 11). */
export interface ReadZipEntry extends ZipEntry {
  utf8Name: boolean;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const COMMENT_MAX = 0xffff;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const READ_ENTRIES_MAX = 1000;
const READ_BYTES_MAX = 1024 ** 3;

/** Finds the EOCD record: the last signature whose comment length reaches exactly to the end. */
function findEocd(buf: Buffer): number {
  const lowest = Math.max(0, buf.length - EOCD_SIZE - COMMENT_MAX);
  for (let pos = buf.length - EOCD_SIZE; pos >= lowest; pos -= 1) {
    if (buf.readUInt32LE(pos) === SIG_EOCD && pos + EOCD_SIZE + buf.readUInt16LE(pos + 20) === buf.length) return pos;
  }
  return -1;
}

/** Reads every entry of a zip archive, verified, or throws a ZipError. */
export function readZip(buffer: Buffer, limits: ZipReadLimits = {}): ReadZipEntry[] {
  const entriesMax = limits.entriesMax ?? READ_ENTRIES_MAX;
  const bytesMax = limits.uncompressedBytesMax ?? READ_BYTES_MAX;

  // 1. The end-of-central-directory record.
  const eocd = buffer.length >= EOCD_SIZE ? findEocd(buffer) : -1;
  if (eocd < 0) {
    const looksLikeZip = buffer.length >= 4 && buffer.readUInt32LE(0) === SIG_LOCAL;
    if (looksLikeZip || buffer.length < EOCD_SIZE) throw new ZipError('ZIP_TRUNCATED', 'no end-of-central-directory record (the archive is cut short)');
    throw new ZipError('ZIP_CORRUPT', 'no end-of-central-directory record (not a zip archive)');
  }
  if (eocd >= 20 && buffer.readUInt32LE(eocd - 20) === SIG_ZIP64_LOCATOR) throw new ZipError('ZIP_UNSUPPORTED', 'zip64 archives are not supported');
  const disk = buffer.readUInt16LE(eocd + 4);
  const cdDisk = buffer.readUInt16LE(eocd + 6);
  const entriesOnDisk = buffer.readUInt16LE(eocd + 8);
  const entryCount = buffer.readUInt16LE(eocd + 10);
  const cdSize = buffer.readUInt32LE(eocd + 12);
  const cdOffset = buffer.readUInt32LE(eocd + 16);
  if (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== entryCount) throw new ZipError('ZIP_UNSUPPORTED', 'multi-disk archives are not supported');
  if (entryCount === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) throw new ZipError('ZIP_UNSUPPORTED', 'zip64 archives are not supported');
  if (entryCount > entriesMax) throw new ZipError('ZIP_TOO_LARGE', `${entryCount} entries, more than the limit of ${entriesMax}`);
  const cdEnd = cdOffset + cdSize;
  if (cdEnd > eocd) throw new ZipError(cdEnd > buffer.length ? 'ZIP_TRUNCATED' : 'ZIP_CORRUPT', 'the central directory overruns the end record');

  // 2. The central directory: names, methods, sizes and CRCs, before touching any data.
  interface Header { name: Buffer; flags: number; method: number; crc: number; compressed: number; size: number; local: number }
  const headers: Header[] = [];
  let total = 0;
  let pos = cdOffset;
  for (let i = 0; i < entryCount; i += 1) {
    if (pos + CENTRAL_SIZE > cdEnd) throw new ZipError('ZIP_CORRUPT', `central directory entry ${i} runs past the directory`);
    if (buffer.readUInt32LE(pos) !== SIG_CENTRAL) throw new ZipError('ZIP_CORRUPT', `central directory entry ${i} has a bad signature`);
    const flags = buffer.readUInt16LE(pos + 8);
    const method = buffer.readUInt16LE(pos + 10);
    const crc = buffer.readUInt32LE(pos + 16);
    const compressed = buffer.readUInt32LE(pos + 20);
    const size = buffer.readUInt32LE(pos + 24);
    const nameLength = buffer.readUInt16LE(pos + 28);
    const variable = nameLength + buffer.readUInt16LE(pos + 30) + buffer.readUInt16LE(pos + 32);
    const local = buffer.readUInt32LE(pos + 42);
    if (pos + CENTRAL_SIZE + variable > cdEnd) throw new ZipError('ZIP_CORRUPT', `central directory entry ${i} runs past the directory`);
    if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) throw new ZipError('ZIP_UNSUPPORTED', `entry ${i} is encrypted`);
    if (method !== METHOD_STORED && method !== METHOD_DEFLATE) throw new ZipError('ZIP_UNSUPPORTED', `entry ${i} uses compression method ${method}`);
    if (compressed === 0xffffffff || size === 0xffffffff || local === 0xffffffff) throw new ZipError('ZIP_UNSUPPORTED', `entry ${i} needs zip64`);
    total += size;
    if (total > bytesMax) throw new ZipError('ZIP_TOO_LARGE', `more than ${bytesMax} uncompressed bytes`);
    headers.push({ name: buffer.subarray(pos + CENTRAL_SIZE, pos + CENTRAL_SIZE + nameLength), flags, method, crc, compressed, size, local });
    pos += CENTRAL_SIZE + variable;
  }
  if (pos !== cdEnd) throw new ZipError('ZIP_CORRUPT', 'the central directory size does not match its entries');

  // 3. Each entry's local header and data, which must lie before the central directory
  // and not overlap another entry's.
  const spans: Array<[number, number]> = [];
  const entries: ReadZipEntry[] = [];
  for (const [i, h] of headers.entries()) {
    if (h.local + LOCAL_SIZE > cdOffset) throw new ZipError('ZIP_CORRUPT', `entry ${i}'s local header is outside the data area`);
    if (buffer.readUInt32LE(h.local) !== SIG_LOCAL) throw new ZipError('ZIP_CORRUPT', `entry ${i}'s local header has a bad signature`);
    const localNameLength = buffer.readUInt16LE(h.local + 26);
    const start = h.local + LOCAL_SIZE + localNameLength + buffer.readUInt16LE(h.local + 28);
    const end = start + h.compressed;
    if (end > cdOffset) throw new ZipError('ZIP_CORRUPT', `entry ${i}'s data runs into the central directory`);
    if (buffer.readUInt16LE(h.local + 8) !== h.method || !buffer.subarray(h.local + LOCAL_SIZE, h.local + LOCAL_SIZE + localNameLength).equals(h.name)) {
      throw new ZipError('ZIP_CORRUPT', `entry ${i}'s local header disagrees with the central directory`);
    }
    spans.push([h.local, end]);
    entries.push({ name: Buffer.from(h.name), utf8Name: (h.flags & FLAG_UTF8) !== 0, data: inflate(buffer.subarray(start, end), h, i) });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i += 1) {
    if (spans[i][0] < spans[i - 1][1]) throw new ZipError('ZIP_CORRUPT', 'entries overlap');
  }
  return entries;
}

/** An entry's data, decompressed to exactly its declared size and checked against its CRC. */
function inflate(raw: Buffer, h: { method: number; crc: number; size: number }, i: number): Buffer {
  let data: Buffer;
  if (h.method === METHOD_STORED) {
    if (raw.length !== h.size) throw new ZipError('ZIP_CORRUPT', `stored entry ${i} has different compressed and uncompressed sizes`);
    data = Buffer.from(raw);
  } else {
    try {
      // One byte more than declared, so an entry that inflates to more is caught, not cut.
      data = inflateRawSync(raw, { maxOutputLength: h.size + 1 });
    } catch (error) {
      throw new ZipError('ZIP_CORRUPT', `entry ${i} does not inflate: ${(error as Error).message}`);
    }
    if (data.length !== h.size) throw new ZipError('ZIP_CORRUPT', `entry ${i} inflates to ${data.length} bytes, not the declared ${h.size}`);
  }
  if (crc32(data) >>> 0 !== h.crc) throw new ZipError('ZIP_CRC_MISMATCH', `entry ${i} fails its CRC-32 check`);
  return data;
}
