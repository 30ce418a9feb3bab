// The reconciliation inbox: the one folder whose files the admin API may read when a
// request names a statement `file` (CUSTOS_RECON_INBOX, default <data dir>/inbox).
// A name is resolved inside it, and only a regular file whose real path (symlinks
// resolved) is still inside it, and not larger than the bound, is accepted: no `..`,
// no absolute path elsewhere, no symlink out, no device or /proc file. Files can also
// be uploaded through the API (their bytes land in <inbox>/uploads/<sha256>, 0600).
// The CLI on the server (`custos recon run --file`) is the operator's own shell: with
// no server running it reads its local path directly; with one, it uploads the bytes.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../../platform/errors.ts';

export const INBOX_FILE_BYTES_MAX = 512 * 1024 * 1024;
const NAME_CHARS_MAX = 1024;

const notAllowed = (file: string, why: string) =>
  new AppError('RECON_FILE_NOT_ALLOWED', 400, `对账文件只能取自对账收件箱目录或经接口上传 / the statement file must be in the reconciliation inbox (CUSTOS_RECON_INBOX) or uploaded (POST /v1/admin/recon/files): ${JSON.stringify(file.slice(0, 200))} ${why}`);

export interface Inbox {
  readonly dir: string;
  /** The real path of an inbox file named by an API request, or RECON_FILE_NOT_ALLOWED / RECON_FILE_NOT_FOUND. */
  resolve(file: string): Promise<string>;
  /** Stores uploaded bytes as uploads/<sha256> (0600); returns the name to pass as `file`. */
  upload(bytes: Buffer): Promise<{ file: string; sha256: string; sizeBytes: number }>;
}

/** Creates the folder (0700) if needed. */
async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700).catch(() => {}); // a folder we do not own keeps its mode
}

export function createInbox(dir: string, options: { bytesMax?: number } = {}): Inbox {
  const bytesMax = options.bytesMax ?? INBOX_FILE_BYTES_MAX;
  const root = path.resolve(dir);

  async function resolve(file: string): Promise<string> {
    if (file === '' || file.length > NAME_CHARS_MAX) throw notAllowed(file, 'is empty or too long');
    if (file.split(/[\\/]/).includes('..')) throw notAllowed(file, 'contains ".."');
    const candidate = path.resolve(root, file);
    if (!inside(root, candidate)) throw notAllowed(file, 'is outside the inbox');
    await ensureDir(root);
    const realRoot = await realpath(root);
    let real: string;
    try {
      real = await realpath(candidate);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') throw new AppError('RECON_FILE_NOT_FOUND', 404, `对账收件箱中没有这个文件 / no file ${JSON.stringify(file)} in the reconciliation inbox`);
      throw notAllowed(file, `cannot be resolved (${(error as { code?: string }).code ?? 'error'})`);
    }
    if (!inside(realRoot, real)) throw notAllowed(file, 'leads outside the inbox (a symbolic link)');
    const info = await lstat(real);
    if (!info.isFile()) throw notAllowed(file, 'is not a regular file');
    if (info.size > bytesMax) throw new AppError('FETCH_TOO_LARGE', 413, `the file is larger than the ${bytesMax} bytes allowed`);
    return real;
  }

  async function upload(bytes: Buffer): Promise<{ file: string; sha256: string; sizeBytes: number }> {
    if (bytes.length === 0) throw new AppError('RECON_FILE_EMPTY', 400, '上传的文件为空 / the uploaded file is empty');
    if (bytes.length > bytesMax) throw new AppError('FETCH_TOO_LARGE', 413, `the file is larger than the ${bytesMax} bytes allowed`);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const folder = path.join(root, 'uploads');
    await ensureDir(root);
    await ensureDir(folder);
    const target = path.join(folder, sha256);
    const existing = await stat(target).catch(() => null);
    if (!existing || existing.size !== bytes.length) {
      const tmp = path.join(folder, `.${sha256}.${randomBytes(6).toString('hex')}`);
      try {
        await writeFile(tmp, bytes, { mode: 0o600, flag: 'wx' });
        await rename(tmp, target);
      } finally {
        await rm(tmp, { force: true });
      }
    }
    return { file: `uploads/${sha256}`, sha256, sizeBytes: bytes.length };
  }

  return { dir: root, resolve, upload };
}

function inside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}
