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
import { createReconModule, RECON_QUEUE, type ReconModule } from './recon/index.ts';

const EXPIRY_INTERVAL_MS = 1000;

export interface Platform {
  app: FastifyInstance;
  db: Database;
  ledger: Ledger;
  payment: PaymentCenter;
  recon: ReconModule;
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
  /** Reconciliation hooks and settings (holds from settlement, fee function, pool TTL). */
  recon?: Pick<Parameters<typeof createReconModule>[0], 'onMistakeOpened' | 'onMistakeResolved' | 'expectedChannelFeeE5' | 'poolTtlDays' | 'channels' | 'dailyChannels'>;
}

export async function createPlatform(config: Config, options: PlatformOptions = {}): Promise<Platform> {
  const clock = options.clock ?? systemClock;
  const database = options.db ?? (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.ledgerPoolSize }));
  await migrate(database);
  const { token, file: adminTokenFile } = await resolveAdminToken(config);
  const box = createSecretBox(await resolveMasterKey(config));
  const metrics = createMetrics();
  const ledger = createLedger({ db: database, clock, batchMax: config.ledgerBatchMax });
  const guard = bearerGuard(token);
  let app: FastifyInstance | null = null;
  const logError = (error: unknown) => app?.log.error({ err: error }, 'job queue error');
  const jobs = await createJobs(database, [NOTIFY_QUEUE, RECON_QUEUE], logError);
  const adapters = options.adapters ?? [createSandboxAdapter({ baseUrl: config.sandboxUrl, key: config.sandboxKey })];
  const payment = createPaymentCenter({
    db: database, ledger, jobs, box, adapters, defaultIfCode: adapters[0].ifCode, publicUrl: config.publicUrl,
    reqTimeWindowMs: config.reqTimeWindowS * 1000, notifyScheduleS: config.notifyScheduleS ?? undefined, guard,
    log: (msg, extra) => app?.log.info(extra ?? {}, msg),
  });
  const recon = createReconModule({
    db: database, ledger, payment, guard, fileDir: config.fileDir, sandbox: { baseUrl: config.sandboxUrl, key: config.sandboxKey }, ...options.recon,
  });
  app = await buildApp({
    db: database, metrics, logLevel: config.logLevel,
    modules: [ledgerRoutes(ledger, metrics, guard), ...payment.routes, ...recon.routes],
  });
  let closed = false;
  const stops: Array<() => void> = [];
  return {
    app, db: database, ledger, payment, recon, jobs, adminToken: token, adminTokenFile,
    async startBackground() {
      await payment.notify.start();
      await recon.startJobs(jobs, (e) => app?.log.error({ err: e }, 'reconciliation job failed'));
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
