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
  /** Callers waiting for a connection right now (load shedding's main signal). */
  waiting?(): number;
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
  pool.on('connect', (client) => acceptCopyIn(client));
  const kysely = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return { kind: 'postgres', kysely, connections: poolSize, waiting: () => pool.waitingCount, close: () => kysely.destroy() };
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
    waiting: () => pool.waitingCount,
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
        const copy = copyOf(text, params);
        if (copy) {
          const done = await lite.query(`COPY ${copy.target} FROM '/dev/blob'`, [], { blob: new Blob([copy.data]) });
          return { command: 'INSERT', rowCount: done.affectedRows ?? 0, rows: [] }; // Kysely counts rows of INSERT only
        }
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
  get waitingCount(): number {
    return this.waiters.length;
  }
  async end() {}
}

// --- COPY FROM STDIN ------------------------------------------------------------------
// Bulk staging through Kysely: copyText() sends a marked statement whose one parameter
// is the data; the connection (pg client or PGlite session) recognises the mark and
// runs COPY on the same session, so the rows belong to the caller's transaction.

const COPY_MARK = '/*custos:copy-in*/';
const COPY_TEXT = /^\/\*custos:copy-in\*\/([a-z_][a-z0-9_]* \([a-z0-9_, ]+\)) \$1$/;

/**
 * Loads rows in COPY text format (tab-separated, \\ escapes, one row per line) into
 * `target` ("table (col, ...)"): a string, or its UTF-8 bytes. Returns the row count.
 */
export async function copyText(q: Kdb | Tx, target: string, data: string | Buffer): Promise<number> {
  assertCopyTarget(target);
  if (data.length === 0) return 0;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const ended = bytes[bytes.length - 1] === 0x0a ? bytes : Buffer.concat([bytes, Buffer.from('\n')]);
  const r = await sql`${sql.raw(COPY_MARK + target + ' ')}${ended}`.execute(q);
  return Number(r.numAffectedRows ?? 0n);
}

function assertCopyTarget(target: string): void {
  if (!COPY_TEXT.test(`${COPY_MARK}${target} $1`)) throw new Error(`not a COPY target: ${target}`);
}

function copyOf(text: string, params: readonly unknown[] | undefined): { target: string; data: Buffer } | null {
  if (!text.startsWith(COPY_MARK)) return null;
  const m = COPY_TEXT.exec(text);
  if (!m || !params || params.length !== 1 || !Buffer.isBuffer(params[0])) throw new Error('malformed COPY request');
  return { target: m[1], data: params[0] };
}

/** Teaches a pg client the marked COPY request (see copyText). */
function acceptCopyIn(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (text: unknown, params?: unknown, callback?: unknown) => {
    const copy = typeof text === 'string' ? copyOf(text, params as unknown[]) : null;
    if (!copy) return query(text, params, callback);
    return new Promise((resolve, reject) => {
      query(new CopyIn(`COPY ${copy.target} FROM STDIN`, copy.data, (error, rowCount) => {
        if (error) reject(error);
        else resolve({ command: 'INSERT', rowCount, rows: [] }); // Kysely counts rows of INSERT only
      }));
    });
  };
}

/** A pg "submittable": sends COPY … FROM STDIN, then the data in one CopyData message, then CopyDone. */
class CopyIn {
  readonly text: string;
  private readonly data: Buffer;
  private readonly done: (error: Error | null, rowCount: number) => void;
  private rowCount = 0;
  private finished = false;
  constructor(text: string, data: Buffer, done: (error: Error | null, rowCount: number) => void) {
    this.text = text;
    this.data = data;
    this.done = done;
  }
  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }
  handleCopyInResponse(connection: { sendCopyFromChunk(b: Buffer): void; endCopyFrom(): void }): void {
    const piece = 1 << 20;
    for (let at = 0; at < this.data.length; at += piece) connection.sendCopyFromChunk(this.data.subarray(at, at + piece));
    connection.endCopyFrom();
  }
  handleCommandComplete(msg: { text?: string }): void {
    this.rowCount = Number(/(\d+)$/.exec(msg.text ?? '')?.[1] ?? 0);
  }
  handleReadyForQuery(): void {
    this.finish(null);
  }
  handleError(error: Error): void {
    this.finish(error);
  }
  handleEmptyQuery(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
  private finish(error: Error | null): void {
    if (this.finished) return;
    this.finished = true;
    this.done(error, this.rowCount);
  }
}

/**
 * A transaction that is retried (bounded) when the database reports a deadlock, a
 * serialization failure or a unique-key race: the work must touch only the database.
 */
export async function transact<T>(db: Database, work: (tx: Tx) => Promise<T>): Promise<T> {
  return withRetry(() => db.kysely.transaction().execute(work));
}

export { sql };
