// Jeepay-compatible request and response signatures.
//
// MD5 (Jeepay's rule, exactly): drop `sign` and every parameter whose value is null,
// undefined or the empty string; make one fragment `key=value&` per parameter; sort
// the whole fragments case-insensitively (Java String.CASE_INSENSITIVE_ORDER); join;
// append `key=<secret>`; MD5 over UTF-8; upper-case hex. Verification ignores case.
// HMAC-SHA256 and SM3 use the same canonical string (SM3 as HMAC-SM3 keyed by the
// secret, so a leaked canonical string never reveals a valid signature).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const SIGN_TYPES = ['MD5', 'HMAC-SHA256', 'SM3'] as const;
export type SignType = (typeof SIGN_TYPES)[number];

export function isSignType(value: unknown): value is SignType {
  return typeof value === 'string' && (SIGN_TYPES as readonly string[]).includes(value);
}

/** Java's String.CASE_INSENSITIVE_ORDER: per UTF-16 unit, upper-case then lower-case. */
export function compareCaseInsensitive(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    x = foldCase(x);
    y = foldCase(y);
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

function foldCase(code: number): number {
  if (code < 128) return code >= 65 && code <= 90 ? code + 32 : code; // ASCII: the common case, no strings made
  const upper = String.fromCharCode(code).toUpperCase();
  const u = upper.length === 1 ? upper.charCodeAt(0) : code;
  const lower = String.fromCharCode(u).toLowerCase();
  return lower.length === 1 ? lower.charCodeAt(0) : u;
}

function valueText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text === '' ? null : text;
}

/** The canonical string without the key: sorted `k=v&` fragments, concatenated. */
export function canonicalString(params: Record<string, unknown>): string {
  const fragments: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (key === 'sign') continue;
    const text = valueText(value);
    if (text === null) continue;
    fragments.push(`${key}=${text}&`);
  }
  fragments.sort(compareCaseInsensitive);
  return fragments.join('');
}

export function sign(params: Record<string, unknown>, secret: string, signType: SignType = 'MD5'): string {
  const text = `${canonicalString(params)}key=${secret}`;
  switch (signType) {
    case 'MD5':
      return createHash('md5').update(text, 'utf8').digest('hex').toUpperCase();
    case 'HMAC-SHA256':
      return createHmac('sha256', secret).update(text, 'utf8').digest('hex').toUpperCase();
    case 'SM3':
      return createHmac('sm3', secret).update(text, 'utf8').digest('hex').toUpperCase();
  }
}

export function verify(params: Record<string, unknown>, secret: string, signType: SignType): boolean {
  const given = params.sign;
  if (typeof given !== 'string' || given.length === 0 || given.length > 128) return false;
  const expected = Buffer.from(sign(params, secret, signType), 'utf8');
  const actual = Buffer.from(given.toUpperCase(), 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
