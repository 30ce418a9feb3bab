// Where a statement file comes from: the channel's HTTP download (the sandbox's signed
// GET first), an FTP or SFTP server (banks push or expose their files there), or a
// local file an operator hands in. A source is a plain typed config: the caller
// decides where it lives (secrets may be sealed with platform/secrets.ts and opened
// before the source is built). Remote paths are templates: {date} = YYYY-MM-DD,
// {yyyymmdd}, {mmdd} (UnionPay's settleDate), {account}.
import { AppError } from '../../platform/errors.ts';

export type FetchErrorCode =
  /** The file is not there yet (HTTP 404, FTP 550, SFTP no such file, no local file). */
  | 'STATEMENT_NOT_READY'
  /** The server did not connect or answer, or the transfer took longer than allowed. */
  | 'FETCH_TIMEOUT'
  /** The server refused our credentials or signature: retrying will not help. */
  | 'FETCH_AUTH_FAILED'
  /** The file is larger than the configured bound. */
  | 'FETCH_TOO_LARGE'
  /** Anything else (refused connection, 5xx, broken transfer, bad config). */
  | 'FETCH_FAILED';

const STATUS: Record<FetchErrorCode, number> = {
  STATEMENT_NOT_READY: 409, FETCH_TIMEOUT: 504, FETCH_AUTH_FAILED: 502, FETCH_TOO_LARGE: 413, FETCH_FAILED: 502,
};

export class FetchError extends AppError {
  declare readonly code: FetchErrorCode;
  /** How many attempts were made before giving up. */
  attempts = 1;
  constructor(code: FetchErrorCode, message: string) {
    super(code, STATUS[code], message);
    this.name = 'FetchError';
  }
  get retriable(): boolean {
    return this.code === 'STATEMENT_NOT_READY' || this.code === 'FETCH_TIMEOUT' || this.code === 'FETCH_FAILED';
  }
}

export interface FetchLimits {
  /** Until the server has accepted the connection and answered (HTTP headers, FTP/SSH login). */
  connectTimeoutMs?: number;
  /** For the whole transfer of one attempt, connection included. */
  transferTimeoutMs?: number;
  /** Attempts in all (1 = no retry). */
  attemptsMax?: number;
  /** First back-off; doubled after every failed attempt, capped at backoffMaxMs. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Largest file accepted. */
  sizeMaxBytes?: number;
}

export interface HttpSource extends FetchLimits {
  kind: 'http';
  /** The sandbox channel: base URL and signing key; format wechat | alipay | unionpay. */
  baseUrl: string;
  key: string;
  format: string;
  /** WeChat bill_type (ALL, SUCCESS, REFUND). */
  billType?: string;
}

export interface FtpSource extends FetchLimits {
  kind: 'ftp';
  host: string;
  port?: number;
  user: string;
  password: string;
  /** Explicit FTPS. */
  secure?: boolean;
  remotePath: string;
}

export interface SftpSource extends FetchLimits {
  kind: 'sftp';
  host: string;
  port?: number;
  user: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
  /** Pin the server's host key: sha256 of the key blob, base64 (as `ssh-keygen -l` prints after "SHA256:"). */
  hostKeySha256?: string;
  remotePath: string;
}

export interface LocalSource extends FetchLimits {
  kind: 'local';
  path: string;
}

export type StatementSource = HttpSource | FtpSource | SftpSource | LocalSource;

export interface FetchVars {
  billDate: string;
  account: string;
}

export const FETCH_DEFAULTS = {
  connectTimeoutMs: 10_000,
  transferTimeoutMs: 120_000,
  attemptsMax: 3,
  backoffBaseMs: 1_000,
  backoffMaxMs: 60_000,
  sizeMaxBytes: 512 * 1024 * 1024,
} as const;

export const ATTEMPTS_LIMIT = 20;

export function limitsOf(source: FetchLimits): Required<FetchLimits> {
  const limits = { ...FETCH_DEFAULTS, ...Object.fromEntries(Object.entries(source).filter(([k, v]) => k in FETCH_DEFAULTS && v !== undefined)) } as Required<FetchLimits>;
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 0) throw new FetchError('FETCH_FAILED', `source setting ${name} must be a whole number ≥ 0, got ${value}`);
  }
  if (limits.attemptsMax < 1 || limits.attemptsMax > ATTEMPTS_LIMIT) throw new FetchError('FETCH_FAILED', `attemptsMax must be 1..${ATTEMPTS_LIMIT}, got ${limits.attemptsMax}`);
  return limits;
}

/** Fills {date}, {yyyymmdd}, {mmdd} and {account} in a remote path template. */
export function expandPath(template: string, vars: FetchVars): string {
  const compact = vars.billDate.replaceAll('-', '');
  const out = template
    .replaceAll('{date}', vars.billDate)
    .replaceAll('{yyyymmdd}', compact)
    .replaceAll('{mmdd}', compact.slice(4))
    .replaceAll('{account}', vars.account);
  const unknown = /\{[a-z]+\}/i.exec(out);
  if (unknown) throw new FetchError('FETCH_FAILED', `unknown placeholder ${unknown[0]} in path template ${JSON.stringify(template)} (use {date}, {yyyymmdd}, {mmdd}, {account})`);
  return out;
}

/** The name the file had at its source (last path segment). */
export function baseName(remote: string): string {
  return remote.split(/[\\/]/).filter((s) => s !== '').at(-1) ?? remote;
}
