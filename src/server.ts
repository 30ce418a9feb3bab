// Composition root: opens the database, applies migrations, wires modules into the
// HTTP app and starts background work (expiry of pending transfers).
import type { FastifyInstance } from 'fastify';
import type { Config } from './platform/config.ts';
import { openDatabase, type Database } from './platform/db.ts';
import { migrate } from './platform/migrate.ts';
import { systemClock, type Clock } from './platform/clock.ts';
import { createMetrics } from './platform/metrics.ts';
import { buildApp } from './platform/http/app.ts';
import { bearerGuard } from './platform/http/auth.ts';
import { resolveAdminToken } from './platform/admin-token.ts';
import { createLedger, ledgerRoutes, type Ledger } from './ledger/index.ts';

const EXPIRY_INTERVAL_MS = 1000;

export interface Platform {
  app: FastifyInstance;
  db: Database;
  ledger: Ledger;
  adminToken: string;
  adminTokenFile: string | null;
  close(): Promise<void>;
}

export async function createPlatform(config: Config, clock: Clock = systemClock, db?: Database): Promise<Platform> {
  const database = db ?? (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.ledgerPoolSize }));
  await migrate(database);
  const { token, file: adminTokenFile } = await resolveAdminToken(config);
  const metrics = createMetrics();
  const ledger = createLedger({ db: database, clock, batchMax: config.ledgerBatchMax });
  const guard = bearerGuard(token);
  const app = await buildApp({ db: database, metrics, logLevel: config.logLevel, modules: [ledgerRoutes(ledger, metrics, guard)] });
  let closed = false;
  return {
    app,
    db: database,
    ledger,
    adminToken: token,
    adminTokenFile,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      if (!db) await database.close();
    },
  };
}

/** Periodic work of a serving process; returns a stop function. */
export function startBackground(platform: Platform): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    platform.ledger
      .expireDue()
      .catch((error) => platform.app.log.error({ err: error }, 'expiring pending transfers failed'))
      .finally(() => {
        running = false;
      });
  }, EXPIRY_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
