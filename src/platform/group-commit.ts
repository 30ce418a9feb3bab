// Group commit: concurrent callers' items are gathered into one database transaction
// (up to batchMax items), handled in arrival order, and each caller gets back its own
// results. While a batch commits, the next one fills up, so a hot row or a commit's
// WAL flush is paid once per batch instead of once per item. The ledger uses it for
// transfers, the payment center for new orders.
//
// One caller's bad item must not fail the others': when a batch fails, its callers are
// run again apart — split in halves, recursively — so only the callers whose items fail
// alone get the error, and every other caller's items commit exactly once (a failed
// batch commits nothing: it is one transaction). A caller's items are never split from
// each other. The number of runs is bounded: at most 2n − 1 for n callers. Errors that
// say the database itself is unreachable are not split (every half would fail too).
import { assert } from './assert.ts';
import { overloaded } from './errors.ts';

/** Items a queue holds at most by default (waiting and in flight), per batch slot. */
const QUEUE_BATCHES_MAX = 8;

interface Request<I, R> {
  items: I[];
  resolve: (results: R[]) => void;
  reject: (error: unknown) => void;
}

/** Runs one batch; segmentEnds are the exclusive end indexes of each caller's items. */
export type BatchRunner<I, R> = (items: I[], segmentEnds: number[]) => Promise<R[]>;

export interface GroupCommitStats {
  batches: number;
  items: number;
  /** Failed batches that were split to isolate the failing callers. */
  splits: number;
  /** Items accepted and not yet answered (waiting or in a running batch). */
  queued: number;
  /** The bound on `queued`: beyond it submit() refuses with OVERLOADED (503). */
  queueMax: number;
}

/** Connection-level failures: the database is down, splitting would only repeat them. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return /^(08|57P0)/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(code);
}

export class GroupCommit<I, R> {
  private readonly run: BatchRunner<I, R>;
  private readonly batchMax: number;
  private readonly concurrency: number;
  private readonly queue: Request<I, R>[] = [];
  private queueHead = 0;
  private inFlight = 0;
  readonly stats: GroupCommitStats;
  private readonly splittable: (error: unknown) => boolean;

  /** queueMax: items held at most (default: 8 full batches per slot); more are refused with OVERLOADED. */
  constructor(run: BatchRunner<I, R>, batchMax: number, concurrency: number, queueMax = batchMax * concurrency * QUEUE_BATCHES_MAX, options: { splittable?: (error: unknown) => boolean } = {}) {
    assert(batchMax >= 1 && concurrency >= 1, 'group commit limits are positive');
    assert(queueMax >= batchMax, 'the queue holds at least one batch');
    this.splittable = options.splittable ?? ((error) => !isConnectionError(error));
    this.run = run;
    this.batchMax = batchMax;
    this.concurrency = concurrency;
    this.stats = { batches: 0, items: 0, splits: 0, queued: 0, queueMax };
  }

  /** Refuses at once (OVERLOADED) when the queue is full: work already accepted finishes. */
  submit(items: I[]): Promise<R[]> {
    assert(items.length >= 1 && items.length <= this.batchMax, 'a request fits in one batch');
    if (this.stats.queued + items.length > this.stats.queueMax) {
      return Promise.reject(overloaded(`写入队列已满（${this.stats.queued} 项）/ the write queue is full (${this.stats.queued} items)`));
    }
    this.stats.queued += items.length;
    return new Promise<R[]>((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
      this.schedule();
    }).finally(() => {
      this.stats.queued -= items.length;
    });
  }

  private scheduled = false;

  /**
   * Starts batches on the next turn of the event loop, not at once: requests whose bytes
   * already arrived are parsed first and join the batch. (On PGlite, which runs on this
   * thread, starting at once would make every batch a batch of one.)
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
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
        this.schedule();
      });
    }
  }

  private take(): Request<I, R>[] {
    const batch: Request<I, R>[] = [];
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

  /** Runs the batch; on failure runs each half apart, down to single callers. */
  private async execute(batch: Request<I, R>[]): Promise<void> {
    try {
      await this.runOnce(batch);
    } catch (error) {
      if (batch.length === 1 || !this.splittable(error)) {
        for (const request of batch) request.reject(error);
        return;
      }
      this.stats.splits += 1;
      const middle = Math.ceil(batch.length / 2);
      await this.execute(batch.slice(0, middle));
      await this.execute(batch.slice(middle));
    }
  }

  private async runOnce(batch: Request<I, R>[]): Promise<void> {
    const items: I[] = [];
    const segmentEnds: number[] = [];
    for (const request of batch) {
      for (const item of request.items) items.push(item);
      segmentEnds.push(items.length);
    }
    const results = await this.run(items, segmentEnds);
    assert(results.length === items.length, 'one result per item');
    this.stats.batches += 1;
    this.stats.items += items.length;
    let start = 0;
    for (let i = 0; i < batch.length; i += 1) {
      batch[i].resolve(results.slice(start, segmentEnds[i]));
      start = segmentEnds[i];
    }
  }
}
