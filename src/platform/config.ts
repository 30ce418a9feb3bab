// Configuration from the environment, read once and validated. Every setting has a
// documented default (docs/configuration.md).
import path from 'node:path';
import { parseAllowList, splitAllowList } from './outbound.ts';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string | null;
  /** PGlite data folder; null = in memory. */
  readonly dataDir: string | null;
  readonly adminToken: string | null;
  readonly logLevel: string;
  readonly ledgerBatchMax: number;
  readonly ledgerPoolSize: number;
  /** AES-256 key that seals secrets at rest (hex or base64); generated in the data folder when unset. */
  readonly masterKey: string | null;
  /** The platform's public base URL (cashier links, channel notify URLs). */
  readonly publicUrl: string;
  /**
   * The sandbox channel is one of this platform's channels (CUSTOS_SANDBOX=on|external).
   * Default on with the embedded database, off with DATABASE_URL.
   */
  readonly sandboxEnabled: boolean;
  /** Run the sandbox channel inside `custos serve` (on sandboxPort): CUSTOS_SANDBOX=on. */
  readonly sandboxEmbedded: boolean;
  readonly sandboxPort: number;
  readonly sandboxUrl: string;
  /** CUSTOS_SANDBOX_KEY; null = generated into the data folder (see sandbox-key.ts), required with DATABASE_URL. */
  readonly sandboxKey: string | null;
  /** Non-public addresses that outbound requests to merchant URLs may reach (CUSTOS_OUTBOUND_ALLOW); empty by default. */
  readonly outboundAllow: readonly string[];
  readonly reqTimeWindowS: number;
  /** Seconds between notification attempts; null = WeChat Pay's ~24 h schedule. */
  readonly notifyScheduleS: number[] | null;
  /** Seconds between polling ticks (each tick takes the due rows of the check schedule). */
  readonly pollIntervalS: number;
  /** Rows claimed per polling round, and channel queries in flight at once. */
  readonly pollBatch: number;
  readonly pollConcurrency: number;
  /** Load shedding: 503 OVERLOADED while more callers than this wait for a pool connection. */
  readonly poolWaitMax: number;
  /** Retry-After seconds on a 503. */
  readonly retryAfterS: number;
  /** Graceful shutdown: how long in-flight work may take after SIGTERM before the process gives up (exit 1). */
  readonly shutdownTimeoutS: number;
  /** Seed demo data on `custos serve` with the embedded database. */
  readonly demo: boolean;
  /** Statement files as received (content-addressed); null = a fresh temp folder (in-memory data). */
  readonly fileDir: string | null;
  /** Loss-prevention alerts are posted here (WeCom / DingTalk group robot); null = stored and in /metrics only. */
  readonly alertWebhookUrl: string | null;
  readonly alertWebhookFormat: 'wecom' | 'dingtalk';
  /** Bearer token for /metrics; null = the admin token. */
  readonly metricsToken: string | null;
  /** Flow control (docs/flow-control.md): Redis for shared rate-limit counts; null = in-process. */
  readonly redisUrl: string | null;
  readonly rate: RateConfig;
  readonly channelGuard: ChannelGuardConfig;
  /** The only folder the reconciliation API reads statement files from (null: a temp folder). */
  readonly reconInbox: string | null;
}

export interface RateConfig {
  /** Key prefix in Redis (several deployments or tests can share one Redis). */
  readonly prefix: string;
  /** Limits are "per second", counted over windows of this many seconds. */
  readonly windowS: number;
  /** Merchant API defaults; a merchant's own setting (admin API) overrides the first two. */
  readonly mchPerS: number;
  readonly appPerS: number;
  readonly apiIpPerS: number;
  /** H5 pages and the cashier, per IP, per minute. */
  readonly h5IpPerMin: number;
  /** Sign-in attempts (owner H5 login, codes), per IP, per minute. */
  readonly signInIpPerMin: number;
}

export interface ChannelGuardConfig {
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly queueMax: number;
  /** Calls in the rolling window before the breaker may open; it opens when more than half failed. */
  readonly breakerVolume: number;
  readonly breakerResetMs: number;
  readonly breakerWindowMs: number;
}

export class ConfigError extends Error {}

/**
 * Settings that keep flow control out of the way of a load generator on one IP: the
 * benchmarks, and tests of other areas. Never for a deployment.
 */
export const FLOW_CONTROL_OFF_ENV: Readonly<Record<string, string>> = {
  CUSTOS_RATE_MCH_PER_S: '100000', CUSTOS_RATE_APP_PER_S: '100000', CUSTOS_RATE_API_IP_PER_S: '100000', CUSTOS_RATE_H5_IP_PER_MIN: '1000000',
  CUSTOS_RATE_SIGNIN_IP_PER_MIN: '100000', CUSTOS_CHANNEL_CONCURRENCY: '10000', CUSTOS_CHANNEL_QUEUE_MAX: '100000',
};

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function ratePrefix(raw: string | undefined): string {
  if (raw === undefined || raw === '') return 'custos:rl';
  if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(raw)) throw new ConfigError(`CUSTOS_RATE_PREFIX must be 1–64 of A-Z a-z 0-9 : _ . -, got "${raw}"`);
  return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const databaseUrl = env.DATABASE_URL && env.DATABASE_URL !== '' ? env.DATABASE_URL : null;
  let dataDir: string | null = path.resolve(env.CUSTOS_DATA_DIR ?? './data');
  if (env.CUSTOS_DATA_DIR === 'memory' || env.CUSTOS_DATA_DIR === ':memory:') dataDir = null;
  const port = intFromEnv(env, 'PORT', 8080, 0, 65535);
  const sandboxPort = intFromEnv(env, 'CUSTOS_SANDBOX_PORT', 8081, 0, 65535);
  const schedule = env.CUSTOS_NOTIFY_SCHEDULE_S;
  if (schedule !== undefined && schedule !== '' && !/^\d{1,6}(,\d{1,6}){0,29}$/.test(schedule)) {
    throw new ConfigError(`CUSTOS_NOTIFY_SCHEDULE_S must be comma-separated seconds, e.g. "15,15,30", got "${schedule}"`);
  }
  // The sandbox lets anyone pay its orders: with a production database it is off unless asked for.
  const sandbox = env.CUSTOS_SANDBOX && env.CUSTOS_SANDBOX !== '' ? env.CUSTOS_SANDBOX : databaseUrl ? 'off' : 'on';
  if (sandbox !== 'on' && sandbox !== 'off' && sandbox !== 'external') {
    throw new ConfigError(`CUSTOS_SANDBOX must be on, external or off, got "${sandbox}"`);
  }
  const outboundAllow = splitAllowList(env.CUSTOS_OUTBOUND_ALLOW);
  try {
    parseAllowList(outboundAllow);
  } catch (error) {
    throw new ConfigError(`CUSTOS_OUTBOUND_ALLOW: ${(error as Error).message}`);
  }
  const alertWebhookUrl = env.CUSTOS_ALERT_WEBHOOK_URL && env.CUSTOS_ALERT_WEBHOOK_URL !== '' ? env.CUSTOS_ALERT_WEBHOOK_URL : null;
  if (alertWebhookUrl !== null && !/^https?:\/\/[^\s]+$/.test(alertWebhookUrl)) throw new ConfigError(`CUSTOS_ALERT_WEBHOOK_URL must be an http(s) URL, got "${alertWebhookUrl}"`);
  const alertWebhookFormat = env.CUSTOS_ALERT_WEBHOOK_FORMAT ?? 'wecom';
  if (alertWebhookFormat !== 'wecom' && alertWebhookFormat !== 'dingtalk') throw new ConfigError(`CUSTOS_ALERT_WEBHOOK_FORMAT must be wecom or dingtalk, got "${alertWebhookFormat}"`);
  const metricsToken = env.CUSTOS_METRICS_TOKEN && env.CUSTOS_METRICS_TOKEN !== '' ? env.CUSTOS_METRICS_TOKEN : null;
  if (metricsToken !== null && metricsToken.length < 16) throw new ConfigError('CUSTOS_METRICS_TOKEN must be at least 16 characters');
  return {
    alertWebhookUrl, alertWebhookFormat, metricsToken,
    port,
    host: env.HOST ?? '127.0.0.1',
    databaseUrl,
    dataDir,
    adminToken: env.CUSTOS_ADMIN_TOKEN && env.CUSTOS_ADMIN_TOKEN !== '' ? env.CUSTOS_ADMIN_TOKEN : null,
    logLevel: env.LOG_LEVEL ?? 'info',
    ledgerBatchMax: intFromEnv(env, 'CUSTOS_LEDGER_BATCH_MAX', 8190, 1, 8190),
    ledgerPoolSize: intFromEnv(env, 'CUSTOS_DB_POOL_SIZE', 16, 1, 256),
    masterKey: env.CUSTOS_MASTER_KEY && env.CUSTOS_MASTER_KEY !== '' ? env.CUSTOS_MASTER_KEY : null,
    publicUrl: (env.CUSTOS_PUBLIC_URL ?? `http://127.0.0.1:${port}`).replace(/\/$/, ''),
    sandboxEnabled: sandbox !== 'off',
    sandboxEmbedded: sandbox === 'on',
    sandboxPort,
    sandboxUrl: (env.CUSTOS_SANDBOX_URL ?? `http://127.0.0.1:${sandboxPort}`).replace(/\/$/, ''),
    sandboxKey: env.CUSTOS_SANDBOX_KEY && env.CUSTOS_SANDBOX_KEY !== '' ? env.CUSTOS_SANDBOX_KEY : null,
    outboundAllow,
    reqTimeWindowS: intFromEnv(env, 'CUSTOS_REQ_TIME_WINDOW_S', 300, 1, 86400),
    notifyScheduleS: schedule ? schedule.split(',').map(Number) : null,
    pollIntervalS: intFromEnv(env, 'CUSTOS_POLL_INTERVAL_S', 1, 1, 3600),
    pollBatch: intFromEnv(env, 'CUSTOS_POLL_BATCH', 200, 1, 5000),
    pollConcurrency: intFromEnv(env, 'CUSTOS_POLL_CONCURRENCY', 8, 1, 256),
    poolWaitMax: intFromEnv(env, 'CUSTOS_POOL_WAIT_MAX', 256, 0, 100_000),
    retryAfterS: intFromEnv(env, 'CUSTOS_RETRY_AFTER_S', 1, 1, 3600),
    shutdownTimeoutS: intFromEnv(env, 'CUSTOS_SHUTDOWN_TIMEOUT_S', 30, 1, 3600),
    demo: (env.CUSTOS_DEMO ?? 'on') !== 'off',
    redisUrl: env.REDIS_URL && env.REDIS_URL !== '' ? env.REDIS_URL : null,
    rate: {
      prefix: ratePrefix(env.CUSTOS_RATE_PREFIX),
      windowS: intFromEnv(env, 'CUSTOS_RATE_WINDOW_S', 1, 1, 3600),
      mchPerS: intFromEnv(env, 'CUSTOS_RATE_MCH_PER_S', 200, 1, 100_000),
      appPerS: intFromEnv(env, 'CUSTOS_RATE_APP_PER_S', 200, 1, 100_000),
      apiIpPerS: intFromEnv(env, 'CUSTOS_RATE_API_IP_PER_S', 400, 1, 100_000),
      h5IpPerMin: intFromEnv(env, 'CUSTOS_RATE_H5_IP_PER_MIN', 300, 1, 1_000_000),
      signInIpPerMin: intFromEnv(env, 'CUSTOS_RATE_SIGNIN_IP_PER_MIN', 20, 1, 100_000),
    },
    channelGuard: {
      timeoutMs: intFromEnv(env, 'CUSTOS_CHANNEL_TIMEOUT_MS', 10_000, 50, 600_000),
      concurrency: intFromEnv(env, 'CUSTOS_CHANNEL_CONCURRENCY', 64, 1, 10_000),
      queueMax: intFromEnv(env, 'CUSTOS_CHANNEL_QUEUE_MAX', 256, 0, 100_000),
      breakerVolume: intFromEnv(env, 'CUSTOS_CHANNEL_BREAKER_VOLUME', 5, 1, 10_000),
      breakerResetMs: intFromEnv(env, 'CUSTOS_CHANNEL_BREAKER_RESET_MS', 15_000, 10, 3_600_000),
      breakerWindowMs: intFromEnv(env, 'CUSTOS_CHANNEL_BREAKER_WINDOW_MS', 30_000, 100, 3_600_000),
    },
    fileDir: env.CUSTOS_FILE_DIR ? path.resolve(env.CUSTOS_FILE_DIR) : dataDir === null ? null : path.join(dataDir, 'files'),
    reconInbox: env.CUSTOS_RECON_INBOX ? path.resolve(env.CUSTOS_RECON_INBOX) : dataDir === null ? null : path.join(dataDir, 'inbox'),
  };
}
