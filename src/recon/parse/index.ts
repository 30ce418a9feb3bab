// The one entry for statement parsing: a template per format, chosen by kind
// (channel:file type). Input is a byte stream — normally the stored copy from the
// file store, `store.open(row)` — never the network.
//
//   wechat:ALL | wechat:SUCCESS | wechat:REFUND   UTF-8 text, streamed line by line
//   alipay:trade                                  zip of GBK CSV (bounded buffer)
//   unionpay:ZM                                   zip of GBK fixed-width lines (bounded buffer)
//   bank:csv                                      UTF-8/GBK CSV, streamed line by line
//   bank:xlsx                                     exceljs, whole workbook (bounded buffer; see parseBankXlsx)
//   bank:xls                                      BIFF8, our reader (bounded buffer)
//
// Optional outer layers by configuration: decryption (SM4/AES, key agreed offline) and
// a single-entry zip, unwrapped in memory (bounded) before the format's parser runs.
//
// Records are handed over in batches of at most `batchRows` (≤ 10,000) so memory does
// not grow with the file. Every file is checked whole — summary totals, balances,
// structure — and a failed check rejects it with a BillRejected code. Streamed formats
// may have handed over batches before a check at the end fails: callers stage the
// records and import them only when parseStatement resolves (nothing half-imported).
import { Readable } from 'node:stream';
import { BillRejected, parseWechatBill, type BillTotals, type ChannelRecord } from './wechat.ts';
import { parseAlipayBill } from './alipay.ts';
import { parseUnionpayZm } from './unionpay.ts';
import { parseBankCsv, parseBankXls, parseBankXlsx } from './bank-files.ts';
import type { BankRecord, BankTotals } from './bank.ts';
import { chunksOf, collect, linesOf, type TextEncoding } from './text.ts';
import { decrypt, unzipOne, type OuterLayers } from './layers.ts';
import { isValidDate } from '../../platform/time.ts';

export { BillRejected, type ChannelRecord, type BillTotals } from './wechat.ts';
export type { BankRecord, BankTotals } from './bank.ts';
export type { OuterLayers, DecryptLayer } from './layers.ts';

export const STATEMENT_KINDS = ['wechat:ALL', 'wechat:SUCCESS', 'wechat:REFUND', 'alipay:trade', 'unionpay:ZM', 'bank:csv', 'bank:xlsx', 'bank:xls'] as const;
export type StatementKind = (typeof STATEMENT_KINDS)[number];
export type BankKind = Extract<StatementKind, `bank:${string}`>;
export type RecordOf<K extends StatementKind> = K extends BankKind ? BankRecord : ChannelRecord;
export type TotalsOf<K extends StatementKind> = K extends BankKind ? BankTotals : BillTotals & { skippedRows?: number };

export interface ParseOptions<K extends StatementKind> {
  /** Receives the records, at most batchRows at a time, in file order. */
  onBatch: (records: Array<RecordOf<K>>) => void | Promise<void>;
  /** Default and maximum 10,000. */
  batchRows?: number;
  layers?: OuterLayers;
  /** bank:csv text encoding; default auto (BOM, else UTF-8 if valid, else GBK). */
  encoding?: TextEncoding | 'auto';
  /** The statement's day (YYYY-MM-DD): UnionPay lines carry MMDD only. */
  billDate?: string;
  /** Largest file read into memory (zip, xls, encrypted files). Default 256 MiB. */
  bytesMax?: number;
}

export interface ParseResult<K extends StatementKind> {
  kind: K;
  totals: TotalsOf<K>;
}

const BATCH_ROWS_MAX = 10_000;
const BYTES_MAX_DEFAULT = 256 * 1024 * 1024;

class Batcher<R> {
  private items: R[] = [];
  private readonly size: number;
  private readonly onBatch: (records: R[]) => void | Promise<void>;
  constructor(size: number, onBatch: (records: R[]) => void | Promise<void>) {
    this.size = size;
    this.onBatch = onBatch;
  }
  add = (record: R): void => {
    this.items.push(record);
  };
  drainIfFull = async (): Promise<void> => {
    while (this.items.length >= this.size) await this.hand(this.items.splice(0, this.size));
  };
  async flush(): Promise<void> {
    await this.drainIfFull();
    if (this.items.length > 0) await this.hand(this.items.splice(0));
  }
  private async hand(batch: R[]): Promise<void> {
    await this.onBatch(batch);
  }
}

export async function parseStatement<K extends StatementKind>(kind: K, input: AsyncIterable<unknown>, options: ParseOptions<K>): Promise<ParseResult<K>> {
  if (!(STATEMENT_KINDS as readonly string[]).includes(kind)) throw new BillRejected('BILL_HEADER_INVALID', `unknown statement kind ${JSON.stringify(kind)}: one of ${STATEMENT_KINDS.join(', ')}`);
  const batchRows = options.batchRows ?? BATCH_ROWS_MAX;
  if (!Number.isSafeInteger(batchRows) || batchRows < 1 || batchRows > BATCH_ROWS_MAX) throw new RangeError(`batchRows must be 1..${BATCH_ROWS_MAX}`);
  const bytesMax = options.bytesMax ?? BYTES_MAX_DEFAULT;
  let bytes: AsyncIterable<Buffer> = chunksOf(input);
  if (options.layers?.decrypt || options.layers?.unzip) {
    let data = await collect(bytes, bytesMax);
    if (options.layers.decrypt) data = decrypt(data, options.layers.decrypt);
    if (options.layers.unzip) data = unzipOne(data, typeof options.layers.unzip === 'object' ? options.layers.unzip.entryNamePattern : null, bytesMax).data;
    bytes = Readable.from([data]);
  }
  const batcher = new Batcher<RecordOf<K>>(batchRows, options.onBatch);
  const add = batcher.add as (record: ChannelRecord | BankRecord) => void;
  let totals: BillTotals | BankTotals;
  switch (kind) {
    case 'wechat:ALL':
    case 'wechat:SUCCESS':
    case 'wechat:REFUND':
      totals = await parseWechatBill(checkWechatHeader(linesOf(bytes, 'utf8'), kind.slice(7) as 'ALL' | 'SUCCESS' | 'REFUND'), async (record) => {
        add(record);
        await batcher.drainIfFull();
      });
      break;
    case 'alipay:trade':
      totals = parseAlipayBill(await collect(bytes, bytesMax), add);
      break;
    case 'unionpay:ZM': {
      if (!options.billDate || !isValidDate(options.billDate)) throw new BillRejected('BILL_ROW_INVALID', 'a UnionPay file needs options.billDate (YYYY-MM-DD): its lines carry MMDD only');
      totals = parseUnionpayZm(await collect(bytes, bytesMax), options.billDate, add);
      break;
    }
    case 'bank:csv':
      totals = await parseBankCsv(bytes, options.encoding ?? 'auto', add, batcher.drainIfFull);
      break;
    case 'bank:xlsx':
      totals = await parseBankXlsx(await collect(bytes, bytesMax), add, batcher.drainIfFull, bytesMax);
      break;
    case 'bank:xls':
      totals = parseBankXls(await collect(bytes, bytesMax), add);
      break;
    default:
      throw new BillRejected('BILL_HEADER_INVALID', `unknown statement kind ${JSON.stringify(kind)}`);
  }
  await batcher.flush();
  return { kind, totals: totals as TotalsOf<K> };
}

/** The bill type is the header's: SUCCESS has no refund columns, REFUND adds 退款申请时间, ALL has refund columns only. */
async function* checkWechatHeader(lines: AsyncIterable<string>, type: 'ALL' | 'SUCCESS' | 'REFUND'): AsyncGenerator<string> {
  let checked = false;
  for await (const line of lines) {
    if (!checked && line.trim() !== '') {
      checked = true;
      const names = line.replace(/^\uFEFF/, '').split(',').map((n) => n.trim());
      const refundCols = names.includes('退款金额');
      const refundTimes = names.includes('退款申请时间');
      const found = refundTimes ? 'REFUND' : refundCols ? 'ALL' : 'SUCCESS';
      if (names.includes('交易时间') && found !== type) {
        throw new BillRejected('BILL_HEADER_INVALID', `expected a WeChat ${type} bill, the header is a ${found} bill's`, 1);
      }
    }
    yield line;
  }
}
