// Fuzzing every route (issue 12): fast-check walks the app's route inventory (every
// registered route with its schema, hidden ones included) and sends schema-shaped and
// hostile requests — NUL and control characters, lone surrogates, huge strings, wrong
// types, deep nesting, path segments with %00 and .., unicode — authenticated with the
// admin token, and the merchant API's requests signed with a real merchant's secret so
// they reach validation. No answer may be a 5xx, and a rejected request (4xx) must
// change no row: the row counts of every table are compared around each rejected
// request. Runs on PGlite and PostgreSQL; CUSTOS_FUZZ_RUNS scales the request count.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { sql } from 'kysely';
import { merchant, startStack, ADMIN_TOKEN, type MerchantClient, type Stack } from './payment.harness.ts';
import { setUpCity, apiOf } from './fund.deposit.harness.ts';
import { routesOf, type RouteEntry } from '../src/platform/http/routes.ts';
import { sign } from '../src/payment/sign.ts';

/** Requests per route (≈ 116 routes: ≈ 1,600 requests per database, ≈ 60 s on PGlite). */
const RUNS_PER_ROUTE = Number(process.env.CUSTOS_FUZZ_RUNS ?? 14);
/** Tables a rejected request may legitimately write: the record of the rejection itself. */
const REJECTION_RECORDS = new Set(['recon_files', 'recon_batches']);

let stack: Stack;
let m: MerchantClient;
let tables: string[] = [];

before(async () => {
  stack = await startStack({ background: false, env: { CUSTOS_RECON_INBOX: mkdtempSync(path.join(tmpdir(), 'custos-fuzz-inbox-')) } });
  await setUpCity(apiOf(stack));
  m = await merchant(stack);
  const rows = await sql<{ t: string }>`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`.execute(stack.t.db.kysely);
  tables = rows.rows.map((r) => r.t);
});
after(async () => {
  await stack.close();
});

async function rowCounts(): Promise<Map<string, number>> {
  const query = tables.map((t) => `SELECT '${t}' AS t, count(*)::int AS n FROM "${t}"`).join(' UNION ALL ');
  const rows = await sql<{ t: string; n: number }>`${sql.raw(query)}`.execute(stack.t.db.kysely);
  return new Map(rows.rows.map((r) => [r.t, Number(r.n)]));
}

// --- values ----------------------------------------------------------------------------

const HOSTILE_STRINGS = [
  '\u0000', 'a\u0000b', '%00', 'a%00b', '\u0001\u001f', '\u007f', '\ud800', 'a\udc00', '😀', '𠮷野家', 'Ω≈ç√', '\u202e\u202d', '\ufeff',
  '../../etc/passwd', '/proc/self/environ', '/etc/shadow', '..', '.', '//', '\\..\\..\\', "'; DROP TABLE pay_orders; --", '" OR 1=1 --',
  '${7*7}', '{{7*7}}', '<script>alert(1)</script>', 'javascript:alert(1)', 'http://127.0.0.1:1/', 'file:///etc/passwd',
  '-1', '0', '1e309', '99999999999999999999999999', '-0', 'NaN', 'Infinity', '0x10', '1.005', '', ' ', '\n', '\r\n', '\t',
  'null', 'true', '[]', '{}', '2026-02-30', '9999-12-31', 'x'.repeat(70_000),
];

const hostileString = fc.oneof(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ maxLength: 40, unit: 'binary' }), fc.string({ maxLength: 8 }));
const hostileScalar = fc.oneof(hostileString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.bigInt().map(String), fc.constant(2 ** 53 + 1));
const hostileValue = fc.oneof(
  { weight: 6, arbitrary: hostileScalar },
  { weight: 1, arbitrary: fc.array(hostileScalar, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(hostileString, hostileScalar, { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.constant(JSON.parse('['.repeat(200) + ']'.repeat(200))) },
);

type Schema = Record<string, any> | undefined;

/** A value shaped by the JSON schema (mostly valid), with hostile strings mixed in. */
function fromSchema(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 4) return hostileValue;
  if (Array.isArray(schema.enum)) return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...schema.enum) }, { weight: 1, arbitrary: hostileValue });
  const branches = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(branches)) return fc.oneof(...branches.map((b: Schema) => fromSchema(b, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string': return fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: schema.maxLength ?? 24 }) }, { weight: 2, arbitrary: hostileString }, { weight: 1, arbitrary: hostileValue });
    case 'integer': return fc.oneof(fc.integer({ min: schema.minimum ?? -10, max: schema.maximum ?? 10_000 }), hostileValue);
    case 'number': return fc.oneof(fc.double(), hostileValue);
    case 'boolean': return fc.oneof(fc.boolean(), hostileValue);
    case 'array': return fc.oneof({ weight: 4, arbitrary: fc.array(fromSchema(schema.items, depth + 1), { maxLength: 3 }) }, { weight: 1, arbitrary: hostileValue });
    case 'object': case undefined: {
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      const keys = Object.keys(props);
      if (keys.length === 0) return fc.dictionary(hostileString, hostileValue, { maxKeys: 4 });
      const shaped = fc.record(Object.fromEntries(keys.map((k) => [k, fromSchema(props[k], depth + 1)])), { requiredKeys: (schema.required ?? []).filter((k: string) => keys.includes(k)) });
      return fc.oneof({ weight: 5, arbitrary: shaped }, { weight: 1, arbitrary: hostileValue });
    }
    default: return hostileValue;
  }
}

/** Fields the merchant API reads (its body schema is open), so fuzzed values reach them. */
const MERCHANT_FIELDS = ['mchOrderNo', 'payOrderId', 'wayCode', 'amount', 'currency', 'subject', 'body', 'clientIp', 'notifyUrl', 'returnUrl', 'expiredTime',
  'channelExtra', 'extParam', 'divisionMode', 'mchRefundNo', 'refundOrderId', 'refundAmount', 'refundReason', 'mchTransferNo', 'transferId', 'entryType',
  'accountNo', 'accountName', 'receiverGroupId', 'receivers', 'relationType'];
const merchantBody = fc.dictionary(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...MERCHANT_FIELDS) }, { weight: 1, arbitrary: hostileString }), hostileValue, { maxKeys: 8 });

const segment = fc.oneof(
  { weight: 3, arbitrary: hostileString.map((s) => encodeURIComponent(s.slice(0, 200))) },
  { weight: 1, arbitrary: fc.constantFrom('%00', 'a%00b', '..', '%2e%2e', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '%ff', '%c3%28', '%ed%a0%80', '1', 'P1', 'M1', '2026-11-01') },
);

interface FuzzRequest { path: string; query: string; body: unknown; form: boolean; raw: boolean }

function requestFor(route: RouteEntry): fc.Arbitrary<FuzzRequest> {
  const params = [...route.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((x) => x[1]);
  const schema = (route.schema ?? {}) as Record<string, Schema>;
  const pathArb = fc.tuple(...params.map(() => segment)).map((values) => {
    let url = route.url;
    params.forEach((p, i) => (url = url.replace(`:${p}`, values[i] || 'x')));
    return url;
  });
  const queryArb = fc.dictionary(fc.oneof(fc.constantFrom(...Object.keys(schema.querystring?.properties ?? { q: 1, limit: 1, estateId: 1, id: 1 })), hostileString), hostileValue, { maxKeys: 3 })
    .map((q) => new URLSearchParams(Object.entries(q).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v.slice(0, 300) : JSON.stringify(v) ?? ''])).toString());
  const merchantApi = route.url.startsWith('/api/') && !route.url.includes(':');
  const bodyArb = merchantApi ? merchantBody : fromSchema(schema.body);
  return fc.record({ path: pathArb, query: queryArb, body: bodyArb, form: fc.boolean(), raw: fc.boolean() });
}

async function send(route: RouteEntry, r: FuzzRequest): Promise<{ status: number; text: string }> {
  const url = stack.url + r.path + (r.query && route.method === 'GET' ? `?${r.query}` : '');
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
  let body: string | undefined;
  if (route.method !== 'GET' && route.method !== 'DELETE') {
    let value = r.body;
    if (route.url.startsWith('/api/pay') || route.url.startsWith('/api/refund') || route.url.startsWith('/api/transfer') || route.url.startsWith('/api/division')) {
      const p: Record<string, unknown> = { ...(value && typeof value === 'object' && !Array.isArray(value) ? value : { v: value }), mchNo: m.mchNo, appId: m.appId, reqTime: String(Date.now()), version: '1.0', signType: 'MD5' };
      p.sign = sign(p, m.appSecret, 'MD5');
      value = p;
    }
    if (r.form && value && typeof value === 'object') {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(Object.entries(value).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v) ?? ''])).toString();
    } else if (r.raw && route.url.includes('/notify/')) {
      headers['content-type'] = 'text/xml';
      body = `<xml><return_code>SUCCESS</return_code><out_trade_no>${String(JSON.stringify(value)).slice(0, 500)}</out_trade_no></xml>`;
    } else if (r.raw && route.url === '/v1/admin/recon/files') {
      headers['content-type'] = 'application/octet-stream';
      body = String(JSON.stringify(value));
    } else {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(value) ?? 'null';
    }
  }
  const res = await fetch(url, { method: route.method, headers, body, redirect: 'manual' });
  return { status: res.status, text: (await res.text()).slice(0, 300) };
}

test('every route: fuzzed and hostile requests get no 5xx, and a rejected request changes no row', { timeout: 15 * 60_000 }, async () => {
  const routes = routesOf(stack.platform.app).filter((r) => r.url !== '/metrics');
  assert.ok(routes.length >= 100, `the inventory lists every route (${routes.length})`);
  let counts = await rowCounts();
  let sent = 0;
  let rejected = 0;
  // Every route is fuzzed even after a failure; the failures (first per route) are reported together.
  const failures = new Map<string, string>();
  const slow: string[] = [];
  for (const route of routes) {
    const key = `${route.method} ${route.url}`;
    const started = Date.now();
    for (const r of fc.sample(requestFor(route), { numRuns: RUNS_PER_ROUTE, seed: Number(process.env.CUSTOS_FUZZ_SEED ?? 1212) })) {
      const res = await send(route, r);
      sent += 1;
      const after = await rowCounts();
      const where = `${r.path}?${r.query} ${JSON.stringify(r.body)?.slice(0, 200)} → ${res.status} ${res.text}`;
      if (res.status >= 500 && !failures.has(key)) failures.set(key, `5xx: ${where}`);
      if (res.status >= 400) {
        rejected += 1;
        const changed = [...after].filter(([t, n]) => counts.get(t) !== n && !REJECTION_RECORDS.has(t));
        if (changed.length > 0 && !failures.has(key)) failures.set(key, `rejected but changed ${JSON.stringify(changed)}: ${where}`);
      }
      counts = after;
    }
    if (Date.now() - started > 5000) slow.push(`${key} ${Date.now() - started} ms`);
  }
  console.log(`fuzz: ${sent} requests over ${routes.length} routes, ${rejected} rejected${slow.length ? `; slow: ${slow.join(', ')}` : ''}`);
  assert.deepEqual([...failures].map(([k, v]) => `${k}: ${v}`), []);
  assert.ok(sent >= routes.length * RUNS_PER_ROUTE);
});
