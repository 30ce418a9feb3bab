// The sandbox channel's signing key (its API, its notifications, its payer actions).
// There is no default key: CUSTOS_SANDBOX_KEY, or on the embedded database one
// generated once into the data folder (so `custos serve`, `custos sandbox` and
// `custos sandbox pay` of one data folder share it), or a fresh one in memory when
// the data is in memory. With DATABASE_URL it must be configured.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type Config } from './config.ts';

/** The key the README once printed as the default: anyone could sign with it. */
export const PUBLISHED_DEV_KEY = 'custos-sandbox-dev-key';
const KEY_CHARS_MIN = 16;
const FILE_NAME = 'sandbox-key';

export async function resolveSandboxKey(config: Pick<Config, 'sandboxKey' | 'databaseUrl' | 'dataDir'>): Promise<{ key: string; file: string | null }> {
  if (config.sandboxKey !== null) {
    if (config.sandboxKey === PUBLISHED_DEV_KEY) throw new ConfigError(`CUSTOS_SANDBOX_KEY must not be the published development key "${PUBLISHED_DEV_KEY}"; set a random one (e.g. openssl rand -hex 24)`);
    if (config.sandboxKey.length < KEY_CHARS_MIN) throw new ConfigError(`CUSTOS_SANDBOX_KEY must have at least ${KEY_CHARS_MIN} characters`);
    return { key: config.sandboxKey, file: null };
  }
  if (config.databaseUrl) throw new ConfigError('CUSTOS_SANDBOX_KEY must be set when the sandbox channel is on with DATABASE_URL (or leave CUSTOS_SANDBOX off)');
  if (config.dataDir === null) return { key: randomBytes(24).toString('base64url'), file: null };
  const file = path.join(config.dataDir, FILE_NAME);
  const saved = await readKey(file);
  if (saved) return { key: saved, file };
  await mkdir(config.dataDir, { recursive: true });
  const key = randomBytes(24).toString('base64url');
  try {
    // Exclusive: a second process starting at the same moment reads the first one's key.
    await writeFile(file, key + '\n', { mode: 0o600, flag: 'wx' });
    return { key, file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    let other: string | null = null;
    for (let i = 0; i < 10 && !other; i += 1) {
      other = await readKey(file);
      if (!other) await new Promise((resolve) => setTimeout(resolve, 20)); // being written this moment
    }
    if (!other) throw new ConfigError(`${file} exists but holds no key; delete it to generate a new one`);
    return { key: other, file };
  }
}

async function readKey(file: string): Promise<string | null> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text.length >= KEY_CHARS_MIN ? text : null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
