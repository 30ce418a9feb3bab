// A whole payment stack for tests: a real database, the sandbox channel on its own
// HTTP port, the platform on another, merchants, a signed Jeepay client, and a
// merchant notify endpoint that can fail N times. Everything on loopback.
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { openTestDb, type TestDb } from './helpers.ts';
import { createPlatform, type Platform, type PlatformOptions } from '../src/server.ts';
import { FLOW_CONTROL_OFF_ENV, loadConfig } from '../src/platform/config.ts';
import { createSandbox, type Sandbox } from '../src/channel/sandbox/server.ts';
import { createSandboxAdapter } from '../src/channel/sandbox/adapter.ts';
import { SIGNATURE_HEADER, signBody, signSimAction, type SbNotification, type SimAction } from '../src/channel/sandbox/protocol.ts';
import type { Resolver } from '../src/platform/outbound.ts';
import type { ChannelAdapter } from '../src/channel/contract.ts';
import { sign, verify, type SignType } from '../src/payment/sign.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const MASTER_KEY = '0'.repeat(64);
export const SANDBOX_KEY = 'test-sandbox-key';
/** The test allow-list for outbound requests: the notify sinks on loopback. */
export const LOOPBACK_V4 = '127.0.0.1';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface Stack {
  t: TestDb;
  platform: Platform;
  sandbox: Sandbox;
  url: string;
  sandboxUrl: string;
  close(): Promise<void>;
}

export interface StackOptions {
  notifyScheduleS?: string;
  reqTimeWindowS?: string;
  /** The sandbox's clock (statements are for days before "today"). */
  sandboxNow?: () => Date;
  background?: boolean;
  /** Timeout of the platform's sandbox adapter (default: the adapter's own, 5000 ms). */
  adapterTimeoutMs?: number;
  /** More channel adapters after the sandbox's (which stays the default channel). */
  extraAdapters?: ChannelAdapter[];
  /** Reconciliation options for the platform (hooks are called after the platform's own). */
  recon?: PlatformOptions['recon'];
  /** Loss-prevention options for the platform. */
  risk?: PlatformOptions['risk'];
  /** More configuration for the platform (flow control: CUSTOS_RATE_*, CUSTOS_CHANNEL_*, REDIS_URL). */
  env?: Record<string, string>;
  /** The platform's clock (default: the system clock). */
  clock?: PlatformOptions['clock'];
  /**
   * CUSTOS_OUTBOUND_ALLOW of the platform. The merchant notify sinks of these tests
   * listen on 127.0.0.1, which the platform refuses by default: the stack allows it
   * explicitly (pass '' for the production default).
   */
  outboundAllow?: string;
  /** How the platform's outbound client resolves names (tests play DNS). */
  outboundResolve?: Resolver;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const t = await openTestDb({ poolSize: 16 });
  const [port, sandboxPort] = [await freePort(), await freePort()];
  const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
  const sandbox = createSandbox({ key: SANDBOX_KEY, publicUrl: sandboxUrl, logLevel: 'silent', now: options.sandboxNow });
  await sandbox.app.listen({ port: sandboxPort, host: '127.0.0.1' });
  const config = loadConfig({
    CUSTOS_DATA_DIR: 'memory', CUSTOS_ADMIN_TOKEN: ADMIN_TOKEN, CUSTOS_MASTER_KEY: MASTER_KEY, LOG_LEVEL: 'silent',
    PORT: String(port), CUSTOS_SANDBOX_URL: sandboxUrl, CUSTOS_SANDBOX_KEY: SANDBOX_KEY,
    CUSTOS_NOTIFY_SCHEDULE_S: options.notifyScheduleS ?? '1,1,1', CUSTOS_REQ_TIME_WINDOW_S: options.reqTimeWindowS ?? '300',
    CUSTOS_POLL_INTERVAL_S: '3600', CUSTOS_OUTBOUND_ALLOW: options.outboundAllow ?? LOOPBACK_V4,
    // Tests of other areas send bursts from one IP: flow control stays out of their way unless a test sets it.
    ...FLOW_CONTROL_OFF_ENV,
    ...options.env,
  });
  const adapters = options.adapterTimeoutMs !== undefined || options.extraAdapters
    ? [createSandboxAdapter({ baseUrl: sandboxUrl, key: SANDBOX_KEY, timeoutMs: options.adapterTimeoutMs }), ...(options.extraAdapters ?? [])]
    : undefined;
  const platform = await createPlatform(config, { db: t.db, adapters, recon: options.recon, risk: options.risk, clock: options.clock, outboundResolve: options.outboundResolve });
  await platform.app.listen({ port, host: '127.0.0.1' });
  const stopBackground = options.background === false ? () => {} : await platform.startBackground();
  return {
    t, platform, sandbox, url: `http://127.0.0.1:${port}`, sandboxUrl,
    async close() {
      stopBackground();
      await sandbox.flush();
      await platform.close();
      await sandbox.app.close();
      await t.close();
    },
  };
}

export interface MerchantClient {
  mchNo: string;
  appId: string;
  appSecret: string;
  call(path: string, params: Record<string, unknown>, options?: { signType?: SignType; reqTime?: number; tamper?: (p: Record<string, unknown>) => void; form?: boolean }): Promise<{ status: number; body: { code: number; msg: string; errCode?: string; data?: Record<string, unknown>; sign?: string } }>;
}

export async function merchant(stack: Stack, notifyUrl: string | null = null, name = '测试物业公司'): Promise<MerchantClient> {
  const created = await stack.platform.payment.merchants.createMerchant({ name, notifyUrl });
  return {
    ...created,
    async call(path, params, options = {}) {
      const signType = options.signType ?? 'MD5';
      const p: Record<string, unknown> = { mchNo: created.mchNo, appId: created.appId, reqTime: String(options.reqTime ?? Date.now()), version: '1.0', signType, ...params };
      p.sign = sign(p, created.appSecret, signType);
      options.tamper?.(p);
      const res = await fetch(stack.url + path, options.form
        ? { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(Object.entries(p).map(([k, v]): [string, string] => [k, String(v)])).toString() }
        : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(p) });
      const body = await res.json() as { code: number; msg: string; data?: Record<string, unknown>; sign?: string };
      if (body.code === 0 && body.data && !verify({ ...body.data, sign: body.sign }, created.appSecret, signType)) {
        throw new Error(`response signature invalid for ${path}`);
      }
      return { status: res.status, body };
    },
  };
}

export interface NotifySink {
  url: string;
  received: Array<Record<string, string>>;
  /** Answer 500 to the next N notifications. */
  failNext: number;
  answer: string;
  close(): Promise<void>;
}

export async function notifySink(): Promise<NotifySink> {
  const sink: NotifySink = { url: '', received: [], failNext: 0, answer: 'success', close: async () => {} };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (sink.failNext > 0) {
        sink.failNext -= 1;
        res.statusCode = 500;
        res.end('busy');
        return;
      }
      sink.received.push(Object.fromEntries(new URLSearchParams(body)));
      res.end(sink.answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/notify`;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export const order = (mchOrderNo: string, extra: Record<string, unknown> = {}) => ({
  mchOrderNo, wayCode: 'WX_NATIVE', amount: 10000, currency: 'cny', subject: '2026年11月物业费', body: '1幢2单元301 物业费', ...extra,
});

/** Calls the sandbox channel's signed API directly (as the platform's adapter would). */
export async function sandboxApi(stack: Stack, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; data: Record<string, unknown> }> {
  const text = body === undefined ? '' : JSON.stringify(body);
  const res = await fetch(stack.sandboxUrl + path, {
    method, body: method === 'GET' ? undefined : text,
    headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(SANDBOX_KEY, text) },
  });
  return { status: res.status, data: (await res.json()) as Record<string, unknown> };
}

/** A payer action at the sandbox over HTTP, signed with the sandbox key as `custos sandbox pay` does. */
export async function sandboxPayerAction(stack: Stack, payOrderId: string, action: SimAction = 'pay', key = SANDBOX_KEY): Promise<{ status: number; data: Record<string, unknown> }> {
  const signed = signSimAction(key, payOrderId, action);
  const res = await fetch(`${stack.sandboxUrl}/v1/sim/orders/${encodeURIComponent(payOrderId)}/${action}`, { method: 'POST', body: signed.body, headers: signed.headers });
  return { status: res.status, data: (await res.json()) as Record<string, unknown> };
}

/** Sends a channel notification signed with the sandbox key to the platform, as the sandbox channel would. */
export async function sendChannelNotification(stack: Stack, n: SbNotification, ifCode = 'sandbox'): Promise<{ status: number; text: string }> {
  const text = JSON.stringify(n);
  const res = await fetch(`${stack.url}/api/channel/notify/${ifCode}`, {
    method: 'POST', body: text, headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(SANDBOX_KEY, text) },
  });
  return { status: res.status, text: await res.text() };
}
