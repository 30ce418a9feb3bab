// Record readers: how a statement file's parsed records reach a batch. A reader can
// be invoked again (a retried transaction re-reads the file from the start).
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { parseWechatBill, BillRejected, type BillErrorCode, type ChannelRecord } from './parse/wechat.ts';
import { parseAlipayBill } from './parse/alipay.ts';
import { reconErrors, type RecordReader } from './recon.service.ts';

export type StatementFormat = 'wechat' | 'alipay' | 'unionpay';

/** Records of a statement file on disk; onBytes reports progress (bytes read, total). */
export function fileReader(path: string, format: StatementFormat, onBytes?: (read: number, total: number) => void): RecordReader {
  return async (onRecord) => {
    let total = 0;
    try {
      total = (await stat(path)).size;
    } catch (error) {
      throw reconErrors.fileRejected(`读不到对账文件 / cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (format === 'wechat') {
      const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
      let read = 0;
      if (onBytes) stream.on('data', (chunk) => onBytes((read += Buffer.byteLength(chunk as string)), total));
      try {
        await parseWechatBill(createInterface({ input: stream, crlfDelay: Infinity }), onRecord);
      } finally {
        stream.destroy();
      }
      return;
    }
    if (format === 'alipay') return alipayRecords(await readFile(path), onRecord);
    throw reconErrors.formatUnsupported(`暂不支持 ${format} 格式的对账文件 / no parser for ${format} statements yet`);
  };
}

/**
 * A WeChat bill on disk parsed in a worker thread: records arrive as staging chunks
 * (the batch stages one while the worker parses the next). Other formats fall back
 * to fileReader.
 */
export function workerFileReader(path: string, format: StatementFormat, onBytes?: (read: number, total: number) => void): RecordReader {
  if (format !== 'wechat') return fileReader(path, format, onBytes);
  return async (_onRecord, onChunk) => {
    let total = 0;
    try {
      total = (await stat(path)).size;
    } catch (error) {
      throw reconErrors.fileRejected(`读不到对账文件 / cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const worker = new Worker(new URL('./parse.worker.ts', import.meta.url), { workerData: { path } });
    try {
      await new Promise<void>((resolve, reject) => {
        let chain = Promise.resolve();
        worker.on('message', (m: { type: string; bytes?: Uint8Array; rows?: number; code?: string; message?: string; read?: number }) => {
          if (m.type === 'bytes') onBytes?.(m.read ?? 0, total);
          else if (m.type === 'chunk') {
            const u8 = m.bytes as Uint8Array;
            chain = chain.then(() => onChunk(Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength), m.rows as number)).then(() => worker.postMessage('ack'), reject);
          } else if (m.type === 'done') chain.then(resolve, reject);
          else if (m.type === 'rejected') chain.then(() => reject(new BillRejected(m.code as BillErrorCode, m.message as string)), reject);
          else reject(new Error(`statement parser failed: ${m.message}`));
        });
        worker.on('error', reject);
        worker.on('exit', (code) => reject(new Error(`statement parser exited (${code}) before the end of the file`)));
      });
    } finally {
      await worker.terminate();
    }
  };
}

/** Records of a statement held in memory (a fetched file, tests). */
export function bufferReader(data: Buffer | string, format: StatementFormat): RecordReader {
  return async (onRecord) => {
    if (format === 'wechat') {
      const text = typeof data === 'string' ? data : data.toString('utf8');
      await parseWechatBill(text.split('\n'), onRecord);
      return;
    }
    if (format === 'alipay') return alipayRecords(typeof data === 'string' ? Buffer.from(data, 'binary') : data, onRecord);
    throw reconErrors.formatUnsupported(`暂不支持 ${format} 格式的对账文件 / no parser for ${format} statements yet`);
  };
}

async function alipayRecords(zip: Buffer, onRecord: (r: ChannelRecord) => void | Promise<void>): Promise<void> {
  // The Alipay parser calls back synchronously and checks the totals at the end:
  // records are passed on only after the whole file was accepted.
  const records: ChannelRecord[] = [];
  parseAlipayBill(zip, (r) => {
    records.push(r);
  });
  for (const r of records) await onRecord(r);
}
