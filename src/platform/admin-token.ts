// The admin bearer token: CUSTOS_ADMIN_TOKEN, or in the embedded default a generated
// one kept in the data folder (so it survives restarts) and printed on start.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.ts';
import { ConfigError } from './config.ts';

export async function resolveAdminToken(config: Config): Promise<{ token: string; generated: boolean; file: string | null }> {
  if (config.adminToken) return { token: config.adminToken, generated: false, file: null };
  if (config.databaseUrl) throw new ConfigError('CUSTOS_ADMIN_TOKEN must be set when DATABASE_URL is set');
  if (config.dataDir === null) return { token: randomBytes(24).toString('base64url'), generated: true, file: null };
  const file = path.join(config.dataDir, 'admin-token');
  try {
    const saved = (await readFile(file, 'utf8')).trim();
    if (saved.length >= 16) return { token: saved, generated: false, file };
  } catch {
    // not there yet: generate below
  }
  await mkdir(config.dataDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  await writeFile(file, token + '\n', { mode: 0o600 });
  return { token, generated: true, file };
}
