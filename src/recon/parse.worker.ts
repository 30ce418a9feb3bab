// A worker thread that reads a WeChat bill from disk, scans it (WechatBillScanner,
// no record objects) and hands the rows on as staging chunks (stage-format.ts), so
// parsing runs on one core while the database ingests on another. At most CREDITS
// chunks wait unacknowledged (memory stays bounded whatever the file's size).
import { parentPort, workerData } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { WechatBillScanner, BillRejected } from './parse/wechat.ts';
import { stageScanned } from './stage-format.ts';

const CREDITS = 4;
const CHUNK_ROWS = 8000;
/** No WeChat bill line comes near this; a longer one means the wrong file. */
const MAX_LINE_BYTES = 1 << 20;
const port = parentPort;
if (!port) throw new Error('parse.worker.ts runs as a worker thread');

let credits = CREDITS;
const waiting: Array<() => void> = [];
port.on('message', (m) => {
  if (m === 'ack') {
    credits += 1;
    waiting.shift()?.();
  }
});

async function send(text: string, rows: number): Promise<void> {
  while (credits === 0) await new Promise<void>((resolve) => waiting.push(resolve));
  credits -= 1;
  const bytes = Buffer.from(text, 'latin1'); // a byte string back to its UTF-8 bytes
  // A chunk owns its memory (far above Buffer's 4 KiB pool): moved, not copied.
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  port?.postMessage({ type: 'chunk', bytes, rows }, own ? [bytes.buffer as ArrayBuffer] : []);
}

/** Scans the file in 1 MiB pieces (strict UTF-8, decoded a whole line at a time), line by line, sending a chunk every CHUNK_ROWS rows. */
async function scanFile(path: string): Promise<void> {
  const scan = new WechatBillScanner({ bytes: true });
  let lines: string[] = [];
  let read = 0;
  /** Takes one line; true when a chunk is full. */
  const take = (line: string): boolean => {
    if (!scan.line(line)) return false;
    lines.push(stageScanned(scan.rows, scan));
    return lines.length >= CHUNK_ROWS;
  };
  const flush = async () => {
    const text = lines.join('\n');
    const rows = lines.length;
    lines = [];
    if (rows > 0) await send(text, rows);
  };
  /**
   * Checks whole lines are UTF-8 (a newline byte never sits inside a multi-byte
   * character) and gives them as a byte string: V8 decodes CJK text slowly, and the
   * scanner needs only the ASCII commas, backticks, digits and status.
   */
  const decode = (bytes: Buffer): string => {
    if (!isUtf8(bytes)) {
      throw new BillRejected('BILL_ENCODING_INVALID', `not valid UTF-8 near line ${scan.lineNo + 1}: a WeChat bill is UTF-8 text / 账单不是 UTF-8 编码`);
    }
    return bytes.toString('latin1');
  };
  let carry: Buffer = Buffer.alloc(0);
  for await (const piece of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const bytes = carry.length === 0 ? (piece as Buffer) : Buffer.concat([carry, piece as Buffer]);
    read += (piece as Buffer).length;
    port?.postMessage({ type: 'bytes', read });
    const cut = bytes.lastIndexOf(0x0a) + 1;
    carry = bytes.subarray(cut);
    if (carry.length > MAX_LINE_BYTES) {
      throw new BillRejected('BILL_ROW_INVALID', `line ${scan.lineNo + 1} is longer than ${MAX_LINE_BYTES} bytes: not a WeChat bill / 行过长，不是微信账单`);
    }
    if (cut === 0) continue;
    const text = decode(bytes.subarray(0, cut));
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      if (take(text.slice(start, end))) await flush();
      start = end + 1;
    }
  }
  if (carry.length > 0) take(decode(carry));
  scan.end();
  await flush();
}

const { path } = workerData as { path: string };
try {
  await scanFile(path);
  port.postMessage({ type: 'done' });
} catch (error) {
  if (error instanceof BillRejected) port.postMessage({ type: 'rejected', code: error.code, message: error.message });
  else port.postMessage({ type: 'error', message: (error as Error).message });
}
