// Issue 12, holes 5, 8 and 9, through the HTTP API as an attacker sends them:
//  5. NUL bytes (PostgreSQL refuses 0x00 in text) and other characters no field can
//     hold are refused at the edge with 400 INVALID_CHARACTER naming the field, on
//     every route, and statement/register files holding NUL are a typed 422;
//  8. the reconciliation API reads only files inside its inbox (or uploaded), and
//     stores them 0600 in 0700 folders;
//  9. an .xlsx register import that decompresses beyond the bound is refused from
//     the archive's directory, before exceljs inflates it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createDeflateRaw, crc32 } from 'node:zlib';
import { sql } from 'kysely';
import { merchant, order, startStack, ADMIN_TOKEN, type MerchantClient, type Stack } from './payment.harness.ts';
import { apiOf, setUpCity, HEADER, csvRow, type Api } from './fund.deposit.harness.ts';
import { wechatBill } from '../src/channel/sandbox/statements.ts';
import { sign } from '../src/payment/sign.ts';

const inbox = mkdtempSync(path.join(tmpdir(), 'custos-inbox-t-'));
const fileDir = path.join(mkdtempSync(path.join(tmpdir(), 'custos-files-t-')), 'files');
let stack: Stack;
let api: Api;
let m: MerchantClient;

before(async () => {
  stack = await startStack({ env: { CUSTOS_RECON_INBOX: inbox, CUSTOS_FILE_DIR: fileDir } });
  api = apiOf(stack);
  await setUpCity(api);
  m = await merchant(stack);
});
after(async () => {
  await stack.close();
});

const db = () => stack.t.db.kysely;
const count = async (table: string) => Number((await sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql.table(table)}`.execute(db())).rows[0].n);

async function raw(method: string, p: string, body?: string, headers: Record<string, string> = {}) {
  const res = await fetch(stack.url + p, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body: parsed };
}

// --- hole 5 ------------------------------------------------------------------------

test('the unauthenticated POST /api/pay/query with a NUL in mchNo is a 400 INVALID_CHARACTER, not a 500 (JSON and form)', async () => {
  const json = await raw('POST', '/api/pay/query', JSON.stringify({ mchNo: 'M\u0000X', appId: 'a', sign: 'x', reqTime: String(Date.now()), payOrderId: 'P1' }));
  assert.equal(json.status, 400, JSON.stringify(json.body));
  assert.equal(json.body.errCode, 'INVALID_CHARACTER');
  assert.match(json.body.msg, /body\.mchNo/);
  const form = await raw('POST', '/api/pay/query', 'mchNo=M%00X&appId=a&sign=x&payOrderId=P1', { 'content-type': 'application/x-www-form-urlencoded' });
  assert.equal(form.status, 400, JSON.stringify(form.body));
  assert.equal(form.body.errCode, 'INVALID_CHARACTER');
});

test('GET /h5/fund/search?q=a%00b is a 400 INVALID_CHARACTER', async () => {
  const res = await raw('GET', '/h5/fund/search?q=a%00b');
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.code, 'INVALID_CHARACTER');
  assert.equal(res.body.details.field, 'query.q');
});

test('every signed merchant field with a NUL (or a lone surrogate, or a control character) is a 400 naming it, and no order is written', async () => {
  const before = await count('pay_orders');
  const fields = ['mchOrderNo', 'subject', 'body', 'clientIp', 'notifyUrl', 'returnUrl', 'extParam', 'channelExtra', 'currency', 'wayCode'];
  for (const field of fields) {
    for (const bad of ['a\u0000b', 'a\ud800b', 'a\u001bb']) {
      const base = order(`nul-${field}`);
      const res = await m.call('/api/pay/unifiedOrder', { ...base, [field]: field === 'notifyUrl' || field === 'returnUrl' ? `https://example.com/${bad}` : bad });
      assert.equal(res.status, 400, `${field}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.errCode, 'INVALID_CHARACTER', field);
      assert.ok(res.body.msg.includes(`body.${field}`), res.body.msg);
    }
  }
  for (const p of ['/api/pay/query', '/api/pay/close', '/api/refund/refundOrder', '/api/refund/query', '/api/transferOrder', '/api/transfer/query', '/api/division/exec', '/api/division/receiver/bind']) {
    const res = await m.call(p, { mchOrderNo: 'x\u0000', payOrderId: 'P\u0000', mchRefundNo: 'r\u0000', mchTransferNo: 't\u0000' });
    assert.equal(res.status, 400, `${p}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.errCode, 'INVALID_CHARACTER', p);
  }
  assert.equal(await count('pay_orders'), before);
});

test('admin paths and queries with %00 are a 400 INVALID_CHARACTER', async () => {
  for (const p of ['/v1/admin/pay-orders/P%00', '/v1/admin/notifications/1%00', '/v1/admin/settlement/merchants/M%00', '/v1/admin/settlement/calendar/2026-01-01%00',
    '/v1/fund/units/%00', '/v1/fund/estates/1%00', '/v1/ledger/accounts/%00/balance', '/v1/admin/recon/batches/%00', '/v1/admin/recon/mistakes?state=%00', '/v1/fund/units?estateId=%00']) {
    const res = await raw('GET', p);
    assert.equal(res.status, 400, `${p}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.code, 'INVALID_CHARACTER', p);
  }
  const put = await raw('PUT', '/v1/admin/merchants/M%00/routes/WX_NATIVE', JSON.stringify({ ifCode: 'sandbox' }));
  assert.equal(put.status, 400);
  assert.equal(put.body.code, 'INVALID_CHARACTER');
  const nested = await raw('PUT', '/v1/admin/settlement/calendar', JSON.stringify({ days: [{ day: '2026-01-01', kind: 'holiday', note: 'ok' }, { day: '2026-01-02\u0000', kind: 'holiday', note: 'x' }] }));
  assert.equal(nested.status, 400);
  assert.equal(nested.body.details.field, 'body.days[1].day');
  const key = await raw('POST', '/v1/ledger/accounts', JSON.stringify({ 'a\u0000': 1 }));
  assert.equal(key.body.code, 'INVALID_CHARACTER', 'object keys are checked too');
});

test('a free-text field may hold line breaks (a note), never a NUL', async () => {
  const ok = await raw('PUT', '/v1/admin/settlement/calendar', JSON.stringify({ days: [{ day: '2026-01-01', kind: 'holiday', note: '元旦\n第二行\t备注' }] }));
  assert.notEqual(ok.body.code, 'INVALID_CHARACTER', JSON.stringify(ok.body));
  assert.ok(ok.status < 500);
  const bad = await raw('PUT', '/v1/admin/settlement/calendar', JSON.stringify({ days: [{ day: '2026-01-01', kind: 'holiday', note: '元旦\u0000' }] }));
  assert.equal(bad.body.code, 'INVALID_CHARACTER');
  const line = await raw('GET', '/h5/fund/search?q=a%0Ab');
  assert.equal(line.body.code, 'INVALID_CHARACTER', 'a one-line field refuses a line break');
});

test('a WeChat bill holding a NUL is a 422 rejection (BILL_CONTROL_CHAR), not RUN_FAILED', async () => {
  const day = '2026-11-02';
  const bill = wechatBill({ billDate: day, feeRate: '0.006', refunds: [], payments: [
    { outTradeNo: 'P1', tradeNo: 'T\u00001', amountFen: 100n, wayCode: 'WX_NATIVE', subject: 's', payer: null, successAt: new Date(`${day}T02:00:00Z`), createdAt: new Date(`${day}T02:00:00Z`) },
  ] });
  const up = await raw('POST', '/v1/admin/recon/files', bill, { 'content-type': 'application/octet-stream' });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const run = await raw('POST', '/v1/admin/recon/runs', JSON.stringify({ channel: 'sandbox', billDate: day, file: up.body.file }));
  assert.equal(run.status, 422, JSON.stringify(run.body));
  assert.equal(run.body.code, 'RECON_FILE_REJECTED');
  assert.match(run.body.message, /BILL_CONTROL_CHAR/);
  const failed = await sql<{ n: string }>`SELECT count(*)::text AS n FROM recon_batches WHERE reject_code = 'RUN_FAILED'`.execute(db());
  assert.equal(failed.rows[0].n, '0');
});

test('a register import holding a NUL is a 422 FUND_IMPORT_INVALID_CHARACTER', async () => {
  const csv = [HEADER, csvRow({ building: '9', room: '1\u00001' })].join('\n');
  const res = await api('POST', '/v1/fund/imports', { city: 'hz', format: 'csv', contentBase64: Buffer.from(csv).toString('base64') });
  assert.equal(res.status, 422, JSON.stringify(res.body));
  assert.equal(res.body.code, 'FUND_IMPORT_INVALID_CHARACTER');
});

// --- hole 8 ------------------------------------------------------------------------

test('the reconciliation API refuses server paths outside its inbox, symlinks out of it and non-files; nothing is stored', async () => {
  symlinkSync('/etc/passwd', path.join(inbox, 'passwd-link'));
  mkdirSync(path.join(inbox, 'folder'), { recursive: true });
  const filesBefore = await count('recon_files');
  const bad = ['/proc/self/environ', '/etc/shadow', '/etc/passwd', '../../etc/passwd', `${inbox}/../../etc/passwd`, 'passwd-link', 'folder', '/dev/zero'];
  for (const file of bad) {
    for (const [p, body] of [
      ['/v1/admin/recon/runs', { channel: 'sandbox', billDate: '2026-11-03', file }],
      ['/v1/admin/recon/batches', { channel: 'sandbox', billDate: '2026-11-04', file }],
      ['/v1/admin/recon/supervision', { bankAccountNo: '6222', billDate: '2026-11-03', file }],
    ] as const) {
      const res = await raw('POST', p, JSON.stringify(body));
      assert.equal(res.status, 400, `${p} ${file}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.code, 'RECON_FILE_NOT_ALLOWED', `${p} ${file}`);
    }
  }
  const missing = await raw('POST', '/v1/admin/recon/runs', JSON.stringify({ channel: 'sandbox', billDate: '2026-11-03', file: 'nothing-here.csv' }));
  assert.equal(missing.status, 404);
  assert.equal(await count('recon_files'), filesBefore, 'nothing was copied into the file store');
});

test('a file in the inbox or uploaded is read; stored copies are 0600 in 0700 folders', async () => {
  const day = '2026-11-05';
  const bill = wechatBill({ billDate: day, feeRate: '0.006', payments: [], refunds: [] });
  writeFileSync(path.join(inbox, 'day.csv'), bill);
  const viaInbox = await raw('POST', '/v1/admin/recon/runs', JSON.stringify({ channel: 'sandbox', billDate: day, file: 'day.csv' }));
  assert.equal(viaInbox.status, 200, JSON.stringify(viaInbox.body));
  const up = await raw('POST', '/v1/admin/recon/files', wechatBill({ billDate: '2026-11-06', feeRate: '0.006', payments: [], refunds: [] }), { 'content-type': 'application/octet-stream' });
  assert.equal(up.status, 201);
  assert.match(up.body.file, /^uploads\/[0-9a-f]{64}$/);
  const viaUpload = await raw('POST', '/v1/admin/recon/runs', JSON.stringify({ channel: 'sandbox', billDate: '2026-11-06', file: up.body.file }));
  assert.equal(viaUpload.status, 200, JSON.stringify(viaUpload.body));
  const modes: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      const st = statSync(full);
      modes.push(`${path.relative(fileDir, full)} ${(st.mode & 0o777).toString(8)}`);
      if (st.isDirectory()) walk(full);
    }
  };
  assert.equal((statSync(fileDir).mode & 0o777).toString(8), '700');
  walk(fileDir);
  assert.ok(modes.length >= 2, modes.join(', '));
  for (const line of modes) assert.match(line, / (600|700)$/, line);
  assert.equal((statSync(path.join(inbox, up.body.file)).mode & 0o777).toString(8), '600');
  assert.equal((statSync(path.join(inbox, 'uploads')).mode & 0o777).toString(8), '700');
});

// --- hole 9 ------------------------------------------------------------------------

/** An .xlsx-shaped zip whose sheet inflates to `bytes` spaces (a zip bomb), built without holding it. */
async function zipBomb(bytes: number): Promise<Buffer> {
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  let crc = 0;
  const deflate = createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((resolve) => deflate.on('end', resolve));
  for (let written = 0; written < bytes; written += chunk.length) {
    crc = crc32(chunk, crc);
    if (!deflate.write(chunk)) await new Promise((resolve) => deflate.once('drain', resolve));
  }
  deflate.end();
  await done;
  const entries = [
    { name: '[Content_Types].xml', data: Buffer.from('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'), size: 0, crc: 0, method: 0 },
    { name: 'xl/worksheets/sheet1.xml', data: Buffer.concat(out), size: bytes, crc, method: 8 },
  ];
  entries[0].size = entries[0].data.length;
  entries[0].crc = crc32(entries[0].data);
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(e.method, 8);
    local.writeUInt32LE(e.crc >>> 0, 14); local.writeUInt32LE(e.data.length, 18); local.writeUInt32LE(e.size, 22); local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0); central.writeUInt16LE(20, 4); central.writeUInt16LE(20, 6); central.writeUInt16LE(e.method, 10);
    central.writeUInt32LE(e.crc >>> 0, 16); central.writeUInt32LE(e.data.length, 20); central.writeUInt32LE(e.size, 24); central.writeUInt16LE(name.length, 28); central.writeUInt32LE(offset, 42);
    locals.push(local, name, e.data);
    centrals.push(central, name);
    offset += 30 + name.length + e.data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10); end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

test('an .xlsx zip bomb is refused (413 FUND_IMPORT_TOO_LARGE) before it is inflated', async () => {
  const bomb = await zipBomb(400 * 1024 * 1024);
  assert.ok(bomb.length < 1024 * 1024, `the bomb is small: ${bomb.length} bytes`);
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
  const res = await api('POST', '/v1/fund/imports', { city: 'hz', format: 'xlsx', contentBase64: bomb.toString('base64') });
  clearInterval(sampler);
  assert.equal(res.status, 413, JSON.stringify(res.body));
  assert.equal(res.body.code, 'FUND_IMPORT_TOO_LARGE');
  // Loose on purpose (a shared machine): inflating it would take 400 MB or more.
  assert.ok(rssPeak - rssBefore < 150 * 1024 * 1024, `memory grew by ${Math.round((rssPeak - rssBefore) / 1048576)} MB`);
});

test('a header holding a NUL never reaches a route: Node\'s parser answers 400', async () => {
  const { connect } = await import('node:net');
  const url = new URL(stack.url);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(`GET /v1/admin/merchants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nX-Request-Id: a\u0000b\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 400/);
});
