// Group commit: concurrent callers' transfers are gathered into one database
// transaction (up to BATCH_MAX transfers), applied in arrival order, and each caller
// gets back its own results. While a batch commits, the next one fills up, so a hot
// account costs one lock round trip per batch instead of one per transfer.
import { assert } from '../platform/assert.ts';
import type { TransferInput, TransferResultCode } from './types.ts';

interface Request {
  items: TransferInput[];
  resolve: (results: TransferResultCode[]) => void;
  reject: (error: unknown) => void;
}

export type BatchRunner = (items: TransferInput[], segmentEnds: number[]) => Promise<TransferResultCode[]>;

export interface GroupCommitStats {
  batches: number;
  transfers: number;
}

export class GroupCommit {
  private readonly run: BatchRunner;
  private readonly batchMax: number;
  private readonly concurrency: number;
  private readonly queue: Request[] = [];
  private queueHead = 0;
  private inFlight = 0;
  readonly stats: GroupCommitStats = { batches: 0, transfers: 0 };

  constructor(run: BatchRunner, batchMax: number, concurrency: number) {
    assert(batchMax >= 1 && concurrency >= 1, 'group commit limits are positive');
    this.run = run;
    this.batchMax = batchMax;
    this.concurrency = concurrency;
  }

  submit(items: TransferInput[]): Promise<TransferResultCode[]> {
    assert(items.length >= 1 && items.length <= this.batchMax, 'a request fits in one batch');
    return new Promise((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
      this.pump();
    });
  }

  get pending(): number {
    return this.queue.length - this.queueHead + this.inFlight;
  }

  private pump(): void {
    while (this.inFlight < this.concurrency && this.queueHead < this.queue.length) {
      const batch = this.take();
      this.inFlight += 1;
      void this.execute(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private take(): Request[] {
    const batch: Request[] = [];
    let count = 0;
    while (this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead];
      if (batch.length > 0 && count + next.items.length > this.batchMax) break;
      batch.push(next);
      count += next.items.length;
      this.queueHead += 1;
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return batch;
  }

  private async execute(batch: Request[]): Promise<void> {
    const items: TransferInput[] = [];
    const segmentEnds: number[] = [];
    for (const request of batch) {
      for (const item of request.items) items.push(item);
      segmentEnds.push(items.length);
    }
    try {
      const results = await this.run(items, segmentEnds);
      assert(results.length === items.length, 'one result per transfer');
      this.stats.batches += 1;
      this.stats.transfers += items.length;
      let start = 0;
      for (let i = 0; i < batch.length; i += 1) {
        batch[i].resolve(results.slice(start, segmentEnds[i]));
        start = segmentEnds[i];
      }
    } catch (error) {
      for (const request of batch) request.reject(error);
    }
  }
}
