// Issue 12, point 10: security headers on the HTML pages (a content security policy
// whose hashes cover the page's own inline style, frame-ancestors, Referrer-Policy, a
// charset), /metrics behind a bearer token, and the admin token never in the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startStack, merchant, order, ADMIN_TOKEN, type Stack } from './payment.harness.ts';
import { adminTokenBanner, resolveAdminToken } from '../src/platform/admin-token.ts';
import { loadConfig } from '../src/platform/config.ts';

let stack: Stack;
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

before(async () => {
  stack = await startStack({ env: { CUSTOS_METRICS_TOKEN: METRICS_TOKEN } });
});
after(async () => {
  await stack.close();
});

function checkHtmlHeaders(res: Response, html: string) {
  assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /object-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'no inline script allowed: the pages have none');
  assert.doesNotMatch(csp, /unsafe-inline/);
  // The page's own inline style is allowed by its hash (so the page still renders), nothing else inline.
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]);
  assert.ok(styles.length >= 1, 'the page has an inline style');
  for (const s of styles) assert.ok(csp.includes(`'sha256-${createHash('sha256').update(s).digest('base64')}'`), `style hash in ${csp}`);
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(res.headers.get('x-frame-options'), 'SAMEORIGIN');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
}

test('the owner H5 page carries a CSP with frame-ancestors, Referrer-Policy and a charset', async () => {
  const res = await fetch(`${stack.url}/h5/fund`);
  const html = await res.text();
  assert.equal(res.status, 200);
  checkHtmlHeaders(res, html);
  const search = await fetch(`${stack.url}/h5/fund/search?q=x`);
  checkHtmlHeaders(search, await search.text());
});

test('the payment cashier page carries the same headers, and choosing a way still redirects to the channel', async () => {
  const m = await merchant(stack);
  const created = await m.call('/api/pay/unifiedOrder', order('csp-1', { wayCode: 'QR_CASHIER' }));
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const payOrderId = String(created.body.data?.payOrderId);
  const res = await fetch(`${stack.url}/cashier/${payOrderId}`);
  const html = await res.text();
  assert.equal(res.status, 200);
  checkHtmlHeaders(res, html);
  assert.doesNotMatch(csp(res), /form-action/, 'the cashier form redirects to the channel\'s page: form-action must not block it');
  const missing = await fetch(`${stack.url}/cashier/P-none`);
  checkHtmlHeaders(missing, await missing.text());
  const chosen = await fetch(`${stack.url}/cashier/${payOrderId}/pay`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'wayCode=WX_H5' });
  assert.equal(chosen.status, 303);
});

const csp = (res: Response) => res.headers.get('content-security-policy') ?? '';

test('JSON APIs get the security headers too', async () => {
  const res = await fetch(`${stack.url}/healthz`);
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.match(csp(res), /frame-ancestors 'none'/);
});

test('/metrics answers 401 without the metrics token, and serves with it', async () => {
  const open = await fetch(`${stack.url}/metrics`);
  assert.equal(open.status, 401);
  assert.equal(((await open.json()) as { code: string }).code, 'UNAUTHORIZED');
  assert.equal((await fetch(`${stack.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status, 401);
  assert.equal((await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 401, 'a metrics token, when set, is the only key');
  const ok = await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /custos_risk_open_alerts/);
});

test('the admin token is shown once, to a terminal, when generated; never on later starts or into a log', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'custos-token-'));
  const config = loadConfig({ CUSTOS_DATA_DIR: dataDir });
  const first = await resolveAdminToken(config);
  assert.equal(first.generated, true);
  const second = await resolveAdminToken(config);
  assert.equal(second.generated, false);
  assert.equal(second.token, first.token);
  const banner = (t: typeof first, isTTY: boolean) => adminTokenBanner({ token: t.token, file: t.file, generated: t.generated, isTTY, address: 'http://127.0.0.1:8080' }).join('\n');
  assert.ok(banner(first, true).includes(first.token), 'first start on a terminal: shown once');
  assert.ok(!banner(first, false).includes(first.token), 'first start with stdout to a log (systemd, docker): not shown');
  assert.match(banner(first, false), new RegExp(`saved in ${first.file}`));
  assert.ok(!banner(second, true).includes(first.token), 'a later start: never shown again');
  assert.ok(!banner(second, false).includes(first.token));
  const fromEnv = { token: 'env-token-0123456789', file: null, generated: false };
  assert.ok(!banner(fromEnv, true).includes('env-token-0123456789'), 'a token from the environment is never printed');
});

test('custos serve with stdout to a log (not a terminal) never writes the admin token, on the first start or later', async () => {
  const { spawn } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'custos-serve-'));
  const root = path.resolve(import.meta.dirname, '..');
  const serveOnce = () => new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'bin/custos.js'), 'serve'], {
      env: { PATH: process.env.PATH ?? '', CUSTOS_DATA_DIR: dataDir, PORT: '0', CUSTOS_SANDBOX: 'off', CUSTOS_DEMO: 'off', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`serve did not start: ${out}`)); }, 120_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('/v1/ledger/verify')) child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => { clearTimeout(timer); resolve(out); });
  });
  const first = await serveOnce();
  const token = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  assert.ok(token.length >= 16);
  assert.ok(!first.includes(token), 'first start: the token is not in the log');
  assert.match(first, /admin token saved in/);
  const second = await serveOnce();
  assert.ok(!second.includes(token), 'later start: the token is not in the log');
});
