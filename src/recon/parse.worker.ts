// A worker thread that reads a WeChat bill from disk, scans it (WechatBillScanner,
// no record objects) and hands the rows on as staging chunks (stage-format.ts), so
// parsing runs on one core while the database ingests on another. At most CREDITS
// chunks wait unacknowledged (memory stays bounded whatever the file's size).
import { parentPort, workerData } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { WechatBillScanner, BillRejected } from './parse/wechat.ts';
import { utf8ByteBlocks } from './parse/text.ts';
import { stageScanned } from './stage-format.ts';

const CREDITS = 4;
const CHUNK_ROWS = 8000;
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

/** Scans the file line by line (strict UTF-8, kept as bytes), sending a chunk every CHUNK_ROWS rows. */
async function scanFile(path: string): Promise<void> {
  const scan = new WechatBillScanner({ bytes: true });
  let lines: string[] = [];
  const flush = async () => {
    const text = lines.join('\n');
    const rows = lines.length;
    lines = [];
    if (rows > 0) await send(text, rows);
  };
  for await (const block of utf8ByteBlocks(counted(createReadStream(path, { highWaterMark: 1 << 20 })))) {
    let start = 0;
    for (let end = block.indexOf('\n'); end >= 0; end = block.indexOf('\n', start)) {
      if (scan.line(block.slice(start, end))) {
        lines.push(stageScanned(scan.rows, scan));
        if (lines.length >= CHUNK_ROWS) await flush();
      }
      start = end + 1;
    }
  }
  scan.end();
  await flush();
}

/** The file's pieces, reporting the bytes read so far to the batch (its progress bar). */
async function* counted(input: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
  let read = 0;
  for await (const piece of input) {
    read += (piece as Buffer).length;
    port?.postMessage({ type: 'bytes', read });
    yield piece as Buffer;
  }
}

const { path } = workerData as { path: string };
try {
  await scanFile(path);
  port.postMessage({ type: 'done' });
} catch (error) {
  if (error instanceof BillRejected) port.postMessage({ type: 'rejected', code: error.code, message: error.message });
  else port.postMessage({ type: 'error', message: (error as Error).message });
}
