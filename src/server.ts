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
import { createShedder } from './platform/load.ts';
import { bearerGuard } from './platform/http/auth.ts';
import { resolveAdminToken } from './platform/admin-token.ts';
import { createSecretBox, resolveMasterKey } from './platform/secrets.ts';
import { resolveSandboxKey } from './platform/sandbox-key.ts';
import { createOutbound, type Resolver } from './platform/outbound.ts';
import { createJobs, type Jobs } from './platform/jobs.ts';
import { createLedger, ledgerRoutes, type Ledger } from './ledger/index.ts';
import { createPaymentCenter, type PaymentCenter } from './payment/index.ts';
import { NOTIFY_QUEUE } from './payment/notify.service.ts';
import { createSandboxAdapter } from './channel/sandbox/adapter.ts';
import type { ChannelAdapter } from './channel/contract.ts';
import { createSettlementService, settlementRoutes, SETTLE_QUEUE, type SettlementService } from './settlement/index.ts';
import { cstDate } from './platform/time.ts';
import { createFund, type Fund } from './fund/index.ts';
import { createReconModule, RECON_QUEUE, type ReconModule } from './recon/index.ts';
import { createRateLimiter, type RateLimiter } from './platform/ratelimit.ts';
import { ipRateLimits } from './platform/http/ratelimit.hooks.ts';
import { guardAdapter, type GuardedAdapter } from './channel/guard.ts';
import { channelGuardMetrics } from './channel/guard.metrics.ts';
import { createRisk, RISK_QUEUE, type Risk } from './risk/index.ts';

const EXPIRY_INTERVAL_MS = 1000;
/** Polling rounds per tick at most (each of config.pollBatch rows). */
const POLL_ROUNDS_PER_TICK = 20;
const CLOSE_IDLE_SWEEP_MS = 50;

export interface Platform {
  app: FastifyInstance;
  db: Database;
  ledger: Ledger;
  payment: PaymentCenter;
  settlement: SettlementService;
  fund: Fund;
  recon: ReconModule;
  risk: Risk;
  jobs: Jobs;
  /** Flow control: the request-rate limiter (Redis or in-process) and the guarded channel adapters. */
  rateLimiter: RateLimiter;
  channels: GuardedAdapter[];
  adminToken: string;
  adminTokenFile: string | null;
  /** True when this start generated the admin token (the banner shows it once, to a terminal). */
  adminTokenGenerated: boolean;
  /** Starts the workers and timers of a serving process; returns a stop function (resolves when the running ticks end). */
  startBackground(): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface PlatformOptions {
  /** The embedded demo's stand-in for owners' phones: each SMS the fund sends is also handed here. */
  smsEcho?: (line: string) => void;
  clock?: Clock;
  /** An open database to use (tests); the platform will not close it. */
  db?: Database;
  /** Channel adapters; default: the sandbox at config.sandboxUrl when the sandbox is on, else none. */
  adapters?: ChannelAdapter[];
  /** How outbound requests to merchant URLs resolve host names (tests play DNS with it). */
  outboundResolve?: Resolver;
  /** Reconciliation hooks and settings (holds from settlement, fee function, pool TTL). */
  /** Loss-prevention monitor settings (tests shorten the stuck thresholds). */
  risk?: Pick<Parameters<typeof createRisk>[0], 'monitors' | 'webhookTimeoutMs'>;
  recon?: Pick<Parameters<typeof createReconModule>[0], 'onMistakeOpened' | 'onMistakeResolved' | 'expectedChannelFeeE5' | 'poolTtlDays' | 'channels' | 'dailyChannels'>;
}

export async function createPlatform(config: Config, options: PlatformOptions = {}): Promise<Platform> {
  const clock = options.clock ?? systemClock;
  const now = () => new Date(Number(clock.nowNs() / 1_000_000n));
  const database = options.db ?? (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.ledgerPoolSize }));
  await migrate(database);
  const { token, file: adminTokenFile, generated: adminTokenGenerated } = await resolveAdminToken(config);
  const masterKey = await resolveMasterKey(config);
  const box = createSecretBox(masterKey);
  const metrics = createMetrics();
  const ledger = createLedger({ db: database, clock, batchMax: config.ledgerBatchMax });
  const guard = bearerGuard(token);
  let app: FastifyInstance | null = null;
  const logError = (error: unknown) => app?.log.error({ err: error }, 'job queue error');
  const jobs = await createJobs(database, [NOTIFY_QUEUE, SETTLE_QUEUE, RECON_QUEUE, RISK_QUEUE], logError);
  const sandboxKey = config.sandboxEnabled ? (await resolveSandboxKey(config)).key : null;
  // Every channel call goes through a timeout, a concurrency bound and a circuit breaker.
  const rawAdapters = options.adapters ?? (sandboxKey !== null ? [createSandboxAdapter({ baseUrl: config.sandboxUrl, key: sandboxKey })] : []);
  let adapters: GuardedAdapter[] = [];
  const onChannelCall = channelGuardMetrics(metrics.registry, () => adapters);
  adapters = rawAdapters.map((a) => guardAdapter(a, config.channelGuard, onChannelCall));
  const rateLimiter = createRateLimiter({ redisUrl: config.redisUrl, prefix: config.rate.prefix });
  // Merchant-supplied URLs (notifyUrl) are reached only through this client.
  const outbound = createOutbound({ allow: config.outboundAllow, resolve: options.outboundResolve });
  const settlement = createSettlementService({ db: database, ledger, adapters: () => adapters, publicUrl: config.publicUrl, now, log: (msg, extra) => app?.log.warn(extra ?? {}, msg) });
  await settlement.loadCalendar();
  // Late-bound: reconciliation is created after the payment center, which needs the fund.
  const fund = createFund({ db: database, ledger, clock, adminToken: token, masterKey, publicUrl: config.publicUrl, smsEcho: options.smsEcho, accountBlocked: (id) => recon.service.isAccountBlocked(id) });
  const risk = createRisk({
    db: database, clock, ledger, settlement, fund, guard, registry: metrics.registry, ...options.risk,
    webhookUrl: config.alertWebhookUrl, webhookFormat: config.alertWebhookFormat, log: (msg, extra) => app?.log.warn(extra ?? {}, msg),
  });
  const payment = createPaymentCenter({
    db: database, ledger, jobs, box, adapters, defaultIfCode: adapters[0]?.ifCode ?? 'sandbox', publicUrl: config.publicUrl, outbound,
    reqTimeWindowMs: config.reqTimeWindowS * 1000, notifyScheduleS: config.notifyScheduleS ?? undefined, guard,
    log: (msg, extra) => app?.log.info(extra ?? {}, msg), now, pollConcurrency: config.pollConcurrency,
    // Inside the payment-success transaction. The fund center's own orders are household
    // deposits (the fund books them); every other order is merchant income (settlement
    // computes its fee, splits and available_on).
    onPaid: async (tx, order) => {
      if (await fund.ownsOrder(tx, order)) await fund.onPaid(tx, order);
      else {
        await settlement.onPaid(tx, order);
        await risk.onPaid(tx, order);
      }
    },
    checkOrder: risk.checkOrder,
    onRefunded: async (tx, refund) => {
      if (!(await fund.ownsOrder(tx, refund))) await settlement.onRefunded(tx, refund);
    },
    rateLimiter, rateDefaults: { mchPerS: config.rate.mchPerS, appPerS: config.rate.appPerS, windowS: config.rate.windowS },
  });
  fund.attach(payment);
  risk.attach(payment);
  await fund.start(); // seals owners' id numbers and phones left in clear before 0010
  // Reconciliation holds: money tied to an open mistake stays out of settlement until
  // the mistake is resolved (both inside the mistake's own transaction).
  const recon = createReconModule({
    db: database, ledger, payment, guard, fileDir: config.fileDir, inboxDir: config.reconInbox, sandbox: { baseUrl: config.sandboxUrl, key: sandboxKey ?? '' },
    // No sandbox channel, no daily sandbox reconciliation.
    ...(sandboxKey === null ? { dailyChannels: [] } : {}),
    ...options.recon,
    onMistakeOpened: async (tx, m) => {
      if (m.mchNo !== null && m.amountFen > 0n) await settlement.holds.place(tx, { ref: `recon:${m.id}`, mchNo: m.mchNo, amountFen: m.amountFen, reason: 'recon', note: m.type });
      await options.recon?.onMistakeOpened?.(tx, m);
    },
    onMistakeResolved: async (tx, m) => {
      await settlement.holds.release(tx, `recon:${m.id}`);
      await options.recon?.onMistakeResolved?.(tx, m);
    },
  });
  app = await buildApp({
    db: database, metrics, logLevel: config.logLevel, metricsGuard: bearerGuard(config.metricsToken ?? token),
    shed: {
      retryAfterS: config.retryAfterS,
      check: (() => {
        const shed = createShedder({ db: database, poolWaitMax: config.poolWaitMax, queues: () => [{ name: 'ledger', stats: ledger.stats }, { name: 'orders', stats: payment.orders.insertQueue }] });
        // While shutting down every new request is refused the same way (work in flight finishes).
        return () => (closed ? { poolWaiting: 0, saturated: '服务正在停止 / shutting down', closing: true } : shed());
      })(),
    },
    modules: [ipRateLimits(rateLimiter, config.rate), ledgerRoutes(ledger, metrics, guard), ...payment.routes, settlementRoutes({ db: database, settlement, adapters: () => adapters, guard }), ...fund.routes, ...recon.routes, ...risk.routes],
  });
  let closed = false;
  const stops: Array<() => Promise<void>> = [];
  let stopping: Promise<void> | null = null;
  // Every caller (the serve command, close(), a test) waits for the same running ticks.
  const stopBackground = (): Promise<void> => {
    stopping ??= Promise.all(stops.splice(0).map((stop) => stop())).then(() => undefined);
    return stopping;
  };
  // One polling tick: rounds of the check schedule while rounds come back full (a
  // backlog after a restart drains at once), at most POLL_ROUNDS_PER_TICK rounds.
  const pollTick = async () => {
    for (let round = 0; round < POLL_ROUNDS_PER_TICK && !closed; round += 1) {
      const result = await payment.poll(undefined, config.pollBatch);
      if (result.checked < config.pollBatch) break;
    }
  };
  return {
    app, db: database, ledger, payment, settlement, fund, recon, risk, jobs, rateLimiter, channels: adapters, adminToken: token, adminTokenFile, adminTokenGenerated,
    async startBackground() {
      await payment.notify.start();
      await recon.startJobs(jobs, (e) => app?.log.error({ err: e }, 'reconciliation job failed'));
      await risk.startJobs(jobs, (e) => app?.log.error({ err: e }, 'risk monitors failed'));
      stops.push(every(EXPIRY_INTERVAL_MS, () => ledger.expireDue(), (e) => app?.log.error({ err: e }, 'expiring pending transfers failed')));
      stops.push(every(config.pollIntervalS * 1000, pollTick, (e) => app?.log.error({ err: e }, 'payment polling failed')));
      // Settlement: every day at 09:00 Beijing time settle the day and send its payouts; poll open payouts.
      await jobs.work(SETTLE_QUEUE, async () => { await settlement.runAndPay(cstDate(new Date())); }, { batchSize: 1 });
      await jobs.schedule(SETTLE_QUEUE, '0 9 * * *');
      stops.push(every(config.pollIntervalS * 1000, () => settlement.pollPayouts(config.pollBatch), (e) => app?.log.error({ err: e }, 'payout polling failed')));
      return stopBackground;
    },
    /**
     * Graceful: stop the pollers and timers (their running tick finishes), stop
     * accepting and finish the requests in flight (new requests on open
     * connections get 503 OVERLOADED), let the group commits answer what they accepted, stop the job
     * workers, close the pool.
     */
    async close() {
      if (closed) return;
      closed = true;
      const step = (msg: string) => app?.log.info(msg);
      await stopBackground();
      step('shutdown: pollers and timers stopped');
      if (app) await closeHttp(app);
      step('shutdown: HTTP closed, requests in flight answered');
      await Promise.all([drainQueue(ledger.stats), drainQueue(payment.orders.insertQueue)]);
      await jobs.stop();
      for (const a of adapters) a.guard.shutdown();
      await rateLimiter.close();
      step('shutdown: group commits drained, job workers stopped');
      if (!options.db) await database.close();
    },
  };
}

/**
 * Stops accepting and waits for the requests in flight. A keep-alive connection whose
 * request finishes after close() began would otherwise stay open until its keep-alive
 * timeout (72 s): such connections are closed as soon as they are idle.
 */
async function closeHttp(app: FastifyInstance): Promise<void> {
  const closing = app.close();
  const sweep = setInterval(() => app.server.closeIdleConnections?.(), CLOSE_IDLE_SWEEP_MS);
  try {
    await closing;
  } finally {
    clearInterval(sweep);
  }
}

/** Waits (bounded) until a group commit has answered everything it accepted. */
async function drainQueue(stats: { queued: number }, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (stats.queued > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** Runs `work` every `ms`, never two at once; returns a stop function that resolves when the running one ends. */
function every(ms: number, work: () => Promise<unknown>, onError: (error: unknown) => void): () => Promise<void> {
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = work().then(() => undefined, onError).finally(() => {
      running = null;
    });
  }, ms);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
