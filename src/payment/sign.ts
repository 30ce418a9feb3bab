// Jeepay-compatible request and response signatures.
//
// MD5 (Jeepay's rule, exactly): drop `sign` and every parameter whose value is null,
// undefined or the empty string; make one fragment `key=value&` per parameter; sort
// the whole fragments case-insensitively (Java String.CASE_INSENSITIVE_ORDER); join;
// append `key=<secret>`; MD5 over UTF-8; upper-case hex. Verification ignores case.
// MD5's string can be reshaped: a value may contain `&` and `=`, so
// `subject="s&version=1.0"` without a `version` field and `subject="s"` with one give
// the same string and the same signature. It stays as it is because every Jeepay
// client computes exactly this (docs/payment.md says why).
//
// HMAC-SHA256 and SM3 (HMAC-SM3, keyed by the secret) sign an injective canonical
// string instead (`custos-sign-v2`): the same parameters are dropped (sign, null,
// empty); each remaining key and value is percent-encoded over its UTF-8 bytes, every
// byte except RFC 3986 unreserved `A-Z a-z 0-9 - . _ ~` as `%XX` (upper-case hex);
// the `key=value` pairs are sorted by their encoded key (plain byte order) and joined
// with `&`. No `&`, `=` or `%` of a key or value survives encoding, so the string
// decodes back to exactly one parameter map: no parameter can be moved into another's
// value. The secret is the HMAC key, never part of the string. Keys or values that are
// not well-formed Unicode (lone surrogates) cannot be signed or verified.
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

/** In unicode mode a paired surrogate is one code point, so this matches only lone ones. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** RFC 3986 percent-encoding of the UTF-8 bytes: only `A-Z a-z 0-9 - . _ ~` stay as they are. */
export function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
      || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e;
    out += unreserved ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The injective canonical string of HMAC-SHA256 and SM3 (`custos-sign-v2`); null if a key or value is not well-formed Unicode. */
export function canonicalStringV2(params: Record<string, unknown>): string | null {
  const pairs: Array<[Buffer, string]> = [];
  for (const [key, value] of Object.entries(params)) {
    if (key === 'sign') continue;
    const text = valueText(value);
    if (text === null) continue;
    if (LONE_SURROGATE.test(key) || LONE_SURROGATE.test(text)) return null;
    const encodedKey = percentEncode(key);
    pairs.push([Buffer.from(encodedKey, 'latin1'), `${encodedKey}=${percentEncode(text)}`]);
  }
  pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
  return pairs.map((p) => p[1]).join('&');
}

function signOrNull(params: Record<string, unknown>, secret: string, signType: SignType): string | null {
  if (signType === 'MD5') return createHash('md5').update(`${canonicalString(params)}key=${secret}`, 'utf8').digest('hex').toUpperCase();
  const text = canonicalStringV2(params);
  if (text === null) return null;
  return createHmac(signType === 'SM3' ? 'sm3' : 'sha256', secret).update(text, 'utf8').digest('hex').toUpperCase();
}

export function sign(params: Record<string, unknown>, secret: string, signType: SignType = 'MD5'): string {
  const signature = signOrNull(params, secret, signType);
  if (signature === null) throw new TypeError('cannot sign: a key or value is not well-formed Unicode');
  return signature;
}

export function verify(params: Record<string, unknown>, secret: string, signType: SignType): boolean {
  const given = params.sign;
  if (typeof given !== 'string' || given.length === 0 || given.length > 128) return false;
  const signature = signOrNull(params, secret, signType);
  if (signature === null) return false;
  const expected = Buffer.from(signature, 'utf8');
  const actual = Buffer.from(given.toUpperCase(), 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
