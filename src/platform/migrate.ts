// Forward-only SQL migrations (migrations/NNNN_name.sql), each applied once in its own
// transaction, in name order, under an advisory lock so two processes starting at
// once do not race. The same files run on PGlite and PostgreSQL.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { sql, type Database } from './db.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));
const LOCK_KEY = 4242_0001;
const MIGRATIONS_MAX = 10_000;

export interface MigrationResult {
  applied: string[];
  alreadyApplied: number;
}

export async function migrate(db: Database, dir: string = MIGRATIONS_DIR): Promise<MigrationResult> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  if (files.length > MIGRATIONS_MAX) throw new Error('too many migrations');
  await sql`CREATE TABLE IF NOT EXISTS custos_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db.kysely);
  const applied: string[] = [];
  let alreadyApplied = 0;
  for (const file of files) {
    const text = await readFile(path.join(dir, file), 'utf8');
    const did = await db.kysely.transaction().execute(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${LOCK_KEY})`.execute(tx);
      const seen = await sql<{ name: string }>`SELECT name FROM custos_migrations WHERE name = ${file}`.execute(tx);
      if (seen.rows.length > 0) return false;
      await sql.raw(text).execute(tx);
      await sql`INSERT INTO custos_migrations (name) VALUES (${file})`.execute(tx);
      return true;
    });
    if (did) applied.push(file);
    else alreadyApplied += 1;
  }
  return { applied, alreadyApplied };
}
