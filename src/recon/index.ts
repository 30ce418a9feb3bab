// Reconciliation (对账): wiring of the service, its admin routes, where statements come
// from (the statement store: an operator's file, or the sandbox channel fetched over
// HTTP) and the daily job per channel. Other modules use only what is exported here.
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Database } from '../platform/db.ts';
import type { Jobs } from '../platform/jobs.ts';
import { cstDate } from '../platform/time.ts';
import type { Ledger } from '../ledger/index.ts';
import type { PaymentCenter } from '../payment/index.ts';
import { createStatementStore, type ReconFileRow } from './fetch/store.ts';
import { createInbox, type Inbox } from './fetch/inbox.ts';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseStatement, BillRejected, type BankRecord } from './parse/index.ts';

const BANK_ROWS_MAX = 1_000_000;
import { createReconService, reconErrors, RECON_QUEUE, type ReconOptions, type RecordReader } from './recon.service.ts';
import { reconRoutes } from './recon.routes.ts';

export interface ReconModuleOptions extends Pick<ReconOptions, 'channels' | 'poolTtlDays' | 'expectedChannelFeeE5' | 'onMistakeOpened' | 'onMistakeResolved'> {
  db: Database;
  ledger: Ledger;
  payment: PaymentCenter;
  guard: (req: never) => Promise<void>;
  /** Statement files as received (null: a temp folder). */
  fileDir: string | null;
  /** The only folder the admin API reads named statement files from (null or absent: a temp folder). */
  inboxDir?: string | null;
  sandbox: { baseUrl: string; key: string };
  /** Channels with a daily job (cron in Beijing time, default 10:00 for the previous day). */
  dailyChannels?: string[];
  dailyCron?: string;
}

export type ReconModule = ReturnType<typeof createReconModule>;

export function createReconModule(options: ReconModuleOptions) {
  const service = createReconService({
    db: options.db, ledger: options.ledger, markPaid: (id, state, source) => options.payment.orders.markPaid(id, state, source),
    channels: options.channels, poolTtlDays: options.poolTtlDays, expectedChannelFeeE5: options.expectedChannelFeeE5,
    onMistakeOpened: options.onMistakeOpened, onMistakeResolved: options.onMistakeResolved,
  });
  let store: ReturnType<typeof createStatementStore> | null = null;
  const storeOf = () => (store ??= createStatementStore({ db: options.db, dir: options.fileDir }));

  /** The stored copy of (channel, date)'s statement: an operator's file, or fetched from the sandbox. */
  async function readerFor(channel: string, billDate: string, file: string | null, onBytes?: (read: number, total: number) => void): Promise<{ reader: RecordReader; source: string }> {
    const c = service.channels[channel];
    if (!c) throw reconErrors.channelUnknown(`未知渠道 / unknown channel "${channel}"; use one of ${Object.keys(service.channels).join(', ')}`);
    const kind = KIND_OF_FORMAT[c.format];
    const meta = { channel: c.ifCode, billDate, fileType: kind, account: c.mchAccount };
    let row: ReconFileRow;
    if (file) row = await storeOf().storeLocal(file, meta);
    else if (channel === 'sandbox') row = await storeOf().fetchAndStore({ kind: 'http', baseUrl: options.sandbox.baseUrl, key: options.sandbox.key, format: c.format, billType: 'ALL' }, meta);
    else throw reconErrors.fileRejected(`渠道 ${channel} 未配置对账单来源，请用 --file 提供文件 / no statement source configured for ${channel}: pass the file (--file PATH)`);
    return { reader: storedReader(() => storeOf().open(row), kind, billDate, onBytes && ((read) => onBytes(read, Number(row.size_bytes)))), source: `file:${row.id}` };
  }

  /** 日终对账 from a bank statement file (bank:csv | bank:xlsx | bank:xls), stored first like every statement. */
  async function runSupervisionFile(input: { bankAccountNo: string; billDate: string; file: string; kind: 'bank:csv' | 'bank:xlsx' | 'bank:xls' }) {
    const row = await storeOf().storeLocal(input.file, { channel: 'bank', billDate: input.billDate, fileType: input.kind, account: input.bankAccountNo });
    const records: BankRecord[] = [];
    const stream = storeOf().open(row);
    let result;
    try {
      result = await parseStatement(input.kind, stream, {
        billDate: input.billDate,
        onBatch: (batch) => {
          if (records.length + batch.length > BANK_ROWS_MAX) throw reconErrors.fileRejected(`银行流水超过 ${BANK_ROWS_MAX} 行 / more than ${BANK_ROWS_MAX} rows in one day's bank statement`);
          for (const r of batch) records.push(r);
        },
      });
    } catch (error) {
      if (error instanceof BillRejected) throw reconErrors.fileRejected(`银行流水被拒 / the bank statement was rejected: ${error.code}: ${error.message}`, { code: error.code });
      throw error;
    } finally {
      stream.destroy();
    }
    return service.runSupervision({ bankAccountNo: input.bankAccountNo, billDate: input.billDate, records, closingBalanceFen: result.totals.closingBalanceFen });
  }

  async function runDaily(channel: string, billDate = cstDate(new Date(Date.now() - 86_400_000))) {
    const { reader, source } = await readerFor(channel, billDate, null);
    return service.runDay({ channel, billDate, reader, source });
  }

  /** The daily cron fans out one job per channel (singleton per channel and day); each job runs that channel's batch. */
  async function startJobs(jobs: Jobs, onError: (error: unknown) => void): Promise<void> {
    const channels = options.dailyChannels ?? ['sandbox'];
    await jobs.work(RECON_QUEUE, async (data) => {
      const billDate = typeof data.billDate === 'string' ? data.billDate : cstDate(new Date(Date.now() - 86_400_000));
      if (typeof data.channel !== 'string') {
        for (const channel of channels) await jobs.send(RECON_QUEUE, { channel, billDate }, { singletonKey: `${channel}:${billDate}` });
        return;
      }
      try {
        await runDaily(data.channel, billDate);
      } catch (error) {
        onError(error);
        throw error;
      }
    }, { batchSize: 1, pollingIntervalSeconds: 30 });
    await jobs.schedule(RECON_QUEUE, options.dailyCron ?? '0 10 * * *', {});
  }

  // The API names files only inside the inbox (or uploads them there); the CLI without a
  // server (the operator's shell) passes local paths to readerFor directly.
  let inbox: Inbox | null = null;
  const inboxOf = () => (inbox ??= createInbox(options.inboxDir ?? mkdtempSync(path.join(os.tmpdir(), 'custos-inbox-'))));
  const routes: Array<(app: FastifyInstance) => Promise<void>> = [reconRoutes({
    recon: service, guard: options.guard,
    readerFor: async (ch, d, f) => readerFor(ch, d, f === null ? null : await inboxOf().resolve(f)),
    runSupervisionFile: async (input) => runSupervisionFile({ ...input, file: await inboxOf().resolve(input.file) }),
    upload: (bytes) => inboxOf().upload(bytes),
  })];
  return { service, routes, readerFor, runDaily, runSupervisionFile, startJobs, inbox: inboxOf };
}

const KIND_OF_FORMAT = { wechat: 'wechat:ALL', alipay: 'alipay:trade', unionpay: 'unionpay:ZM' } as const;

/** Parses a stored statement stream with the statement parsers (parse/index.ts), batch by batch. */
export function storedReader(open: () => Readable, kind: 'wechat:ALL' | 'alipay:trade' | 'unionpay:ZM', billDate: string, onBytes?: (read: number) => void): RecordReader {
  return async (onRecord) => {
    const stream = open();
    let read = 0;
    if (onBytes) stream.on('data', (chunk: Buffer | string) => onBytes((read += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length)));
    try {
      await parseStatement(kind, stream, {
        billDate,
        onBatch: async (records) => {
          for (const r of records) await onRecord(r);
        },
      });
    } finally {
      stream.destroy();
    }
  };
}

export { createReconService, RECON_QUEUE, reconErrors, type ReconService, type Mistake, type BatchSummary, type RecordReader } from './recon.service.ts';
export { fileReader, bufferReader } from './reader.ts';
