// Load shedding: new work is refused with 503 OVERLOADED (and Retry-After) while the
// database pool has too many callers waiting for a connection or an in-process queue
// is over its high-water mark; work already accepted finishes. Each queue also
// refuses beyond its hard bound on its own (GroupCommit.submit), so nothing grows
// without limit even between two checks.
import type { Database } from './db.ts';
import type { GroupCommitStats } from './group-commit.ts';

export interface ShedOptions {
  db: Database;
  /** Shed while more than this many callers wait for a pool connection. */
  poolWaitMax: number;
  /** Queues to watch: shed while one holds at least half of its bound. */
  queues: () => Array<{ name: string; stats: GroupCommitStats }>;
  /** Other queues (notification sending, …): shed while depth() ≥ max. */
  others?: () => Array<{ name: string; depth: number; max: number }>;
}

export interface LoadState {
  poolWaiting: number;
  saturated: string | null;
}

/** Returns a check: null when there is room, else what is saturated (for the log and the message). */
export function createShedder(o: ShedOptions): () => LoadState {
  return () => {
    const poolWaiting = o.db.waiting?.() ?? 0;
    if (poolWaiting > o.poolWaitMax) return { poolWaiting, saturated: `数据库连接池排队 ${poolWaiting} / database pool: ${poolWaiting} waiting (max ${o.poolWaitMax})` };
    for (const q of o.queues()) {
      if (q.stats.queued * 2 >= q.stats.queueMax) return { poolWaiting, saturated: `队列 ${q.name} 已满 / queue ${q.name}: ${q.stats.queued} of ${q.stats.queueMax}` };
    }
    for (const q of o.others?.() ?? []) {
      if (q.depth >= q.max) return { poolWaiting, saturated: `队列 ${q.name} 已满 / queue ${q.name}: ${q.depth} of ${q.max}` };
    }
    return { poolWaiting, saturated: null };
  };
}
