// Jobs and cron on a Postgres-backed queue (pg-boss) that runs on PGlite and on
// PostgreSQL through the same Kysely connection. A job can be sent inside a business
// transaction (send(..., tx)), so it exists exactly when the state change commits.
import { PgBoss } from 'pg-boss';
import { CompiledQuery } from 'kysely';
import type { Database, Kdb, Tx } from './db.ts';

export interface SendOptions {
  startAfterSeconds?: number;
  singletonKey?: string;
}

export type JobHandler = (data: Record<string, unknown>) => Promise<void>;

export interface Jobs {
  send(queue: string, data: Record<string, unknown>, options?: SendOptions, tx?: Tx): Promise<string | null>;
  work(queue: string, handler: JobHandler, options?: { batchSize?: number; pollingIntervalSeconds?: number }): Promise<void>;
  schedule(queue: string, cron: string, data?: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

function executor(q: Kdb | Tx) {
  return {
    async executeSql(text: string, values: unknown[] = []) {
      return q.executeQuery(CompiledQuery.raw(text, values));
    },
  };
}

export async function createJobs(db: Database, queues: string[], onError: (error: unknown) => void): Promise<Jobs> {
  const boss = new PgBoss({ db: executor(db.kysely), schema: 'pgboss', supervise: true, schedule: true } as never);
  boss.on('error', onError);
  await boss.start();
  for (const name of queues) {
    await boss.createQueue(name, { retryLimit: 2, retryDelay: 5, retryBackoff: true, expireInSeconds: 300 } as never);
  }
  let stopped = false;
  return {
    async send(queue, data, options = {}, tx) {
      const sendOptions: Record<string, unknown> = {};
      if (options.startAfterSeconds && options.startAfterSeconds > 0) sendOptions.startAfter = options.startAfterSeconds;
      if (options.singletonKey) sendOptions.singletonKey = options.singletonKey;
      if (tx) sendOptions.db = executor(tx);
      return boss.send(queue, data, sendOptions as never);
    },
    async work(queue, handler, options = {}) {
      const work = boss.work.bind(boss) as unknown as (q: string, o: object, h: (jobs: Array<{ data: Record<string, unknown> }>) => Promise<void>) => Promise<string>;
      await work(queue, { batchSize: options.batchSize ?? 5, pollingIntervalSeconds: options.pollingIntervalSeconds ?? 1 },
        async (jobs) => {
          // The jobs of a batch run side by side: one slow endpoint does not hold the rest.
          const results = await Promise.allSettled(jobs.map((job) => handler(job.data)));
          const failed = results.find((r) => r.status === 'rejected');
          if (failed) throw (failed as PromiseRejectedResult).reason;
        });
    },
    async schedule(queue, cron, data = {}) {
      await boss.schedule(queue, cron, data, { tz: 'Asia/Shanghai' } as never);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await boss.stop({ graceful: true, wait: true, timeout: 5000 } as never);
    },
  };
}
