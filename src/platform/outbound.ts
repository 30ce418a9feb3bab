// Outbound HTTP to addresses that someone other than the operator chose (a merchant's
// notifyUrl, and any future URL a merchant or user supplies). The host is resolved by
// our own `lookup`, handed to node:http(s) so the check is made on the very address
// the socket connects to (a DNS answer that changes between a check and the connect —
// DNS rebinding — cannot pass). Refused: every address that is not global unicast
// (loopback, RFC 1918 private, link-local, CGNAT, multicast, broadcast, unspecified,
// reserved, documentation, benchmarking, unique-local, site-local, discard) and IPv6
// forms that embed such an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo,
// NAT64), unless the operator's allow-list (CUSTOS_OUTBOUND_ALLOW: IPs or CIDRs, empty
// by default) names the address. No redirects are followed, the whole exchange has a
// deadline, and at most maxResponseBytes of the answer are read.
import { lookup as dnsLookup } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

const TIMEOUT_MS_DEFAULT = 10_000;
const RESPONSE_BYTES_MAX_DEFAULT = 64 * 1024;
const ADDRESSES_MAX = 32;
const ALLOW_ENTRIES_MAX = 64;

/** A resolver: every address of a host name (tests inject one to play DNS). */
export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export interface OutboundOptions {
  /** Addresses or CIDRs that may be reached although not public (development, tests). */
  allow?: readonly string[];
  resolve?: Resolver;
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export interface OutboundRequest {
  method: 'GET' | 'POST';
  url: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export interface OutboundResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The answer was longer than maxResponseBytes and was cut there. */
  truncated: boolean;
}

/** The destination is not allowed (a forbidden address, scheme or name); nothing was sent. */
export class OutboundRefused extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`出站地址被拒绝 / outbound request refused: ${reason}`);
    this.name = 'OutboundRefused';
    this.reason = reason;
  }
}

export class OutboundTimeout extends Error {
  constructor(timeoutMs: number) {
    super(`timeout after ${timeoutMs} ms`);
    this.name = 'TimeoutError';
  }
}

// --- classification -------------------------------------------------------------------

export type AddressVerdict = { public: true; address: string } | { public: false; address: string; range: string };

const V6_EMBEDDING_V4 = new Set(['ipv4Mapped', 'rfc6145', 'rfc6052', '6to4', 'teredo']);

/** The IPv4 address an IPv6 address carries (mapped, translated, 6to4, Teredo), or null. */
function embeddedV4(v6: ipaddr.IPv6, range: string): ipaddr.IPv4 | null {
  const b = v6.toByteArray();
  if (range === 'ipv4Mapped' || range === 'rfc6145' || range === 'rfc6052') return new ipaddr.IPv4(b.slice(12, 16));
  if (range === '6to4') return new ipaddr.IPv4(b.slice(2, 6));
  // Teredo: the client's address is the last 32 bits inverted; the server's is bits 32–63.
  if (range === 'teredo') return new ipaddr.IPv4(b.slice(12, 16).map((x) => x ^ 0xff));
  return null;
}

function teredoServer(v6: ipaddr.IPv6): ipaddr.IPv4 {
  return new ipaddr.IPv4(v6.toByteArray().slice(4, 8));
}

/**
 * Whether an IP address (a literal, as a socket would use it) is a global unicast
 * address. Anything ipaddr.js does not call `unicast` is refused, so ranges it learns
 * later are refused too.
 */
export function classifyAddress(text: string): AddressVerdict {
  const raw = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIP(raw) === 0) return { public: false, address: raw, range: 'invalid' };
  const addr = ipaddr.parse(raw);
  if (addr.kind() === 'ipv4') {
    const range = addr.range();
    return range === 'unicast' ? { public: true, address: raw } : { public: false, address: raw, range };
  }
  const v6 = addr as ipaddr.IPv6;
  const range = v6.range();
  const bytes = v6.toByteArray();
  // ::/96 other than :: and ::1 — the deprecated IPv4-compatible form (::127.0.0.1).
  if (range === 'unicast' && bytes.slice(0, 12).every((x) => x === 0)) return { public: false, address: raw, range: 'ipv4Compatible' };
  if (V6_EMBEDDING_V4.has(range)) {
    // NAT64's local-use prefix (64:ff9b:1::/48) is never global.
    if (range === 'rfc6052' && bytes.slice(4, 12).some((x) => x !== 0)) return { public: false, address: raw, range: 'rfc8215' };
    const inner = embeddedV4(v6, range) as ipaddr.IPv4;
    if (inner.range() !== 'unicast') return { public: false, address: raw, range: `${range}(${inner.toString()} ${inner.range()})` };
    if (range === 'teredo' && teredoServer(v6).range() !== 'unicast') return { public: false, address: raw, range: `teredo(server ${teredoServer(v6).toString()})` };
    // An IPv4-mapped public address: the socket goes to that IPv4 address, which is fine.
    return { public: true, address: raw };
  }
  return range === 'unicast' ? { public: true, address: raw } : { public: false, address: raw, range };
}

// --- allow-list ---------------------------------------------------------------------------

export type AllowEntry = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses "127.0.0.1,::1,10.0.0.0/8"; throws with the bad entry named. */
export function parseAllowList(entries: readonly string[]): AllowEntry[] {
  if (entries.length > ALLOW_ENTRIES_MAX) throw new Error(`at most ${ALLOW_ENTRIES_MAX} entries`);
  return entries.map((entry) => {
    const text = entry.trim();
    try {
      if (text.includes('/')) return ipaddr.parseCIDR(text);
      if (isIP(text) === 0) throw new Error('not an IP');
      const addr = ipaddr.parse(text);
      return [addr, addr.kind() === 'ipv4' ? 32 : 128] as AllowEntry;
    } catch {
      throw new Error(`"${text}" is not an IP address or CIDR (e.g. 127.0.0.1, ::1, 10.0.0.0/8)`);
    }
  });
}

/** Splits the CUSTOS_OUTBOUND_ALLOW text; empty = nothing allowed. */
export function splitAllowList(text: string | undefined): string[] {
  return (text ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function allowed(list: readonly AllowEntry[], address: string): boolean {
  if (list.length === 0) return false;
  let addr: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(address);
  // An IPv4-mapped address is its IPv4 address for the allow-list (and vice versa).
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  return list.some(([net, bits]) => {
    if (net.kind() !== addr.kind()) return false;
    return addr.match(net, bits);
  });
}

// --- the client -------------------------------------------------------------------------------

export interface Outbound {
  /**
   * Checks a URL before it is stored: http(s), and no host that is a forbidden
   * literal address or `localhost`. Names are checked again when connecting.
   */
  checkUrl(url: string): { ok: true } | { ok: false; reason: string };
  /** Whether an address may be connected to (public, or on the allow-list). */
  addressAllowed(address: string): { ok: true } | { ok: false; reason: string };
  request(req: OutboundRequest): Promise<OutboundResponse>;
}

const defaultResolver: Resolver = (hostname) => new Promise((resolve, reject) => {
  dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) => (error ? reject(error) : resolve(addresses)));
});

const isLocalhostName = (host: string) => /(^|\.)localhost\.?$/i.test(host);

export function createOutbound(options: OutboundOptions = {}): Outbound {
  const allowList = parseAllowList(options.allow ?? []);
  const resolve = options.resolve ?? defaultResolver;

  function addressAllowed(address: string): { ok: true } | { ok: false; reason: string } {
    const verdict = classifyAddress(address);
    if (verdict.public) return { ok: true };
    if (verdict.range !== 'invalid' && allowed(allowList, verdict.address)) return { ok: true };
    return { ok: false, reason: `${verdict.address} is ${verdict.range}, not a public address` };
  }

  function parse(text: string): { ok: true; url: URL; host: string } | { ok: false; reason: string } {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return { ok: false, reason: 'not a URL' };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: `scheme ${url.protocol} is not http(s)` };
    // WHATWG parsing already turns 2130706433, 0x7f.0.0.1, 0177.0.0.1 and 127.1 into 127.0.0.1.
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (host === '') return { ok: false, reason: 'no host' };
    return { ok: true, url, host };
  }

  function checkUrl(text: string): { ok: true } | { ok: false; reason: string } {
    const parsed = parse(text);
    if (!parsed.ok) return parsed;
    if (isIP(parsed.host) !== 0) return addressAllowed(parsed.host);
    if (isLocalhostName(parsed.host)) {
      const loop = addressAllowed('127.0.0.1');
      return loop.ok ? loop : { ok: false, reason: `${parsed.host} is loopback` };
    }
    return { ok: true };
  }

  // Called by net.connect for a host name: resolve, refuse if any answer is forbidden.
  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    const wantAll = (lookupOptions as { all?: boolean }).all === true;
    const family = Number(String((lookupOptions as { family?: number | string }).family ?? 0).replace('IPv', '')) || 0;
    const done = callback as (error: Error | null, address: string | Array<{ address: string; family: number }>, family?: number) => void;
    resolve(hostname).then((answers) => {
      const list = answers.slice(0, ADDRESSES_MAX).filter((a) => family === 0 || a.family === family);
      if (list.length === 0) throw Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' });
      for (const a of list) {
        const verdict = addressAllowed(a.address);
        if (!verdict.ok) throw new OutboundRefused(`${hostname} resolves to ${verdict.reason}`);
      }
      if (wantAll) done(null, list);
      else done(null, list[0].address, list[0].family);
    }).catch((error: Error) => done(error, wantAll ? [] : '', 0));
  };

  async function request(req: OutboundRequest): Promise<OutboundResponse> {
    const parsed = parse(req.url);
    if (!parsed.ok) throw new OutboundRefused(parsed.reason);
    if (isIP(parsed.host) !== 0) {
      // A literal address never reaches `lookup`: check it here.
      const verdict = addressAllowed(parsed.host);
      if (!verdict.ok) throw new OutboundRefused(verdict.reason);
    }
    const timeoutMs = req.timeoutMs ?? options.timeoutMs ?? TIMEOUT_MS_DEFAULT;
    const maxBytes = req.maxResponseBytes ?? options.maxResponseBytes ?? RESPONSE_BYTES_MAX_DEFAULT;
    const { url } = parsed;
    const transport = url.protocol === 'https:' ? https : http;
    const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
    return new Promise<OutboundResponse>((resolvePromise, reject) => {
      let settled = false;
      const finish = (error: Error | null, value?: OutboundResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolvePromise(value as OutboundResponse);
      };
      const r = transport.request({
        method: req.method, protocol: url.protocol, hostname: parsed.host, port: url.port || undefined,
        path: `${url.pathname}${url.search}`, lookup, agent: false,
        headers: { ...(req.headers ?? {}), ...(body ? { 'content-length': String(body.length) } : {}) },
      }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let truncated = false;
        res.on('data', (chunk: Buffer) => {
          if (truncated) return;
          const room = maxBytes - size;
          if (chunk.length > room) {
            chunks.push(chunk.subarray(0, room));
            size = maxBytes;
            truncated = true;
            finish(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), truncated });
            res.destroy();
            return;
          }
          chunks.push(chunk);
          size += chunk.length;
        });
        res.on('end', () => finish(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), truncated }));
        res.on('error', (error) => finish(error));
      });
      const timer = setTimeout(() => {
        const error = new OutboundTimeout(timeoutMs);
        finish(error);
        r.destroy(error);
      }, timeoutMs);
      r.on('error', (error) => finish(error));
      r.end(body);
    });
  }

  return { checkUrl, addressAllowed, request };
}
