// Flow control, request rates: per merchant and per app on the merchant API (counted
// only after the signature verified), per IP on /api, the H5 pages, the cashier and
// sign-in; 429 in Jeepay's envelope (or {code, message}) with Retry-After; merchants
// isolated from each other; two instances sharing Redis share one budget. Windows are
// long (20 s) and counts exact, so nothing here depends on the machine's speed.
// With REDIS_URL set the stacks count in Redis (a fresh key prefix per test), else in
// this process; the two-instance test needs Redis and skips without it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { ADMIN_TOKEN, merchant, order, startStack, type MerchantClient, type Stack } from './payment.harness.ts';
import { createPlatform } from '../src/server.ts';
import { loadConfig } from '../src/platform/config.ts';
import { sign } from '../src/payment/sign.ts';

const REDIS_URL = process.env.REDIS_URL && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : null;
const NEEDS_REDIS = REDIS_URL ? false : 'needs Redis: set REDIS_URL (the PostgreSQL run of .ci/run sets redis://127.0.0.1:6379)';
const WINDOW_S = '20';

/** Flow-control settings for a stack: a fresh key prefix, Redis when REDIS_URL is set. */
function flowEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { CUSTOS_RATE_PREFIX: `custos-test:${randomUUID()}`, CUSTOS_RATE_WINDOW_S: WINDOW_S, ...(REDIS_URL ? { REDIS_URL } : {}), ...extra };
}

async function admin(stack: Stack, method: string, path: string, body?: unknown) {
  const res = await fetch(stack.url + path, {
    method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

/** n signed queries (an unknown order: 404, but authenticated and counted); the statuses. */
async function queries(m: MerchantClient, n: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += 1) statuses.push((await m.call('/api/pay/query', { mchOrderNo: `nope-${i}` })).status);
  return statuses;
}
const count = (xs: number[], v: number) => xs.filter((x) => x === v).length;

// One stack for the per-merchant and per-app tests (each uses merchants of its own).
let stack: Stack;
before(async () => {
  stack = await startStack({ env: flowEnv({ CUSTOS_RATE_MCH_PER_S: '50' }), background: false });
});
after(async () => {
  await stack.close();
});

test('per merchant: the limit fires at the configured rate, 429 in Jeepay\'s envelope with Retry-After; another merchant is not throttled', async () => {
  const a = await merchant(stack, null, '限流商户A');
  const b = await merchant(stack, null, '限流商户B');
  const set = await admin(stack, 'PUT', `/v1/admin/merchants/${a.mchNo}/limits`, { merchantPerS: 1 });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.deepEqual(set.body, { mchNo: a.mchNo, windowS: 20, merchantPerS: 1, appPerS: 100000, merchantPerSSet: 1, appPerSSet: null });
  // 1/s over a 20 s window: 20 requests pass, the rest are refused.
  const statuses = await queries(a, 24);
  assert.equal(count(statuses, 404), 20, statuses.join(','));
  assert.deepEqual(statuses.slice(20), [429, 429, 429, 429]);
  const refused = await fetch(stack.url + '/api/pay/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(signed(a, { mchOrderNo: 'x' })) });
  assert.equal(refused.status, 429);
  const retryAfter = Number(refused.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 20, `Retry-After ${refused.headers.get('retry-after')}`);
  const body = await refused.json() as Record<string, unknown>;
  assert.equal(body.code, 9999);
  assert.equal(body.errCode, 'RATE_LIMITED');
  assert.match(String(body.msg), /请求过于频繁.*too many requests/);
  // Merchant B (default limits) is untouched by A's throttling; A stays throttled on every route.
  assert.deepEqual(await queries(b, 5), [404, 404, 404, 404, 404]);
  assert.equal((await a.call('/api/pay/unifiedOrder', order('rl-a-1'))).status, 429);
  assert.equal((await b.call('/api/pay/unifiedOrder', order('rl-b-1'))).status, 200);
});

test('per app: an app over its own limit is refused while the merchant limit has room; limits can be read and reset to the default', async () => {
  const a = await merchant(stack, null, '应用限流商户');
  assert.equal((await admin(stack, 'PUT', `/v1/admin/merchants/${a.mchNo}/limits`, { appPerS: 1 })).status, 200);
  const statuses = await queries(a, 22);
  assert.equal(count(statuses, 404), 20, statuses.join(','));
  const last = await a.call('/api/pay/query', { mchOrderNo: 'x' });
  assert.equal(last.body.errCode, 'RATE_LIMITED');
  assert.match(String(last.body.msg), /app .* is over 1\/s/);
  const read = await admin(stack, 'GET', `/v1/admin/merchants/${a.mchNo}/limits`);
  assert.deepEqual(read.body, { mchNo: a.mchNo, windowS: 20, merchantPerS: 50, appPerS: 1, merchantPerSSet: null, appPerSSet: 1 });
  const reset = await admin(stack, 'PUT', `/v1/admin/merchants/${a.mchNo}/limits`, { appPerS: null });
  assert.deepEqual(reset.body, { mchNo: a.mchNo, windowS: 20, merchantPerS: 50, appPerS: 100000, merchantPerSSet: null, appPerSSet: null });
  // Bad input: 400 with a code, nothing written; unknown merchant 404; no token 401.
  for (const bad of [{ appPerS: 0 }, { appPerS: 1.5 }, { appPerS: '5' }, { merchantPerS: 100001 }, { other: 1 }]) {
    const res = await admin(stack, 'PUT', `/v1/admin/merchants/${a.mchNo}/limits`, bad);
    assert.equal(res.status, 400, JSON.stringify([bad, res.body]));
    assert.equal(typeof res.body.code, 'string');
  }
  assert.deepEqual((await admin(stack, 'GET', `/v1/admin/merchants/${a.mchNo}/limits`)).body, reset.body);
  assert.equal((await admin(stack, 'PUT', '/v1/admin/merchants/M0000/limits', { appPerS: 5 })).status, 404);
  assert.equal((await admin(stack, 'GET', '/v1/admin/merchants/M%00/limits')).status, 400);
  assert.equal((await fetch(`${stack.url}/v1/admin/merchants/${a.mchNo}/limits`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"appPerS":100}' })).status, 401);
});

function signed(m: MerchantClient, params: Record<string, unknown>, secret = m.appSecret): Record<string, unknown> {
  const p: Record<string, unknown> = { mchNo: m.mchNo, appId: m.appId, reqTime: String(Date.now()), version: '1.0', signType: 'MD5', ...params };
  p.sign = sign(p, secret, 'MD5');
  return p;
}

test('outsiders cannot spend a merchant\'s budget: unsigned or forged requests naming it are not counted against it', async () => {
  const a = await merchant(stack, null, '被冒名商户');
  assert.equal((await admin(stack, 'PUT', `/v1/admin/merchants/${a.mchNo}/limits`, { merchantPerS: 1 })).status, 200);
  const post = (body: unknown) => fetch(stack.url + '/api/pay/unifiedOrder', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  for (let i = 0; i < 30; i += 1) {
    const forged = i % 3 === 0 ? { mchNo: a.mchNo, appId: a.appId, mchOrderNo: `f${i}` } // unsigned
      : i % 3 === 1 ? signed(a, { mchOrderNo: `f${i}` }, 'not-the-secret') // wrong key
        : { ...signed(a, { mchOrderNo: `f${i}` }), reqTime: '1000000000000' }; // stale: signature no longer matches
    const res = await post(forged);
    assert.equal(res.status, 401, await res.text());
  }
  // A's whole budget is still there.
  const statuses = await queries(a, 21);
  assert.equal(count(statuses, 404), 20, statuses.join(','));
  assert.equal(statuses[20], 429);
});

test('per IP: /api refuses before reading the body (Jeepay envelope), H5 pages, the cashier and sign-in answer {code, message}; channel callbacks are not limited', async () => {
  const stack = await startStack({
    env: flowEnv({ CUSTOS_RATE_API_IP_PER_S: '1', CUSTOS_RATE_H5_IP_PER_MIN: '10', CUSTOS_RATE_SIGNIN_IP_PER_MIN: '3' }), background: false,
  });
  try {
    // /api per IP: 20 per 20 s, whatever the body (here not even JSON).
    const api: number[] = [];
    for (let i = 0; i < 22; i += 1) {
      api.push((await fetch(stack.url + '/api/pay/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' })).status);
    }
    assert.equal(count(api, 400), 20, api.join(','));
    const refused = await fetch(stack.url + '/api/pay/unifiedOrder', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const body = await refused.json() as Record<string, unknown>;
    assert.equal(body.code, 9999);
    assert.equal(body.errCode, 'RATE_LIMITED');
    // Another spelling of the same route is the same bucket (or no route at all).
    const spelled = await fetch(stack.url + '/%61pi/pay/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.ok(spelled.status === 429 || spelled.status === 404, `got ${spelled.status}`);
    // Channel notifications are not counted (a forged one is refused on its signature, not throttled).
    for (let i = 0; i < 5; i += 1) {
      const n = await fetch(stack.url + '/api/channel/notify/sandbox', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.notEqual(n.status, 429);
    }
    // Sign-in: 3 a minute per IP (the h5 budget of 10 counts them too).
    const login = () => fetch(stack.url + '/h5/fund/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'unitId=U1&certNo=x&ownerName=y' });
    const logins: number[] = [];
    for (let i = 0; i < 4; i += 1) logins.push((await login()).status);
    assert.deepEqual(logins.map((s) => s === 429), [false, false, false, true], logins.join(','));
    const signIn = await login();
    assert.equal(signIn.status, 429);
    assert.ok(Number(signIn.headers.get('retry-after')) >= 1);
    const signInBody = await signIn.json() as Record<string, unknown>;
    assert.equal(signInBody.code, 'RATE_LIMITED');
    assert.match(String(signInBody.message), /sign-in/);
    // H5 pages and the cashier share the IP's 10 a minute: 3 spent by the allowed sign-ins.
    const pages: number[] = [];
    for (let i = 0; i < 8; i += 1) pages.push((await fetch(stack.url + (i % 2 ? '/h5/fund' : '/cashier/P0000'))).status);
    assert.deepEqual(pages.map((s) => s === 429), [false, false, false, false, false, false, false, true], pages.join(','));
    const page = await fetch(stack.url + '/h5/fund/search?q=a');
    assert.equal(page.status, 429);
    assert.equal((await page.json() as Record<string, unknown>).code, 'RATE_LIMITED');
    // The admin API and health are not limited per IP.
    assert.equal((await fetch(stack.url + '/healthz')).status, 200);
  } finally {
    await stack.close();
  }
});

test('two instances sharing Redis share one merchant budget', { skip: NEEDS_REDIS }, async () => {
  const prefix = `custos-test:${randomUUID()}`;
  const stack = await startStack({ env: flowEnv({ CUSTOS_RATE_PREFIX: prefix, CUSTOS_RATE_MCH_PER_S: '1' }), background: false });
  const config = loadConfig({
    CUSTOS_DATA_DIR: 'memory', CUSTOS_ADMIN_TOKEN: ADMIN_TOKEN, CUSTOS_MASTER_KEY: '0'.repeat(64), LOG_LEVEL: 'silent',
    CUSTOS_SANDBOX_URL: stack.sandboxUrl, CUSTOS_SANDBOX_KEY: 'test-sandbox-key', REDIS_URL: REDIS_URL as string,
    CUSTOS_RATE_PREFIX: prefix, CUSTOS_RATE_WINDOW_S: WINDOW_S, CUSTOS_RATE_MCH_PER_S: '1', CUSTOS_RATE_API_IP_PER_S: '100000',
  });
  const second = await createPlatform(config, { db: stack.t.db });
  await second.app.listen({ port: 0, host: '127.0.0.1' });
  const secondUrl = `http://127.0.0.1:${(second.app.server.address() as { port: number }).port}`;
  const redis = new Redis(REDIS_URL as string);
  try {
    assert.equal(stack.platform.rateLimiter.store, 'redis');
    assert.equal(second.rateLimiter.store, 'redis');
    const a = await merchant(stack, null, '双实例商户');
    const statuses: number[] = [];
    for (let i = 0; i < 24; i += 1) {
      const url = i % 2 === 0 ? stack.url : secondUrl;
      const res = await fetch(url + '/api/pay/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(signed(a, { mchOrderNo: `two-${i}` })) });
      statuses.push(res.status);
    }
    // One budget of 20 for both, not 20 each.
    assert.equal(count(statuses, 404), 20, statuses.join(','));
    assert.equal(count(statuses, 429), 4, statuses.join(','));
    const keys = await redis.keys(`${prefix}:*`);
    assert.ok(keys.some((k) => k.includes(a.mchNo)), keys.join(','));
  } finally {
    redis.disconnect();
    await second.close();
    await stack.close();
  }
});

test('Redis gone: each instance falls back to counting in-process (limits still fire, no 5xx)', { skip: NEEDS_REDIS }, async () => {
  // A Redis URL where nothing listens: every count goes to the insurance limiter.
  const stack = await startStack({ env: flowEnv({ REDIS_URL: 'redis://127.0.0.1:1', CUSTOS_RATE_MCH_PER_S: '1' }), background: false });
  try {
    const a = await merchant(stack, null, 'Redis故障商户');
    const statuses = await queries(a, 22);
    assert.equal(count(statuses, 404), 20, statuses.join(','));
    assert.deepEqual(statuses.slice(20), [429, 429]);
  } finally {
    await stack.close();
  }
});
