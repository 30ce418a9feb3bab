// Byte streams to text lines, without holding the file: UTF-8 is decoded strictly
// (an invalid byte rejects the file), GBK through iconv-lite (a byte that is not GBK
// rejects the file), and a GBK file that turns out to be valid UTF-8 with Chinese in
// it is rejected at its end (UTF-8 bytes decoded as GBK are usually "valid" mojibake,
// so this is the only reliable sign). Lines are bounded in length. `detectEncoding`
// picks UTF-8 or GBK from a BOM or from whether the first 64 KiB are valid UTF-8.
import iconv from 'iconv-lite';
import { isUtf8 } from 'node:buffer';
import { BillRejected, checkControlChars } from './wechat.ts';

export type TextEncoding = 'utf8' | 'gbk';

const LINE_CHARS_MAX = 1024 * 1024;
const SNIFF_BYTES = 64 * 1024;
/** Fewer non-ASCII bytes than this cannot tell GBK from UTF-8 (the famous 联通 case). */
const UTF8_EVIDENCE_BYTES = 16;

export async function* chunksOf(input: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
  for await (const chunk of input) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
}

/** Reads up to `bytes` from the front, and gives back a stream that still starts at the beginning. */
export async function peek(input: AsyncIterable<Buffer>, bytes: number): Promise<{ head: Buffer; all: AsyncIterable<Buffer> }> {
  const it = input[Symbol.asyncIterator]();
  const taken: Buffer[] = [];
  let size = 0;
  let done = false;
  while (size < bytes) {
    const next = await it.next();
    if (next.done) {
      done = true;
      break;
    }
    taken.push(next.value);
    size += next.value.length;
  }
  async function* all() {
    yield* taken;
    if (done) return;
    for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
  }
  return { head: Buffer.concat(taken), all: all() };
}

export function isUtf8Prefix(head: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true });
    return true;
  } catch {
    return false;
  }
}

export async function detectEncoding(input: AsyncIterable<Buffer>): Promise<{ encoding: TextEncoding; all: AsyncIterable<Buffer> }> {
  const { head, all } = await peek(input, SNIFF_BYTES);
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return { encoding: 'utf8', all };
  if ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff)) {
    throw new BillRejected('BILL_ENCODING_INVALID', 'the file is UTF-16 text: save it as UTF-8 or GBK CSV');
  }
  return { encoding: isUtf8Prefix(head) ? 'utf8' : 'gbk', all };
}

/** Decodes and splits into lines (without the line break; a BOM is dropped). */
export async function* linesOf(input: AsyncIterable<Buffer>, encoding: TextEncoding): AsyncGenerator<string> {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const gbk = encoding === 'gbk' ? iconv.getDecoder('gbk') : null;
  let utf8Valid = true;
  let nonAscii = 0;
  let pending = '';
  let lineNo = 0;
  const decode = (chunk: Buffer, last: boolean): string => {
    if (gbk === null) {
      try {
        return last ? utf8.decode() : utf8.decode(chunk, { stream: true });
      } catch {
        throw new BillRejected('BILL_ENCODING_INVALID', `not valid UTF-8 near line ${lineNo + 1}: the file must be UTF-8`);
      }
    }
    if (utf8Valid) {
      for (const byte of chunk) if (byte >= 0x80) nonAscii += 1;
      try {
        if (last) utf8.decode();
        else utf8.decode(chunk, { stream: true });
      } catch {
        utf8Valid = false;
      }
    }
    const text = last ? gbk.end() ?? '' : gbk.write(chunk);
    if (text.includes('\uFFFD')) throw new BillRejected('BILL_ENCODING_INVALID', `not valid GBK near line ${lineNo + 1}: the file must be GBK (GB18030) text`);
    return text;
  };
  const emit = function* (text: string): Generator<string> {
    const parts = (pending + text).split('\n');
    pending = parts.pop() ?? '';
    for (let line of parts) {
      lineNo += 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (lineNo === 1 && line.startsWith('\uFEFF')) line = line.slice(1);
      checkControlChars(line, lineNo);
      yield line;
    }
    if (pending.length > LINE_CHARS_MAX) throw new BillRejected('BILL_ROW_INVALID', `line ${lineNo + 1} is longer than ${LINE_CHARS_MAX} characters: not a statement`);
  };
  for await (const chunk of input) yield* emit(decode(chunk, false));
  yield* emit(decode(Buffer.alloc(0), true));
  if (pending !== '') yield* emit('\n'); // the last line had no line break
  if (gbk !== null && utf8Valid && nonAscii >= UTF8_EVIDENCE_BYTES) {
    throw new BillRejected('BILL_ENCODING_INVALID', 'the file is UTF-8 text but GBK was expected: ask the sender for the GBK file, or configure the encoding');
  }
}

/**
 * UTF-8 text as blocks of whole lines, each block a byte string (every char one byte
 * of the UTF-8, as latin1 decodes it) ending with a line break. The bytes are checked
 * strictly but never decoded: V8 decodes CJK text slowly, and a scanner that needs only
 * ASCII delimiters, digits and codes does not need it (WechatBillScanner's bytes mode).
 * A line break never sits inside a multi-byte character, so whole lines check alone.
 * Lines are bounded as in linesOf.
 */
export async function* utf8ByteBlocks(input: AsyncIterable<Buffer>): AsyncGenerator<string> {
  let carry: Buffer = Buffer.alloc(0);
  let offset = 0; // of carry's first byte in the file
  for await (const piece of input) {
    const bytes = carry.length === 0 ? piece : Buffer.concat([carry, piece]);
    const cut = bytes.lastIndexOf(0x0a) + 1;
    carry = bytes.subarray(cut);
    if (carry.length > LINE_CHARS_MAX) {
      throw new BillRejected('BILL_ROW_INVALID', `a line longer than ${LINE_CHARS_MAX} bytes starts at byte ${offset + cut}: not a statement`);
    }
    if (cut > 0) yield checkedUtf8(bytes.subarray(0, cut), offset);
    offset += cut;
  }
  if (carry.length > 0) yield checkedUtf8(carry, offset) + '\n';
}

/** Whole lines as a byte string, or a rejection naming the first line that is not UTF-8. */
function checkedUtf8(lines: Buffer, offset: number): string {
  if (isUtf8(lines)) return lines.toString('latin1');
  let start = 0;
  for (let end = lines.indexOf(0x0a); start < lines.length; end = lines.indexOf(0x0a, start)) {
    const stop = end < 0 ? lines.length : end + 1;
    if (!isUtf8(lines.subarray(start, stop))) break;
    start = stop;
  }
  throw new BillRejected('BILL_ENCODING_INVALID', `the line at byte ${offset + start} is not valid UTF-8: the file must be UTF-8 / 文件不是 UTF-8 编码`);
}

/** Collects a stream into one buffer, refusing more than `bytesMax`. */
export async function collect(input: AsyncIterable<Buffer>, bytesMax: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    size += chunk.length;
    if (size > bytesMax) throw new BillRejected('BILL_TOO_LARGE', `the file is larger than ${bytesMax} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}
