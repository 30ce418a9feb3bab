// Composition root: opens the database, applies migrations, wires the modules into
// the HTTP app and runs background work (expiry of pending transfers, channel
// polling, notification delivery).
import type { FastifyInstance } from 'fastify';
import type { Config } from './platform/config.ts';
import { openDatabase, type Database } from './platform/db.ts';
import { migrate } from './platform/migrate.ts';
import { systemClock, type Clock } from './platform/clock.ts';
import { createMetrics } from './platform/metrics.ts';
import { buildApp } from './platform/http/app.ts';
import { bearerGuard } from './platform/http/auth.ts';
import { resolveAdminToken } from './platform/admin-token.ts';
import { createSecretBox, resolveMasterKey } from './platform/secrets.ts';
import { createJobs, type Jobs } from './platform/jobs.ts';
import { createLedger, ledgerRoutes, type Ledger } from './ledger/index.ts';
import { createPaymentCenter, type PaymentCenter } from './payment/index.ts';
import { NOTIFY_QUEUE } from './payment/notify.service.ts';
import { createSandboxAdapter } from './channel/sandbox/adapter.ts';
import type { ChannelAdapter } from './channel/contract.ts';
import { createFund, type Fund } from './fund/index.ts';

const EXPIRY_INTERVAL_MS = 1000;

export interface Platform {
  app: FastifyInstance;
  db: Database;
  ledger: Ledger;
  payment: PaymentCenter;
  fund: Fund;
  jobs: Jobs;
  adminToken: string;
  adminTokenFile: string | null;
  /** Starts the workers and timers of a serving process; returns a stop function. */
  startBackground(): Promise<() => void>;
  close(): Promise<void>;
}

export interface PlatformOptions {
  clock?: Clock;
  /** An open database to use (tests); the platform will not close it. */
  db?: Database;
  /** Channel adapters; default: the sandbox at config.sandboxUrl. */
  adapters?: ChannelAdapter[];
}

export async function createPlatform(config: Config, options: PlatformOptions = {}): Promise<Platform> {
  const clock = options.clock ?? systemClock;
  const database = options.db ?? (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.ledgerPoolSize }));
  await migrate(database);
  const { token, file: adminTokenFile } = await resolveAdminToken(config);
  const masterKey = await resolveMasterKey(config);
  const box = createSecretBox(masterKey);
  const metrics = createMetrics();
  const ledger = createLedger({ db: database, clock, batchMax: config.ledgerBatchMax });
  const guard = bearerGuard(token);
  let app: FastifyInstance | null = null;
  const logError = (error: unknown) => app?.log.error({ err: error }, 'job queue error');
  const jobs = await createJobs(database, [NOTIFY_QUEUE], logError);
  const adapters = options.adapters ?? [createSandboxAdapter({ baseUrl: config.sandboxUrl, key: config.sandboxKey })];
  const fund = createFund({ db: database, ledger, clock, adminToken: token, masterKey, publicUrl: config.publicUrl });
  const payment = createPaymentCenter({
    db: database, ledger, jobs, box, adapters, defaultIfCode: adapters[0].ifCode, publicUrl: config.publicUrl,
    reqTimeWindowMs: config.reqTimeWindowS * 1000, notifyScheduleS: config.notifyScheduleS ?? undefined, guard,
    log: (msg, extra) => app?.log.info(extra ?? {}, msg),
    onPaid: async (tx, order) => {
      await fund.onPaid(tx, order);
    },
  });
  fund.attach(payment);
  app = await buildApp({
    db: database, metrics, logLevel: config.logLevel,
    modules: [ledgerRoutes(ledger, metrics, guard), ...payment.routes, ...fund.routes],
  });
  let closed = false;
  const stops: Array<() => void> = [];
  return {
    app, db: database, ledger, payment, fund, jobs, adminToken: token, adminTokenFile,
    async startBackground() {
      await payment.notify.start();
      stops.push(every(EXPIRY_INTERVAL_MS, () => ledger.expireDue(), (e) => app?.log.error({ err: e }, 'expiring pending transfers failed')));
      stops.push(every(config.pollIntervalS * 1000, () => payment.poll(), (e) => app?.log.error({ err: e }, 'payment polling failed')));
      return () => stops.splice(0).forEach((stop) => stop());
    },
    async close() {
      if (closed) return;
      closed = true;
      stops.splice(0).forEach((stop) => stop());
      await app?.close();
      await jobs.stop();
      if (!options.db) await database.close();
    },
  };
}

/** Runs `work` every `ms`, never two at once; returns a stop function. */
function every(ms: number, work: () => Promise<unknown>, onError: (error: unknown) => void): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    work().catch(onError).finally(() => {
      running = false;
    });
  }, ms);
  timer.unref();
  return () => clearInterval(timer);
}
