// The admin bearer token: CUSTOS_ADMIN_TOKEN, or in the embedded default a generated
// one kept in the data folder (so it survives restarts). The token is shown once, to a
// terminal, when it is generated; never on later starts and never into a log (stdout
// that is not a terminal is a log: systemd, docker, a file).
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

/**
 * The start banner's lines about the admin token. The token itself only when it was just
 * generated and stdout is a terminal; otherwise where to find it.
 */
export function adminTokenBanner(t: { token: string; file: string | null; generated: boolean; isTTY: boolean; address: string }): string[] {
  const where = t.file ? `cat ${t.file}` : null;
  if (t.generated && t.isTTY) {
    return [
      `  管理令牌（仅显示这一次）/ admin token (shown this once${t.file ? `, saved in ${t.file}` : ''}): ${t.token}`,
      `  试一试 / try: curl -H "Authorization: Bearer ${t.token}" ${t.address}/v1/ledger/verify`,
    ];
  }
  if (where) {
    return [
      `  管理令牌保存在 / admin token saved in ${t.file} (readable by this user only)`,
      `  试一试 / try: curl -H "Authorization: Bearer $(${where})" ${t.address}/v1/ledger/verify`,
    ];
  }
  if (t.generated) return ['  管理令牌 / admin token: generated for this in-memory run; set CUSTOS_ADMIN_TOKEN to choose one (not printed: stdout is not a terminal)'];
  return ['  管理令牌 / admin token: from CUSTOS_ADMIN_TOKEN'];
}
