// Test databases: PGlite in memory by default; with DATABASE_URL, a fresh PostgreSQL
// database per call (created from that URL, dropped on close).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createScratchDatabase, type ScratchDatabase } from '../src/platform/pg-admin.ts';
import { openDatabase, type Database } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';

export const PG_URL = process.env.DATABASE_URL && process.env.DATABASE_URL !== '' ? process.env.DATABASE_URL : null;
/** For tests that need PostgreSQL (real concurrency and locking). */
export const PG_ONLY = PG_URL ? false : 'needs PostgreSQL: set DATABASE_URL (PGlite has one session, FOR UPDATE never blocks there)';

export interface TestDb {
  db: Database;
  url: string | null;
  close(): Promise<void>;
}

export async function createPgDatabase(): Promise<ScratchDatabase> {
  if (!PG_URL) throw new Error('DATABASE_URL is not set');
  return createScratchDatabase(PG_URL, 'custos_t');
}

export async function openTestDb(options: { poolSize?: number } = {}): Promise<TestDb> {
  if (PG_URL) {
    const created = await createPgDatabase();
    const db = await openDatabase({ databaseUrl: created.url, poolSize: options.poolSize ?? 8 });
    await migrate(db);
    return { db, url: created.url, close: async () => { await db.close(); await created.drop(); } };
  }
  const db = await openDatabase({ dataDir: null });
  await migrate(db);
  return { db, url: null, close: () => db.close() };
}

/**
 * Where a CLI test's `custos` process keeps its data: a fresh PostgreSQL database when
 * DATABASE_URL is set (dropped by `drop`), and always a fresh folder (the embedded
 * database's data folder otherwise).
 */
export async function cliStore(prefix: string): Promise<{ dir: string; pgUrl: string | null; drop: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  if (!PG_URL) return { dir, pgUrl: null, drop: async () => {} };
  const created = await createPgDatabase();
  return { dir, pgUrl: created.url, drop: created.drop };
}
