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
  return {
    port: intFromEnv(env, 'PORT', 8080, 0, 65535),
    host: env.HOST ?? '127.0.0.1',
    databaseUrl,
    dataDir,
    adminToken: env.CUSTOS_ADMIN_TOKEN && env.CUSTOS_ADMIN_TOKEN !== '' ? env.CUSTOS_ADMIN_TOKEN : null,
    logLevel: env.LOG_LEVEL ?? 'info',
    ledgerBatchMax: intFromEnv(env, 'CUSTOS_LEDGER_BATCH_MAX', 8190, 1, 8190),
    ledgerPoolSize: intFromEnv(env, 'CUSTOS_DB_POOL_SIZE', 16, 1, 256),
  };
}
