// A worker thread that reads a WeChat bill from disk, parses it with the bill parser
// and hands the records on as staging chunks (stage-format.ts), so parsing runs on
// one core while the database ingests on another. At most CREDITS chunks wait
// unacknowledged (memory stays bounded whatever the file's size).
import { parentPort, workerData } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { parseWechatBill, BillRejected } from './parse/wechat.ts';
import { stageLine } from './stage-format.ts';

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
  port?.postMessage({ type: 'chunk', text, rows });
}

/** Lines of a UTF-8 file, read in 1 MiB chunks (faster than readline for millions of lines). */
async function* linesOf(path: string): AsyncGenerator<string> {
  let rest = '';
  let read = 0;
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const text = rest + (chunk as string);
    read += (chunk as string).length;
    const parts = text.split('\n');
    rest = parts.pop() ?? '';
    port?.postMessage({ type: 'bytes', read });
    for (const line of parts) yield line;
  }
  if (rest !== '') yield rest;
}

const { path } = workerData as { path: string };
let lines: string[] = [];
try {
  await parseWechatBill(linesOf(path), (r) => {
    lines.push(stageLine(r));
    if (lines.length >= CHUNK_ROWS) {
      const text = lines.join('\n');
      lines = [];
      return send(text, CHUNK_ROWS);
    }
  });
  if (lines.length > 0) await send(lines.join('\n'), lines.length);
  port.postMessage({ type: 'done' });
} catch (error) {
  if (error instanceof BillRejected) port.postMessage({ type: 'rejected', code: error.code, message: error.message });
  else port.postMessage({ type: 'error', message: (error as Error).message });
}
