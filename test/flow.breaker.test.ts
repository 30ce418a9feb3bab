// Flow control, channels: every call has a timeout, a concurrency bound and a circuit
// breaker. Unit part: the guard around the real sandbox adapter over the sandbox's
// real loopback HTTP server (its fault switches make it fail or hang), and a loopback
// server that never answers. API part: routing skips an open channel for the route's
// fallback, and answers 503 CHANNEL_UNAVAILABLE at once when every route is open;
// breaker state shows in /metrics. Count-based: the sandbox's fault counters show
// exactly which calls reached the channel.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createSandbox, type Sandbox } from '../src/channel/sandbox/server.ts';
import { createSandboxAdapter } from '../src/channel/sandbox/adapter.ts';
import { ChannelUnavailable } from '../src/channel/contract.ts';
import { ChannelRejected, guardAdapter, type ChannelGuardOptions } from '../src/channel/guard.ts';
import { sign } from '../src/payment/sign.ts';
import { ADMIN_TOKEN, SANDBOX_KEY, freePort, merchant, order, startStack, waitFor, type Stack } from './payment.harness.ts';

const GUARD: ChannelGuardOptions = { timeoutMs: 5000, concurrency: 8, queueMax: 8, breakerVolume: 3, breakerResetMs: 300, breakerWindowMs: 60_000 };

let sandbox: Sandbox;
let sandboxUrl: string;
before(async () => {
  const port = await freePort();
  sandboxUrl = `http://127.0.0.1:${port}`;
  sandbox = createSandbox({ key: SANDBOX_KEY, publicUrl: sandboxUrl, logLevel: 'silent' });
  await sandbox.app.listen({ port, host: '127.0.0.1' });
});
after(async () => {
  await sandbox.app.close();
});

const rawAdapter = (ifCode = 'sb') => createSandboxAdapter({ ifCode, baseUrl: sandboxUrl, key: SANDBOX_KEY, timeoutMs: 30_000 });
const resetFaults = () => Object.assign(sandbox.faults, { api5xxNext: 0, apiTimeoutNext: 0, apiTimeoutMs: 3000 });

test('the breaker opens after N channel failures, fails fast while open (nothing sent), half-opens, reopens on a failed probe and closes on a good one', async () => {
  resetFaults();
  const guarded = guardAdapter(rawAdapter(), GUARD);
  try {
    assert.equal(guarded.guard.state(), 'closed');
    sandbox.faults.api5xxNext = 100;
    for (let i = 0; i < 3; i += 1) {
      await assert.rejects(guarded.queryOrder(`P${i}`), (e) => e instanceof ChannelUnavailable && !(e instanceof ChannelRejected));
    }
    assert.equal(guarded.guard.state(), 'open');
    assert.equal(guarded.available?.(), false);
    assert.equal(await guarded.health(), false);
    assert.equal(sandbox.faults.api5xxNext, 97, 'exactly 3 calls reached the channel');
    // Open: refused here, the channel sees nothing.
    for (let i = 0; i < 20; i += 1) {
      await assert.rejects(guarded.createOrder({ payOrderId: `P-open-${i}`, amountFen: 1n, currency: 'cny', subject: 's', body: 'b', wayCode: 'WX_NATIVE', clientIp: null, channelExtra: null, expireSeconds: 600, notifyUrl: 'http://127.0.0.1:9/n' }),
        (e) => e instanceof ChannelRejected && e.reason === 'open');
    }
    assert.equal(sandbox.faults.api5xxNext, 97, 'no call reached the channel while open');
    // Half-open after the reset time: one probe goes through; it fails, so open again.
    await waitFor('half-open', async () => guarded.guard.state() === 'half_open', 10_000);
    assert.equal(guarded.available?.(), true);
    await assert.rejects(guarded.queryOrder('P-probe-1'), (e) => e instanceof ChannelUnavailable && !(e instanceof ChannelRejected));
    assert.equal(sandbox.faults.api5xxNext, 96, 'one probe');
    assert.equal(guarded.guard.state(), 'open');
    // The channel recovers: the next probe succeeds and the breaker closes.
    resetFaults();
    await waitFor('half-open again', async () => guarded.guard.state() === 'half_open', 10_000);
    const probe = await guarded.queryOrder('P-probe-2');
    assert.equal(probe.status, 'not_found');
    assert.equal(guarded.guard.state(), 'closed');
    assert.equal((await guarded.queryOrder('P-after')).status, 'not_found');
  } finally {
    guarded.guard.shutdown();
  }
});

test('half-open lets exactly one probe through; the others are refused while it runs', async () => {
  resetFaults();
  const guarded = guardAdapter(rawAdapter(), GUARD);
  try {
    sandbox.faults.api5xxNext = 3;
    for (let i = 0; i < 3; i += 1) await assert.rejects(guarded.queryOrder(`P${i}`));
    await waitFor('half-open', async () => guarded.guard.state() === 'half_open', 10_000);
    Object.assign(sandbox.faults, { apiTimeoutNext: 1, apiTimeoutMs: 1000 });
    const probe = guarded.queryOrder('P-slow-probe').then(() => 'ok', (e: Error) => e.name);
    for (let i = 0; i < 5; i += 1) await assert.rejects(guarded.queryOrder(`P-other-${i}`), (e) => e instanceof ChannelRejected && e.reason === 'open');
    assert.equal(await probe, 'ChannelUnavailable'); // the slow probe ends in a 504: open again
    assert.equal(sandbox.faults.apiTimeoutNext, 0);
    assert.equal(guarded.guard.state(), 'open');
  } finally {
    guarded.guard.shutdown();
    resetFaults();
  }
});

test('concurrency bound: at most `concurrency` calls in flight, a bounded queue, the rest refused at once without counting as failures', async () => {
  resetFaults();
  const guarded = guardAdapter(rawAdapter(), { ...GUARD, concurrency: 2, queueMax: 1, breakerVolume: 100 });
  try {
    // Three calls issued together: two take the slots, one waits; the queue is then full.
    let peak = 0;
    const calls: Array<Promise<string>> = [];
    for (let i = 0; i < 3; i += 1) {
      calls.push(guarded.queryOrder(`P-c-${i}`).then((s) => s.status));
      peak = Math.max(peak, guarded.guard.inFlight());
    }
    assert.equal(guarded.guard.inFlight(), 2);
    assert.equal(guarded.guard.queued(), 1);
    for (let i = 0; i < 5; i += 1) {
      await assert.rejects(guarded.queryOrder(`P-busy-${i}`), (e) => e instanceof ChannelRejected && e.reason === 'busy');
    }
    assert.deepEqual(await Promise.all(calls), ['not_found', 'not_found', 'not_found']);
    assert.equal(peak, 2);
    assert.equal(guarded.guard.inFlight(), 0);
    assert.equal(guarded.guard.queued(), 0);
    assert.equal(guarded.guard.state(), 'closed', 'refusals for load are not channel failures');
  } finally {
    guarded.guard.shutdown();
  }
});

test('a hanging channel times out at the guard\'s timeout, and timeouts open the breaker', async () => {
  const sockets = new Set<import('node:net').Socket>();
  const hang: Server = createServer(() => { /* never answers */ });
  hang.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(hang.address() as { port: number }).port}`;
  // The adapter itself would wait 60 s; the guard gives it 300 ms.
  const guarded = guardAdapter(createSandboxAdapter({ ifCode: 'hang', baseUrl: url, key: SANDBOX_KEY, timeoutMs: 60_000 }), { ...GUARD, timeoutMs: 300 });
  try {
    const started = Date.now();
    for (let i = 0; i < 3; i += 1) {
      await assert.rejects(guarded.queryOrder(`P-h-${i}`), (e) => e instanceof ChannelUnavailable && /no answer within 300 ms/.test(e.message));
    }
    assert.ok(Date.now() - started < 30_000, 'three timeouts took far less than one adapter timeout');
    assert.equal(guarded.guard.state(), 'open');
    assert.equal(guarded.guard.inFlight(), 0);
  } finally {
    guarded.guard.shutdown();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => hang.close(() => resolve()));
  }
});

// --- through the merchant API --------------------------------------------------------------

async function openBreaker(stack: Stack, ifCode: string, fail: () => void) {
  const channel = stack.platform.channels.find((c) => c.ifCode === ifCode);
  assert.ok(channel);
  fail();
  for (let i = 0; i < 3; i += 1) await assert.rejects(channel.queryOrder(`P-${ifCode}-${i}`));
  assert.equal(channel.guard.state(), 'open');
}

test('routing: an open channel is skipped for the fallback; every route open answers 503 CHANNEL_UNAVAILABLE at once; breaker state in /metrics', async () => {
  const otherPort = await freePort();
  const other = createSandbox({ key: SANDBOX_KEY, publicUrl: `http://127.0.0.1:${otherPort}`, logLevel: 'silent' });
  await other.app.listen({ port: otherPort, host: '127.0.0.1' });
  const deadPort = await freePort();
  const stack = await startStack({
    background: false,
    // Reset far away: the breakers stay open for the whole test.
    env: { CUSTOS_CHANNEL_BREAKER_VOLUME: '3', CUSTOS_CHANNEL_BREAKER_RESET_MS: '600000' },
    extraAdapters: [
      createSandboxAdapter({ ifCode: 'sb2', baseUrl: `http://127.0.0.1:${otherPort}`, key: SANDBOX_KEY, timeoutMs: 30_000 }),
      createSandboxAdapter({ ifCode: 'sb3', baseUrl: `http://127.0.0.1:${deadPort}`, key: SANDBOX_KEY, timeoutMs: 30_000 }),
    ],
  });
  const setRoute = async (mchNo: string, body: Record<string, string>) => {
    const res = await fetch(`${stack.url}/v1/admin/merchants/${mchNo}/routes/*`, {
      method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, await res.text());
  };
  try {
    await openBreaker(stack, 'sb2', () => { other.faults.api5xxNext = 3; });
    await openBreaker(stack, 'sb3', () => {});
    // If anything reached sb2 now it would hang for 20 s and then fail.
    Object.assign(other.faults, { apiTimeoutNext: 100, apiTimeoutMs: 20_000 });

    // (a) primary open, fallback fine: the order goes to the fallback, the primary is not called.
    const a = await merchant(stack, null, '熔断切换物业');
    await setRoute(a.mchNo, { ifCode: 'sb2', fallbackIfCode: 'sandbox' });
    const created = await a.call('/api/pay/unifiedOrder', order('cb-1'));
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.data?.orderState, 1);
    assert.equal((await a.call('/api/pay/query', { mchOrderNo: 'cb-1' })).body.data?.ifCode, 'sandbox');

    // (b) the only channel open: 503 at once, Jeepay envelope, Retry-After; nothing sent.
    const b = await merchant(stack, null, '无备用熔断物业');
    await setRoute(b.mchNo, { ifCode: 'sb2' });
    const started = Date.now();
    const refused = await fetch(stack.url + '/api/pay/unifiedOrder', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify(await signedOrder(b, 'cb-2')),
    });
    assert.ok(Date.now() - started < 10_000, 'answered without waiting for the hanging channel');
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const body = await refused.json() as Record<string, unknown>;
    assert.equal(body.code, 9999);
    assert.equal(body.errCode, 'CHANNEL_UNAVAILABLE');
    assert.match(String(body.msg), /circuit open/);

    // (c) primary and fallback both open: 503 too; the retry of (b) still 503 and one order row.
    const c = await merchant(stack, null, '全部熔断物业');
    await setRoute(c.mchNo, { ifCode: 'sb2', fallbackIfCode: 'sb3' });
    const both = await c.call('/api/pay/unifiedOrder', order('cb-3'));
    assert.equal(both.status, 503, JSON.stringify(both.body));
    assert.equal(both.body.errCode, 'CHANNEL_UNAVAILABLE');
    assert.equal((await b.call('/api/pay/unifiedOrder', order('cb-2'))).status, 503);
    assert.equal(other.faults.apiTimeoutNext, 100, 'the open channel was never called');

    // /metrics: 2 = open, 0 = closed; refused calls counted.
    const metrics = await (await fetch(stack.url + '/metrics', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.match(metrics, /custos_channel_breaker_state\{if_code="sb2"\} 2/);
    assert.match(metrics, /custos_channel_breaker_state\{if_code="sb3"\} 2/);
    assert.match(metrics, /custos_channel_breaker_state\{if_code="sandbox"\} 0/);
    assert.match(metrics, /custos_channel_calls_total\{if_code="sb2",outcome="failure"\} 3/);
    assert.match(metrics, /custos_channel_in_flight\{if_code="sandbox"\} 0/);
  } finally {
    Object.assign(other.faults, { apiTimeoutNext: 0 });
    await stack.close();
    await other.app.close();
  }
});

async function signedOrder(m: { mchNo: string; appId: string; appSecret: string }, mchOrderNo: string) {
  const p: Record<string, unknown> = { mchNo: m.mchNo, appId: m.appId, reqTime: String(Date.now()), version: '1.0', signType: 'MD5', ...order(mchOrderNo) };
  p.sign = sign(p, m.appSecret, 'MD5');
  return p;
}
