// `custos serve` as a child process on a PostgreSQL database, with the sandbox channel
// running in the test process (so it outlives the server): for the recovery and
// graceful-shutdown tests. Every child is killed at the latest when the test exits.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createSandbox, type Sandbox } from '../src/channel/sandbox/server.ts';
import { SIGNATURE_HEADER, signBody } from '../src/channel/sandbox/protocol.ts';
import { sign } from '../src/payment/sign.ts';
import { freePort, SANDBOX_KEY } from './payment.harness.ts';
import { FLOW_CONTROL_OFF_ENV } from '../src/platform/config.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'custos.js');
export const CHILD_TOKEN = 'test-token-123456';
const MASTER_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

const children = new Set<ChildProcess>();
export const killAllChildren = () => { for (const c of children) c.kill('SIGKILL'); };
process.once('exit', killAllChildren);

export interface ChildSandbox { sandbox: Sandbox; url: string; close(): Promise<void> }

export async function startChildSandbox(): Promise<ChildSandbox> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const sandbox = createSandbox({ key: SANDBOX_KEY, publicUrl: url, logLevel: 'silent' });
  await sandbox.app.listen({ port, host: '127.0.0.1' });
  return { sandbox, url, close: async () => { await sandbox.flush(); await sandbox.app.close(); } };
}

/** A signed call to the sandbox channel's API (as the platform's adapter makes). */
export async function sandboxGet(sb: ChildSandbox, route: string): Promise<Record<string, unknown>> {
  const res = await fetch(sb.url + route, { headers: { [SIGNATURE_HEADER]: signBody(SANDBOX_KEY, '') } });
  return (await res.json()) as Record<string, unknown>;
}

export function childEnv(dbUrl: string, sandboxUrl: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.join(ROOT, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH ?? ''}`,
    DATABASE_URL: dbUrl, CUSTOS_ADMIN_TOKEN: CHILD_TOKEN, CUSTOS_MASTER_KEY: MASTER_KEY, LOG_LEVEL: 'warn', HOST: '127.0.0.1',
    // The sandbox runs in the test process: a channel of the child's, not started by it.
    CUSTOS_SANDBOX: 'external', CUSTOS_SANDBOX_URL: sandboxUrl, CUSTOS_SANDBOX_KEY: SANDBOX_KEY, CUSTOS_DATA_DIR: 'memory',
    // Notify sinks listen on loopback; bursts from one test IP are not what flow control is tested with here.
    CUSTOS_OUTBOUND_ALLOW: '127.0.0.1', ...FLOW_CONTROL_OFF_ENV,
    ...extra,
  };
  delete env.NODE_TEST_CONTEXT; // the child is a server, not a test file
  return env;
}

export interface ServeChild {
  child: ChildProcess;
  base: string;
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

export async function startServe(env: NodeJS.ProcessEnv): Promise<ServeChild> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve'], { cwd: ROOT, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const keep = (chunk: Buffer) => { out = (out + chunk.toString()).slice(-200_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  const server: ServeChild = { child, base: `http://127.0.0.1:${port}`, exited, output: () => out };
  const deadline = Date.now() + 90_000; // generous: the test machine is shared
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`custos serve exited early:\n${out}`);
    try {
      const res = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`custos serve did not become healthy in 90 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function killServe(server: ServeChild | null): Promise<void> {
  if (!server) return;
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  await server.exited;
}

export function cliVerify(env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'ledger', 'verify', '--json'], { cwd: ROOT, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

export interface ChildMerchant { mchNo: string; appId: string; appSecret: string }

export async function adminPost(base: string, route: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + route, {
    method: 'POST', headers: { authorization: `Bearer ${CHILD_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** A signed Jeepay call; throws when the connection fails (the server is gone). */
export async function merchantCall(base: string, m: ChildMerchant, route: string, params: Record<string, unknown>): Promise<{ status: number; body: { code: number; errCode?: string; data?: Record<string, unknown> } }> {
  const p: Record<string, unknown> = { mchNo: m.mchNo, appId: m.appId, reqTime: String(Date.now()), version: '1.0', signType: 'MD5', ...params };
  p.sign = sign(p, m.appSecret, 'MD5');
  const res = await fetch(base + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(p), signal: AbortSignal.timeout(30_000) });
  return { status: res.status, body: (await res.json()) as { code: number; errCode?: string; data?: Record<string, unknown> } };
}
