// All SQL of the statement file store (table recon_files).
import { sql, type Kdb, type Tx } from '../../platform/db.ts';

type Q = Kdb | Tx;

export interface ReconFileRow {
  id: bigint;
  channel: string;
  source_kind: 'http' | 'ftp' | 'sftp' | 'local';
  account: string;
  /** YYYY-MM-DD. */
  bill_date: string;
  file_type: string;
  original_name: string;
  sha256: string;
  size_bytes: bigint;
  /** Relative to the store's folder. */
  stored_path: string;
  fetched_at: Date;
}

export type NewReconFile = Omit<ReconFileRow, 'id' | 'fetched_at'>;

const COLUMNS = sql`id, channel, source_kind, account, bill_date::text AS bill_date, file_type, original_name, sha256, size_bytes, stored_path, fetched_at`;

/** Inserts the row, or returns the one already there for the same bytes, channel, day and type. */
export async function insertFile(q: Q, file: NewReconFile): Promise<{ row: ReconFileRow; created: boolean }> {
  const inserted = await sql<ReconFileRow>`
    INSERT INTO recon_files (channel, source_kind, account, bill_date, file_type, original_name, sha256, size_bytes, stored_path)
    VALUES (${file.channel}, ${file.source_kind}, ${file.account}, ${file.bill_date}, ${file.file_type}, ${file.original_name},
            ${file.sha256}, ${file.size_bytes}, ${file.stored_path})
    ON CONFLICT (sha256, channel, bill_date, file_type) DO NOTHING
    RETURNING ${COLUMNS}`.execute(q);
  if (inserted.rows[0]) return { row: inserted.rows[0], created: true };
  const existing = await sql<ReconFileRow>`
    SELECT ${COLUMNS} FROM recon_files
    WHERE sha256 = ${file.sha256} AND channel = ${file.channel} AND bill_date = ${file.bill_date} AND file_type = ${file.file_type}`.execute(q);
  const row = existing.rows[0];
  if (!row) throw new Error('recon_files: conflicting row vanished');
  return { row, created: false };
}

export async function findFile(q: Q, id: bigint): Promise<ReconFileRow | null> {
  return (await sql<ReconFileRow>`SELECT ${COLUMNS} FROM recon_files WHERE id = ${id}`.execute(q)).rows[0] ?? null;
}

export async function listFiles(q: Q, channel: string, billDate: string, limit: number): Promise<ReconFileRow[]> {
  return (await sql<ReconFileRow>`
    SELECT ${COLUMNS} FROM recon_files WHERE channel = ${channel} AND bill_date = ${billDate}
    ORDER BY id LIMIT ${limit}`.execute(q)).rows;
}
