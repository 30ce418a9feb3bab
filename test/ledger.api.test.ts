// The ledger's HTTP contract through the real Fastify app (inject) on a real
// database: auth, good input, every kind of bad input (400, nothing written), the
// per-transfer results, reads, docs, health and metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestDb, type TestDb } from './helpers.ts';
import { createPlatform, type Platform } from '../src/server.ts';
import { loadConfig } from '../src/platform/config.ts';
import { ManualClock } from '../src/platform/clock.ts';

const TOKEN = 'test-admin-token-0123456789';
let t: TestDb;
let platform: Platform;
const clock = new ManualClock();

before(async () => {
  t = await openTestDb();
  const config = loadConfig({ CUSTOS_DATA_DIR: 'memory', CUSTOS_ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'silent' });
  platform = await createPlatform(config, { clock, db: t.db });
});
after(async () => {
  await platform.close();
  await t.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };

async function post(url: string, body: unknown, headers: Record<string, string> = auth) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await platform.app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.statusCode, body: res.json(), headers: res.headers };
}
async function get(url: string, headers: Record<string, string> = auth) {
  const res = await platform.app.inject({ method: 'GET', url, headers });
  return { status: res.statusCode, body: res.headers['content-type']?.includes('json') ? res.json() : res.body, headers: res.headers };
}
async function snapshot() {
  const transfers = await t.db.kysely.selectFrom('ledger_transfers').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
  const accounts = await t.db.kysely.selectFrom('ledger_accounts').select(['id', 'version', 'debits_posted', 'credits_posted']).orderBy('id').execute();
  return JSON.stringify({ transfers: String(transfers.n), accounts }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

test('accounts and transfers: the documented contract', async () => {
  const created = await post('/v1/ledger/accounts', { accounts: [
    { id: 'a1', ledger: 1, code: 100, flags: ['history'], ref: 'household:1-1-101' },
    { id: 'a2', ledger: 1, code: 100 },
    { id: 'lim', ledger: 1, code: 100, flags: ['debits_must_not_exceed_credits'] },
  ] });
  assert.equal(created.status, 200);
  assert.deepEqual(created.body, { results: [{ id: 'a1', result: 'ok' }, { id: 'a2', result: 'ok' }, { id: 'lim', result: 'ok' }] });

  const r = await post('/v1/ledger/transfers', { transfers: [
    { id: 't1', debit_account_id: 'a2', credit_account_id: 'a1', amount: '100', ledger: 1, code: 1 },
    { id: 't2', debit_account_id: 'a1', credit_account_id: 'a2', amount: 40, ledger: 1, code: 1, flags: ['pending'], timeout_s: 60, pending_id: null, ref: 'order-9' },
    { id: 't3', debit_account_id: 'lim', credit_account_id: 'a2', amount: '1', ledger: 1, code: 1 },
    { id: 't4', debit_account_id: 'a1', credit_account_id: 'nobody', amount: '1', ledger: 1, code: 1 },
    { id: 't5', debit_account_id: 'a1', credit_account_id: 'a2', amount: '1', ledger: 2, code: 1 },
    { id: 't1', debit_account_id: 'a2', credit_account_id: 'a1', amount: '100', ledger: 1, code: 1 },
    { id: 't1', debit_account_id: 'a2', credit_account_id: 'a1', amount: '101', ledger: 1, code: 1 },
    { id: 't6', pending_id: 't2', flags: ['post_pending'], amount: '15' },
    { id: 't7', pending_id: 't2', flags: ['void_pending'] },
  ] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.results.map((x: { result: string }) => x.result), [
    'ok', 'ok', 'exceeds_credits', 'account_not_found', 'ledger_mismatch', 'exists', 'exists_with_different_fields', 'ok', 'pending_already_resolved',
  ]);
  assert.deepEqual(r.body.results.map((x: { id: string }) => x.id), ['t1', 't2', 't3', 't4', 't5', 't1', 't1', 't6', 't7']);

  const again = await post('/v1/ledger/transfers', { transfers: [{ id: 't3', debit_account_id: 'lim', credit_account_id: 'a2', amount: '1', ledger: 1, code: 1 }] });
  assert.deepEqual(again.body.results, [{ id: 't3', result: 'id_already_failed' }]);

  const a1 = await get('/v1/ledger/accounts/a1');
  assert.equal(a1.status, 200);
  assert.equal(a1.body.debits_posted, '15');
  assert.equal(a1.body.credits_posted, '100');
  assert.equal(a1.body.debits_pending, '0');
  assert.equal(a1.body.credits_pending, '0');
  assert.equal(a1.body.version, '3');
  assert.deepEqual(a1.body.flags, ['history']);
  assert.equal(a1.body.ref, 'household:1-1-101');
});

test('entries are paginated with a cursor and carry balance-after for history accounts', async () => {
  const first = await get('/v1/ledger/accounts/a1/entries?limit=2');
  assert.equal(first.status, 200);
  assert.equal(first.body.entries.length, 2);
  assert.equal(first.body.entries[0].transfer_id, 't1');
  assert.equal(first.body.entries[0].side, 'credit');
  assert.deepEqual(first.body.entries[0].balance_after, { debits_posted: '0', credits_posted: '100', debits_pending: '0', credits_pending: '0' });
  assert.equal(first.body.entries[1].pending_status, 'posted');
  const second = await get(`/v1/ledger/accounts/a1/entries?limit=2&cursor=${first.body.next_cursor}`);
  assert.equal(second.body.entries.length, 1);
  assert.equal(second.body.entries[0].transfer_id, 't6');
  assert.equal(second.body.next_cursor, null);
  const bad = await get('/v1/ledger/accounts/a1/entries?limit=5000');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 'INVALID_QUERY');
});

test('balance at a point in time', async () => {
  const before = await get('/v1/ledger/accounts/a1/balance?at=2000-01-01T00:00:00Z');
  assert.equal(before.status, 200);
  assert.equal(before.body.credits_posted, '0');
  clock.advanceSeconds(3600);
  const now = new Date(Number(clock.nowNs() / 1_000_000n)).toISOString();
  const current = await get(`/v1/ledger/accounts/a1/balance?at=${now}`);
  assert.equal(current.body.credits_posted, '100');
  assert.equal(current.body.debits_posted, '15');
  const bad = await get('/v1/ledger/accounts/a1/balance?at=yesterday');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 'INVALID_QUERY');
});

test('bad input gets a 400 with a stable code and writes nothing', async () => {
  const base = { id: 'bad1', debit_account_id: 'a2', credit_account_id: 'a1', amount: '1', ledger: 1, code: 1 };
  const cases: Array<[unknown, string]> = [
    ['{"transfers": [', 'INVALID_JSON'],
    [{}, 'INVALID_REQUEST'],
    [{ transfers: 'x' }, 'INVALID_REQUEST'],
    [{ transfers: [] }, 'EMPTY_BATCH'],
    [{ transfers: [1] }, 'INVALID_REQUEST'],
    [{ transfers: [{ ...base, amount: '0' }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: 0 }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: '-5' }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: -5 }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: '1.5' }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: 1.5 }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: '1e3' }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: 'abc' }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: '9223372036854775808' }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: '99999999999999999999' }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: 2 ** 60 }] }, 'INVALID_AMOUNT'],
    [{ transfers: [{ ...base, amount: undefined }] }, 'MISSING_FIELD'],
    [{ transfers: [{ ...base, id: undefined }] }, 'MISSING_FIELD'],
    [{ transfers: [{ ...base, id: 'has space' }] }, 'INVALID_ID'],
    [{ transfers: [{ ...base, id: '#expire:x' }] }, 'INVALID_ID'],
    [{ transfers: [{ ...base, debit_account_id: undefined }] }, 'MISSING_FIELD'],
    [{ transfers: [{ ...base, ledger: 0 }] }, 'INVALID_FIELD'],
    [{ transfers: [{ ...base, ledger: '1' }] }, 'INVALID_FIELD'],
    [{ transfers: [{ ...base, code: 1.5 }] }, 'INVALID_FIELD'],
    [{ transfers: [{ ...base, flags: ['pending', 'teleport'] }] }, 'INVALID_FLAG'],
    [{ transfers: [{ ...base, flags: 'pending' }] }, 'INVALID_FLAG'],
    [{ transfers: [{ ...base, timeout_s: -1 }] }, 'INVALID_FIELD'],
    [{ transfers: [{ ...base, metadata: [1] }] }, 'INVALID_FIELD'],
    [{ transfers: [{ ...base, flags: ['post_pending'] }] }, 'MISSING_FIELD'],
    // one bad transfer among good ones: the whole request is refused
    [{ transfers: [{ ...base, id: 'good1' }, { ...base, amount: '-1' }] }, 'INVALID_AMOUNT'],
    [{ transfers: Array.from({ length: 8191 }, (_, i) => ({ ...base, id: `many${i}` })) }, 'BATCH_TOO_LARGE'],
  ];
  const before = await snapshot();
  for (const [body, code] of cases) {
    const res = await post('/v1/ledger/transfers', body);
    assert.equal(res.status, 400, `${JSON.stringify(body).slice(0, 120)} → ${res.status}`);
    assert.equal(res.body.code, code, `${JSON.stringify(body).slice(0, 120)} → ${res.body.code}: ${res.body.message}`);
    assert.ok(typeof res.body.message === 'string' && res.body.message.length > 10);
    assert.ok(typeof res.body.requestId === 'string' && res.body.requestId.length > 0);
  }
  const accountCases: Array<[unknown, string]> = [
    [{ accounts: [{ id: 'x', ledger: 1 }] }, 'MISSING_FIELD'],
    [{ accounts: [{ id: 'x', ledger: 0, code: 1 }] }, 'INVALID_FIELD'],
    [{ accounts: [{ id: 'x', ledger: 1, code: 1, flags: ['linked'] }] }, 'INVALID_FLAG'],
    [{ accounts: [{ id: '', ledger: 1, code: 1 }] }, 'INVALID_ID'],
    [{ accounts: [] }, 'EMPTY_BATCH'],
  ];
  for (const [body, code] of accountCases) {
    const res = await post('/v1/ledger/accounts', body);
    assert.equal(res.status, 400);
    assert.equal(res.body.code, code);
  }
  assert.equal(await snapshot(), before, 'nothing was written by a refused request');
});

test('auth: missing or wrong bearer token is 401; unknown routes and accounts are JSON 404s', async () => {
  const none = await post('/v1/ledger/transfers', { transfers: [] }, {});
  assert.equal(none.status, 401);
  assert.equal(none.body.code, 'UNAUTHORIZED');
  const wrong = await get('/v1/ledger/accounts/a1', { authorization: 'Bearer nope' });
  assert.equal(wrong.status, 401);
  const missing = await get('/v1/ledger/accounts/ghost');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, 'ACCOUNT_NOT_FOUND');
  const route = await get('/v1/nothing-here');
  assert.equal(route.status, 404);
  assert.equal(route.body.code, 'ROUTE_NOT_FOUND');
});

test('request ids: a given x-request-id is echoed and used in errors', async () => {
  const res = await get('/v1/ledger/accounts/ghost', { ...auth, 'x-request-id': 'req-abc-123' });
  assert.equal(res.headers['x-request-id'], 'req-abc-123');
  assert.equal(res.body.requestId, 'req-abc-123');
});

test('verify, health, metrics and OpenAPI docs', async () => {
  const verify = await get('/v1/ledger/verify');
  assert.equal(verify.status, 200);
  assert.equal(verify.body.balanced, true);
  assert.equal(verify.body.ledgers[0].debits_posted, verify.body.ledgers[0].credits_posted);
  const health = await get('/healthz', {});
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');
  assert.equal((await get('/metrics', {})).status, 401, '/metrics needs a bearer token (CUSTOS_METRICS_TOKEN, else the admin token)');
  const metrics = await get('/metrics');
  assert.equal(metrics.status, 200);
  assert.match(String(metrics.body), /custos_ledger_transfers_total\{result="ok"\} \d+/);
  assert.match(String(metrics.body), /custos_http_request_duration_seconds_bucket/);
  const docs = await get('/docs/json', {});
  assert.equal(docs.status, 200);
  assert.ok(docs.body.paths['/v1/ledger/transfers']);
  assert.ok(docs.body.paths['/v1/ledger/accounts/{id}/balance']);
});
