// Wire format of the ledger API: parse requests into ledger inputs (a clear 400 for
// anything malformed, before anything is written) and format results. Amounts travel
// as decimal strings of integer fen; safe JSON integers are accepted too.
import { badRequest } from '../platform/errors.ts';
import { INT8_MAX } from '../platform/money.ts';
import { nsToIso } from '../platform/clock.ts';
import {
  ACCOUNT_FLAGS,
  BATCH_MAX,
  ID_PATTERN,
  PENDING_STATUS,
  TIMEOUT_S_MAX,
  TRANSFER_FLAGS,
  flagsToNames,
  type Account,
  type AccountInput,
  type Balances,
  type TransferInput,
} from './types.ts';
import type { Entry } from './ledger.service.ts';

const METADATA_BYTES_MAX = 4096;
const REF_LENGTH_MAX = 128;
const INT4_MAX = 2147483647;

type Obj = Record<string, unknown>;

function where(kind: string, index: number, field: string) {
  return `${kind}[${index}].${field}`;
}

function parseBatch(body: unknown, key: 'accounts' | 'transfers'): Obj[] {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as Obj)[key])) {
    throw badRequest('INVALID_REQUEST', `请求体应为 {"${key}": [...]} / the body must be {"${key}": [...]}`);
  }
  const list = (body as Obj)[key] as unknown[];
  if (list.length === 0) throw badRequest('EMPTY_BATCH', `${key} 不能为空 / ${key} must not be empty`);
  if (list.length > BATCH_MAX) {
    throw badRequest('BATCH_TOO_LARGE', `一次最多 ${BATCH_MAX} 条 / at most ${BATCH_MAX} ${key} per call, got ${list.length}`);
  }
  list.forEach((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw badRequest('INVALID_REQUEST', `${key}[${i}] must be an object`);
    }
  });
  return list as Obj[];
}

function parseId(value: unknown, field: string, required: boolean): string | null {
  if (value === undefined || value === null) {
    if (required) throw badRequest('MISSING_FIELD', `缺少字段 / ${field} is required`);
    return null;
  }
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw badRequest('INVALID_ID', `${field} must be 1-128 characters of A-Z a-z 0-9 _ . : - (starting with a letter or digit)`);
  }
  return value;
}

function parseInt4(value: unknown, field: string, required: boolean, min: number): number {
  if (value === undefined || value === null) {
    if (required) throw badRequest('MISSING_FIELD', `缺少字段 / ${field} is required`);
    return 0;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > INT4_MAX) {
    throw badRequest('INVALID_FIELD', `${field} must be an integer from ${min} to ${INT4_MAX}`);
  }
  return value;
}

/** An amount in fen: a positive integer as a decimal string (or a safe JSON integer). */
export function parseAmount(value: unknown, field: string, required: boolean): bigint | null {
  if (value === undefined || value === null) {
    if (required) throw badRequest('MISSING_FIELD', `缺少金额 / ${field} is required (integer fen as a string, e.g. "100")`);
    return null;
  }
  let fen: bigint | null = null;
  if (typeof value === 'string' && /^[0-9]{1,19}$/.test(value)) fen = BigInt(value);
  else if (typeof value === 'number' && Number.isSafeInteger(value)) fen = BigInt(value);
  else if (typeof value === 'number' && Number.isInteger(value)) {
    throw badRequest('INVALID_AMOUNT', `${field}: 大于 2^53 的金额请用字符串 / amounts above 2^53 must be sent as decimal strings`);
  }
  if (fen === null) {
    throw badRequest('INVALID_AMOUNT', `${field}: 金额必须是以分为单位的正整数 / must be a positive integer number of fen, e.g. "100" (got ${JSON.stringify(value)})`);
  }
  if (fen <= 0n) throw badRequest('INVALID_AMOUNT', `${field}: 金额必须大于 0 / must be greater than 0`);
  if (fen > INT8_MAX) throw badRequest('INVALID_AMOUNT', `${field}: 金额超出上限 / must be at most ${INT8_MAX}`);
  return fen;
}

function parseFlags(value: unknown, table: Record<string, number>, field: string): number {
  if (value === undefined || value === null) return 0;
  if (!Array.isArray(value)) throw badRequest('INVALID_FLAG', `${field} must be an array of flag names`);
  let flags = 0;
  for (const name of value) {
    if (typeof name !== 'string' || !Object.hasOwn(table, name)) {
      throw badRequest('INVALID_FLAG', `${field}: 未知标志 / unknown flag ${JSON.stringify(name)}; known: ${Object.keys(table).join(', ')}`);
    }
    flags |= table[name];
  }
  return flags;
}

function parseRef(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > REF_LENGTH_MAX) {
    throw badRequest('INVALID_FIELD', `${field} must be a string of 1-${REF_LENGTH_MAX} characters`);
  }
  return value;
}

/** Canonical JSON (keys sorted) so a retry with the same metadata compares equal. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as Obj).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Obj)[k])}`).join(',')}}`;
}

function parseMetadata(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw badRequest('INVALID_FIELD', `${field} must be a JSON object`);
  const text = canonicalJson(value);
  if (Buffer.byteLength(text) > METADATA_BYTES_MAX) throw badRequest('INVALID_FIELD', `${field} must be at most ${METADATA_BYTES_MAX} bytes`);
  return text;
}

export function parseAccounts(body: unknown): AccountInput[] {
  return parseBatch(body, 'accounts').map((a, i) => ({
    id: parseId(a.id, where('accounts', i, 'id'), true) as string,
    ledger: parseInt4(a.ledger, where('accounts', i, 'ledger'), true, 1),
    code: parseInt4(a.code, where('accounts', i, 'code'), true, 1),
    flags: parseFlags(a.flags, ACCOUNT_FLAGS, where('accounts', i, 'flags')),
    ref: parseRef(a.ref, where('accounts', i, 'ref')),
    metadata: parseMetadata(a.metadata, where('accounts', i, 'metadata')),
  }));
}

export function parseTransfers(body: unknown): TransferInput[] {
  return parseBatch(body, 'transfers').map((t, i) => {
    const flags = parseFlags(t.flags, TRANSFER_FLAGS, where('transfers', i, 'flags'));
    const resolve = (flags & (TRANSFER_FLAGS.post_pending | TRANSFER_FLAGS.void_pending)) !== 0;
    const timeout = parseInt4(t.timeout_s, where('transfers', i, 'timeout_s'), false, 0);
    if (timeout > TIMEOUT_S_MAX) throw badRequest('INVALID_FIELD', `${where('transfers', i, 'timeout_s')} must be at most ${TIMEOUT_S_MAX}`);
    return {
      id: parseId(t.id, where('transfers', i, 'id'), true) as string,
      debit_account_id: parseId(t.debit_account_id, where('transfers', i, 'debit_account_id'), !resolve),
      credit_account_id: parseId(t.credit_account_id, where('transfers', i, 'credit_account_id'), !resolve),
      amount: parseAmount(t.amount, where('transfers', i, 'amount'), !resolve),
      ledger: parseInt4(t.ledger, where('transfers', i, 'ledger'), !resolve, resolve ? 0 : 1),
      code: parseInt4(t.code, where('transfers', i, 'code'), !resolve, resolve ? 0 : 1),
      flags,
      pending_id: parseId(t.pending_id, where('transfers', i, 'pending_id'), resolve),
      timeout_s: timeout,
      ref: parseRef(t.ref, where('transfers', i, 'ref')),
      metadata: parseMetadata(t.metadata, where('transfers', i, 'metadata')),
    };
  });
}

const balances = (b: Balances) => ({
  debits_posted: b.debits_posted.toString(),
  credits_posted: b.credits_posted.toString(),
  debits_pending: b.debits_pending.toString(),
  credits_pending: b.credits_pending.toString(),
});

export function formatAccount(a: Account) {
  return {
    id: a.id,
    ledger: a.ledger,
    code: a.code,
    flags: flagsToNames(ACCOUNT_FLAGS, a.flags),
    ref: a.ref,
    metadata: a.metadata === null ? null : JSON.parse(a.metadata),
    ...balances(a),
    version: a.version.toString(),
    closed: a.closed,
    timestamp: a.ts.toString(),
    created_at: nsToIso(a.ts),
  };
}

const STATUS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(PENDING_STATUS).map(([k, v]) => [v, k]));

export function formatEntry(e: Entry) {
  const t = e.transfer;
  return {
    transfer_id: t.id,
    timestamp: t.ts.toString(),
    created_at: nsToIso(t.ts),
    side: e.side,
    amount: t.amount.toString(),
    debit_account_id: t.debit_account_id,
    credit_account_id: t.credit_account_id,
    ledger: t.ledger,
    code: t.code,
    flags: flagsToNames(TRANSFER_FLAGS, t.flags),
    pending_id: t.pending_id,
    pending_status: t.status === null ? null : STATUS_NAMES[t.status],
    ref: t.ref,
    metadata: t.metadata === null ? null : JSON.parse(t.metadata),
    balance_after: e.balance_after === null ? null : balances(e.balance_after),
  };
}

export function formatBalances(id: string, at: string, b: Balances) {
  return { id, at, ...balances(b) };
}
