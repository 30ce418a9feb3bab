// One database handle for the whole process: Kysely over PGlite (embedded default,
// a data folder or memory) or over PostgreSQL (DATABASE_URL). Both drivers parse
// int8 to bigint and leave numeric as a string, so money comes back the same way.
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { withRetry } from './retry.ts';

export type DbKind = 'pglite' | 'postgres';
// The schema is typed per repository with raw SQL results; Kysely's table typing is
// kept open so repositories can stay the only place that names tables.
export type Schema = Record<string, Record<string, unknown>>;
export type Kdb = Kysely<Schema>;
export type Tx = Transaction<Schema>;

export interface Database {
  readonly kind: DbKind;
  readonly kysely: Kdb;
  /** Max connections that may run transactions at once (1 on PGlite). */
  readonly connections: number;
  close(): Promise<void>;
}

const INT8_OID = 20;
// PGlite 0.5 honours parsers given per query (the constructor's are not applied to
// every query), so every query passes them.
const PGLITE_QUERY_OPTIONS = { parsers: { [INT8_OID]: (v: string) => BigInt(v) } };

export interface OpenOptions {
  databaseUrl?: string | null;
  dataDir?: string | null;
  poolSize?: number;
}

export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.poolSize ?? 16);
  return openPglite(options.dataDir ?? null);
}

function openPostgres(url: string, poolSize: number): Database {
  const types = {
    getTypeParser(oid: number, format?: string) {
      if (oid === INT8_OID) return (v: string) => BigInt(v);
      return pg.types.getTypeParser(oid, format as 'text');
    },
  };
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types });
  // An idle client that errors (server restart) must not crash the process.
  pool.on('error', () => {});
  const kysely = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return { kind: 'postgres', kysely, connections: poolSize, close: () => kysely.destroy() };
}

async function openPglite(dataDir: string | null): Promise<Database> {
  const lite = new PGlite(dataDir ?? undefined, PGLITE_QUERY_OPTIONS);
  await lite.waitReady;
  const pool = new PgliteSessionPool(lite);
  const kysely = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: pool as never }) });
  return {
    kind: 'pglite',
    kysely,
    connections: 1,
    close: async () => {
      await kysely.destroy();
      await lite.close();
    },
  };
}

/**
 * PGlite has a single session: this pool hands it to one user at a time (a
 * transaction keeps it until release), so concurrent callers queue instead of
 * interleaving statements inside each other's transactions.
 */
class PgliteSessionPool {
  private readonly lite: PGlite;
  private busy = false;
  private readonly waiters: Array<() => void> = [];
  constructor(lite: PGlite) {
    this.lite = lite;
  }
  async connect() {
    if (this.busy) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.busy = true;
    const lite = this.lite;
    return {
      query: async (text: string, params?: unknown[]) => {
        // Without parameters use the simple protocol, which also runs several
        // statements at once (migrations); with parameters the extended protocol.
        const result =
          params && params.length > 0
            ? await lite.query(text, params as unknown[], PGLITE_QUERY_OPTIONS)
            : (await lite.exec(text, PGLITE_QUERY_OPTIONS)).at(-1) ?? { rows: [], affectedRows: 0 };
        const command = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? 'SELECT';
        return { command, rowCount: result.affectedRows ?? result.rows.length, rows: result.rows };
      },
      release: () => {
        const next = this.waiters.shift();
        if (next) next();
        else this.busy = false;
      },
    };
  }
  async end() {}
}

/**
 * A transaction that is retried (bounded) when the database reports a deadlock, a
 * serialization failure or a unique-key race: the work must touch only the database.
 */
export async function transact<T>(db: Database, work: (tx: Tx) => Promise<T>): Promise<T> {
  return withRetry(() => db.kysely.transaction().execute(work));
}

export { sql };
