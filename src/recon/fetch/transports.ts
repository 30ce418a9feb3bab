// One attempt at copying a statement from its source into a destination stream, for
// each kind of source. Every transport: connects within connectTimeoutMs, stops when
// `signal` aborts (the caller's transfer timeout), and throws a FetchError with a
// stable code — STATEMENT_NOT_READY when the file is not there yet.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client as FtpClient, FTPError } from 'basic-ftp';
import { Client as SshClient, type SFTPWrapper } from 'ssh2';
import { SIGNATURE_HEADER, signBody } from '../../channel/sandbox/protocol.ts';
import { baseName, expandPath, FetchError, type FetchLimits, type FetchVars, type FtpSource, type HttpSource, type LocalSource, type SftpSource, type StatementSource } from './source.ts';

export interface Attempt {
  vars: FetchVars;
  destination: Writable;
  signal: AbortSignal;
  limits: Required<FetchLimits>;
}

export interface Transferred {
  /** The file's name at its source. */
  name: string;
}

export function transfer(source: StatementSource, attempt: Attempt): Promise<Transferred> {
  switch (source.kind) {
    case 'http': return httpTransfer(source, attempt);
    case 'ftp': return ftpTransfer(source, attempt);
    case 'sftp': return sftpTransfer(source, attempt);
    case 'local': return localTransfer(source, attempt);
  }
}

/** The error an aborted signal carries, when it is ours; otherwise a generic timeout. */
function abortReason(signal: AbortSignal, what: string): FetchError {
  return signal.reason instanceof FetchError ? signal.reason : new FetchError('FETCH_TIMEOUT', `${what}: aborted`);
}

function tooLarge(size: number, limits: Required<FetchLimits>, where: string): FetchError | null {
  return size > limits.sizeMaxBytes ? new FetchError('FETCH_TOO_LARGE', `${where} is ${size} bytes, more than the ${limits.sizeMaxBytes} allowed`) : null;
}

// --- HTTP: the sandbox channel's signed statement download ---------------------------

async function httpTransfer(source: HttpSource, { vars, destination, signal, limits }: Attempt): Promise<Transferred> {
  const query = new URLSearchParams({ bill_date: vars.billDate });
  if (source.billType) query.set('bill_type', source.billType);
  const url = `${source.baseUrl.replace(/\/$/, '')}/v1/statements/${encodeURIComponent(source.format)}?${query}`;
  const connect = new AbortController();
  const timer = setTimeout(() => connect.abort(new FetchError('FETCH_TIMEOUT', `${url}: no answer within ${limits.connectTimeoutMs} ms`)), limits.connectTimeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { headers: { [SIGNATURE_HEADER]: signBody(source.key, '') }, signal: AbortSignal.any([signal, connect.signal]) });
  } catch (error) {
    if (connect.signal.aborted) throw connect.signal.reason as FetchError;
    if (signal.aborted) throw abortReason(signal, url);
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new FetchError('FETCH_FAILED', `${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  if (res.status !== 200) {
    const text = (await res.text().catch(() => '')).slice(0, 500);
    let code = '';
    try {
      code = String((JSON.parse(text) as { code?: unknown }).code ?? '');
    } catch { /* not JSON */ }
    if (res.status === 404 && code === 'BILL_NOT_READY') throw new FetchError('STATEMENT_NOT_READY', `the channel has no ${source.format} statement for ${vars.billDate} yet (HTTP 404 ${code})`);
    if (res.status === 401 || res.status === 403) throw new FetchError('FETCH_AUTH_FAILED', `${url}: HTTP ${res.status} ${code}: the channel refused our signature (check the key)`);
    throw new FetchError('FETCH_FAILED', `${url}: HTTP ${res.status} ${text}`);
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  const big = tooLarge(declared, limits, url);
  if (big) {
    await res.body?.cancel();
    throw big;
  }
  if (res.body === null) throw new FetchError('FETCH_FAILED', `${url}: empty body`);
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), destination, { signal });
  } catch (error) {
    throw streamError(error, signal, url);
  }
  const ext = (res.headers.get('content-type') ?? '').includes('zip') ? 'zip' : 'csv';
  const type = source.billType ? `_${source.billType}` : '';
  return { name: `${source.format}_${vars.billDate.replaceAll('-', '')}${type}.${ext}` };
}

function streamError(error: unknown, signal: AbortSignal, where: string): FetchError {
  if (error instanceof FetchError) return error;
  if (signal.aborted) return abortReason(signal, where);
  return new FetchError('FETCH_FAILED', `${where}: transfer broke: ${(error as Error).message}`);
}

// --- FTP (basic-ftp) ---------------------------------------------------------------

async function ftpTransfer(source: FtpSource, { vars, destination, signal, limits }: Attempt): Promise<Transferred> {
  const remote = expandPath(source.remotePath, vars);
  const where = `ftp://${source.host}:${source.port ?? 21}${remote.startsWith('/') ? '' : '/'}${remote}`;
  // basic-ftp's timeout covers connecting and every period without traffic.
  const client = new FtpClient(limits.connectTimeoutMs);
  const onAbort = () => client.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await client.access({ host: source.host, port: source.port ?? 21, user: source.user, password: source.password, secure: source.secure ?? false });
    const size = await client.size(remote).catch((error: unknown) => {
      if (error instanceof FTPError && error.code === 550) throw error;
      return -1; // SIZE is optional in FTP: then only the stream bound applies
    });
    const big = tooLarge(size, limits, where);
    if (big) throw big;
    await client.downloadTo(destination, remote);
    return { name: baseName(remote) };
  } catch (error) {
    if (error instanceof FetchError) throw error;
    if (signal.aborted) throw abortReason(signal, where);
    if (error instanceof FTPError) {
      if (error.code === 550) throw new FetchError('STATEMENT_NOT_READY', `${where}: no such file yet (FTP 550 ${error.message.replace(/^550\s*/, '')})`);
      if (error.code === 530) throw new FetchError('FETCH_AUTH_FAILED', `${where}: login refused for user ${source.user} (FTP 530): check the user and password`);
      throw new FetchError('FETCH_FAILED', `${where}: FTP ${error.code} ${error.message}`);
    }
    const message = (error as Error).message ?? String(error);
    if (/timeout/i.test(message)) throw new FetchError('FETCH_TIMEOUT', `${where}: ${message} (no traffic for ${limits.connectTimeoutMs} ms)`);
    throw new FetchError('FETCH_FAILED', `${where}: ${(error as { code?: string }).code ?? ''} ${message}`.trim());
  } finally {
    signal.removeEventListener('abort', onAbort);
    client.close();
  }
}

// --- SFTP (ssh2) --------------------------------------------------------------------

async function sftpTransfer(source: SftpSource, { vars, destination, signal, limits }: Attempt): Promise<Transferred> {
  const remote = expandPath(source.remotePath, vars);
  const where = `sftp://${source.user}@${source.host}:${source.port ?? 22}${remote.startsWith('/') ? '' : '/'}${remote}`;
  if (!source.password && !source.privateKey) throw new FetchError('FETCH_FAILED', `${where}: the source has neither a password nor a private key`);
  const conn = new SshClient();
  const onAbort = () => conn.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('ready', resolve);
      conn.on('error', reject); // ssh2 may report a second error (connection lost) after the first
      conn.once('close', () => reject(signal.aborted ? abortReason(signal, where) : new Error('connection closed before login')));
      conn.connect({
        host: source.host, port: source.port ?? 22, username: source.user, password: source.password, privateKey: source.privateKey,
        passphrase: source.passphrase, readyTimeout: limits.connectTimeoutMs,
        hostVerifier: source.hostKeySha256 === undefined ? undefined
          : (key: Buffer) => createHash('sha256').update(key).digest('base64').replace(/=+$/, '') === source.hostKeySha256?.replace(/^SHA256:/, '').replace(/=+$/, ''),
      });
    });
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => conn.sftp((err, s) => (err ? reject(err) : resolve(s))));
    const size = await new Promise<number>((resolve, reject) => sftp.stat(remote, (err, stats) => (err ? reject(err) : resolve(stats.size))));
    const big = tooLarge(size, limits, where);
    if (big) throw big;
    await pipeline(sftp.createReadStream(remote), destination, { signal });
    return { name: baseName(remote) };
  } catch (error) {
    if (error instanceof FetchError) throw error;
    if (signal.aborted) throw abortReason(signal, where);
    const e = error as Error & { level?: string; code?: unknown };
    if (e.code === 2) throw new FetchError('STATEMENT_NOT_READY', `${where}: no such file yet (SFTP no such file)`);
    if (e.level === 'client-authentication') throw new FetchError('FETCH_AUTH_FAILED', `${where}: login refused for user ${source.user}: check the password or key`);
    if (/host.*(verif|denied)/i.test(e.message)) throw new FetchError('FETCH_AUTH_FAILED', `${where}: the server's host key does not match hostKeySha256`);
    if (/timed out/i.test(e.message)) throw new FetchError('FETCH_TIMEOUT', `${where}: ${e.message} (${limits.connectTimeoutMs} ms)`);
    throw new FetchError('FETCH_FAILED', `${where}: ${typeof e.code === 'string' ? e.code + ' ' : ''}${e.message}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
    conn.end();
  }
}

// --- local file (an operator's upload, a folder a bank pushes into) ----------------

async function localTransfer(source: LocalSource, { vars, destination, signal, limits }: Attempt): Promise<Transferred> {
  const file = expandPath(source.path, vars);
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new FetchError('FETCH_FAILED', `${file} is not a file`);
    size = info.size;
  } catch (error) {
    if (error instanceof FetchError) throw error;
    if ((error as { code?: string }).code === 'ENOENT') throw new FetchError('STATEMENT_NOT_READY', `no file at ${file} (yet)`);
    throw new FetchError('FETCH_FAILED', `${file}: ${(error as Error).message}`);
  }
  const big = tooLarge(size, limits, file);
  if (big) throw big;
  try {
    await pipeline(createReadStream(file), destination, { signal });
  } catch (error) {
    throw streamError(error, signal, file);
  }
  return { name: baseName(file) };
}
