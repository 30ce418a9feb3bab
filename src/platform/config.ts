// Configuration from the environment, read once and validated. Every setting has a
// documented default (README "Configuration").
import path from 'node:path';

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
  /** Run the sandbox channel inside `custos serve` (on sandboxPort). */
  readonly sandboxEmbedded: boolean;
  readonly sandboxPort: number;
  readonly sandboxUrl: string;
  readonly sandboxKey: string;
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
}

export class ConfigError extends Error {}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
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
  const sandbox = env.CUSTOS_SANDBOX ?? 'on';
  if (sandbox !== 'on' && sandbox !== 'off') throw new ConfigError(`CUSTOS_SANDBOX must be on or off, got "${sandbox}"`);
  return {
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
    sandboxEmbedded: sandbox === 'on',
    sandboxPort,
    sandboxUrl: (env.CUSTOS_SANDBOX_URL ?? `http://127.0.0.1:${sandboxPort}`).replace(/\/$/, ''),
    sandboxKey: env.CUSTOS_SANDBOX_KEY ?? 'custos-sandbox-dev-key',
    reqTimeWindowS: intFromEnv(env, 'CUSTOS_REQ_TIME_WINDOW_S', 300, 1, 86400),
    notifyScheduleS: schedule ? schedule.split(',').map(Number) : null,
    pollIntervalS: intFromEnv(env, 'CUSTOS_POLL_INTERVAL_S', 1, 1, 3600),
    pollBatch: intFromEnv(env, 'CUSTOS_POLL_BATCH', 200, 1, 5000),
    pollConcurrency: intFromEnv(env, 'CUSTOS_POLL_CONCURRENCY', 8, 1, 256),
    poolWaitMax: intFromEnv(env, 'CUSTOS_POOL_WAIT_MAX', 256, 0, 100_000),
    retryAfterS: intFromEnv(env, 'CUSTOS_RETRY_AFTER_S', 1, 1, 3600),
    shutdownTimeoutS: intFromEnv(env, 'CUSTOS_SHUTDOWN_TIMEOUT_S', 30, 1, 3600),
    demo: (env.CUSTOS_DEMO ?? 'on') !== 'off',
    fileDir: env.CUSTOS_FILE_DIR ? path.resolve(env.CUSTOS_FILE_DIR) : dataDir === null ? null : path.join(dataDir, 'files'),
  };
}
