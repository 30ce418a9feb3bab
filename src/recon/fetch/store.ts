// The statement file store: every file is kept AS RECEIVED before anything parses it,
// on disk under its sha256 (content-addressed: <dir>/<aa>/<sha256>) with a row in
// recon_files. The bytes are streamed to a temp file while they are hashed and
// counted (memory does not grow with the file; a size bound stops a runaway
// transfer), then renamed into place. Storing the same bytes for the same channel,
// day and file type again returns the same row. The batch reads the stored copy
// (`open`), never the network, and the copy's sha256 is checked as it is read.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync } from 'node:fs';
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../../platform/errors.ts';
import { isValidDate } from '../../platform/time.ts';
import type { Database } from '../../platform/db.ts';
import { FetchError, limitsOf, type FetchLimits, type StatementSource } from './source.ts';
import { transfer } from './transports.ts';
import { findFile, insertFile, type ReconFileRow } from './files.repo.ts';

export type { ReconFileRow } from './files.repo.ts';

export interface StatementMeta {
  /** Channel code (ifCode) or bank code. */
  channel: string;
  billDate: string;
  /** e.g. wechat:ALL, alipay:trade, unionpay:ZM, bank:csv. */
  fileType: string;
  /** Merchant account at the channel, or the bank account number. */
  account?: string;
}

export interface StatementStore {
  readonly dir: string;
  /** Fetches with bounded retries and back-off, stores the bytes, records the row. */
  fetchAndStore(source: StatementSource, meta: StatementMeta): Promise<ReconFileRow>;
  /** Stores a file an operator hands in (same path as a local source, one attempt). */
  storeLocal(file: string, meta: StatementMeta, limits?: FetchLimits): Promise<ReconFileRow>;
  /** The stored copy as a stream; errors with STORED_FILE_CORRUPT if its bytes changed. */
  open(row: ReconFileRow): Readable;
  find(id: bigint): Promise<ReconFileRow | null>;
}

export interface StoreOptions {
  db: Database;
  /** Folder for the files; null = a fresh temp folder (in-memory databases, tests). */
  dir: string | null;
  /** Waits between attempts (tests pass a recorder); default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

const NAME_MAX = 255;

export function createStatementStore(options: StoreOptions): StatementStore {
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'custos-files-'));
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  async function fetchAndStore(source: StatementSource, meta: StatementMeta): Promise<ReconFileRow> {
    checkMeta(meta);
    const limits = limitsOf(source);
    let last: FetchError | null = null;
    for (let attempt = 1; attempt <= limits.attemptsMax; attempt += 1) {
      if (attempt > 1) await sleep(Math.min(limits.backoffMaxMs, limits.backoffBaseMs * 2 ** (attempt - 2)));
      try {
        return await attemptOnce(source, meta, limits);
      } catch (error) {
        if (!(error instanceof FetchError)) throw error;
        error.attempts = attempt;
        last = error;
        if (!error.retriable) throw error;
      }
    }
    if (last === null) throw new FetchError('FETCH_FAILED', 'no attempt was made');
    last.message = `${last.message} (gave up after ${last.attempts} attempts)`;
    throw last;
  }

  async function attemptOnce(source: StatementSource, meta: StatementMeta, limits: Required<FetchLimits>): Promise<ReconFileRow> {
    // Statements hold payers and amounts: the folders are 0700, the files 0600.
    await mkdir(path.join(dir, 'tmp'), { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700).catch(() => {});
    const tmp = path.join(dir, 'tmp', `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const hasher = new HashingCounter(limits.sizeMaxBytes);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new FetchError('FETCH_TIMEOUT', `the transfer took longer than ${limits.transferTimeoutMs} ms`)), limits.transferTimeoutMs);
    hasher.once('error', (error) => controller.abort(error instanceof FetchError ? error : new FetchError('FETCH_FAILED', String(error))));
    const toDisk = pipeline(hasher, createWriteStream(tmp, { mode: 0o600 }));
    toDisk.catch(() => {}); // awaited below; on failure the transfer's own error is the one reported
    try {
      const { name } = await transfer(source, { vars: { billDate: meta.billDate, account: meta.account ?? '' }, destination: hasher, signal: controller.signal, limits });
      await toDisk;
      const { sha256, sizeBytes } = hasher.result();
      const relative = path.join(sha256.slice(0, 2), sha256);
      await placeFile(tmp, path.join(dir, relative), sizeBytes);
      const { row } = await insertFile(options.db.kysely, {
        channel: meta.channel, source_kind: source.kind, account: meta.account ?? '', bill_date: meta.billDate,
        file_type: meta.fileType, original_name: name.slice(0, NAME_MAX), sha256, size_bytes: BigInt(sizeBytes), stored_path: relative,
      });
      return row;
    } catch (error) {
      if (error instanceof FetchError) throw error;
      if (controller.signal.aborted && controller.signal.reason instanceof FetchError) throw controller.signal.reason;
      throw error;
    } finally {
      clearTimeout(timer);
      hasher.destroy(); // a failed attempt leaves the temp file open: close it
      await toDisk.catch(() => {});
      await rm(tmp, { force: true });
    }
  }

  function open(row: ReconFileRow): Readable {
    const verifier = new HashingCounter(Number(row.size_bytes), row.sha256);
    const file = createReadStream(path.join(dir, row.stored_path));
    file.on('error', (error) => verifier.destroy(new AppError('STORED_FILE_MISSING', 500, `stored statement file ${row.stored_path} (recon_files ${row.id}) cannot be read: ${error.message}`)));
    return file.pipe(verifier);
  }

  return {
    dir,
    fetchAndStore,
    storeLocal: (file, meta, limits = {}) => fetchAndStore({ kind: 'local', path: file, ...limits, attemptsMax: 1 }, meta),
    open,
    find: (id) => findFile(options.db.kysely, id),
  };
}

function checkMeta(meta: StatementMeta): void {
  if (!isValidDate(meta.billDate)) throw new AppError('RECON_BILL_DATE_INVALID', 400, `billDate must be YYYY-MM-DD, got ${JSON.stringify(meta.billDate)}`);
  for (const [name, value] of [['channel', meta.channel], ['fileType', meta.fileType]] as const) {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(value)) throw new AppError('RECON_FILE_META_INVALID', 400, `${name} must be 1–64 letters, digits or _.:-, got ${JSON.stringify(value)}`);
  }
}

/** Moves the temp file to its content address; identical bytes already there are kept. */
async function placeFile(tmp: string, target: string, sizeBytes: number): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  const existing = await stat(target).catch(() => null);
  if (existing && existing.size === sizeBytes) return;
  await rename(tmp, target);
}

/**
 * Passes bytes through while hashing and counting them. Errors when more than
 * `sizeMax` bytes pass (FETCH_TOO_LARGE), or, when `expectSha256` is given, at the end
 * if the bytes do not hash to it (STORED_FILE_CORRUPT).
 */
class HashingCounter extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private digest: string | null = null;
  private readonly sizeMax: number;
  private readonly expectSha256: string | null;
  constructor(sizeMax: number, expectSha256: string | null = null) {
    super();
    this.sizeMax = sizeMax;
    this.expectSha256 = expectSha256;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.sizeMax) {
      done(this.expectSha256 === null
        ? new FetchError('FETCH_TOO_LARGE', `the file is larger than the ${this.sizeMax} bytes allowed`)
        : new AppError('STORED_FILE_CORRUPT', 500, `the stored file is longer than the ${this.sizeMax} bytes recorded: it was changed after it was stored`));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    if (this.expectSha256 !== null && (this.digest !== this.expectSha256 || this.bytes !== this.sizeMax)) {
      done(new AppError('STORED_FILE_CORRUPT', 500, `the stored file's sha256 is ${this.digest}, recorded ${this.expectSha256}: it was changed after it was stored`));
      return;
    }
    done();
  }
  result(): { sha256: string; sizeBytes: number } {
    if (this.digest === null) throw new Error('HashingCounter: result() before the end of the stream');
    return { sha256: this.digest, sizeBytes: this.bytes };
  }
}
