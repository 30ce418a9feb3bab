// Statement fetch and the file store against real servers on loopback, started here:
// the sandbox channel (HTTP), ftp-srv (FTP), an ssh2 server with a minimal SFTP
// subsystem over a temp folder, servers that hang, and local files. Proves: the bytes
// are stored as received (sha256, size), storing twice is one row, a file not there
// yet is STATEMENT_NOT_READY after the bounded retries with exponential back-off, a
// hanging server is FETCH_TIMEOUT within the timeouts, wrong credentials are
// FETCH_AUTH_FAILED without retries, and a stored copy changed on disk is refused.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, openSync, readSync, closeSync, statSync, readdirSync, existsSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { FtpSrv } from 'ftp-srv';
import { openTestDb, type TestDb } from './helpers.ts';
import { createSandbox, type Sandbox } from '../src/channel/sandbox/server.ts';
import { createSandboxAdapter } from '../src/channel/sandbox/adapter.ts';
import { wechatBill, alipayBill } from '../src/channel/sandbox/statements.ts';
import { createStatementStore, type StatementStore } from '../src/recon/fetch/store.ts';
import { FetchError, type StatementSource } from '../src/recon/fetch/source.ts';
import { sql } from '../src/platform/db.ts';
import { AppError } from '../src/platform/errors.ts';
import { parseStatement, type ChannelRecord } from '../src/recon/parse/index.ts';

const KEY = 'fetch-test-key';
const D = '2026-11-21';
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const FAST = { connectTimeoutMs: 2_000, transferTimeoutMs: 5_000, backoffBaseMs: 5, backoffMaxMs: 50 };

let t: TestDb;
let sandbox: Sandbox;
let sandboxUrl: string;
let clock = new Date(`${D}T10:00:00+08:00`);
const remoteDir = mkdtempSync(path.join(os.tmpdir(), 'custos-remote-'));
const bankCsv = Buffer.from('交易日期,交易时间,流水号,借方发生额,贷方发生额,余额\r\n2026-11-21,10:00:00,S1,,100.00,100.00\r\n', 'utf8');
const closers: Array<() => Promise<unknown>> = [];

function store(waits?: number[]): StatementStore {
  return createStatementStore({ db: t.db, dir: null, sleep: waits ? async (ms) => { waits.push(ms); } : undefined });
}

async function rows(): Promise<number> {
  const r = await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM recon_files`.execute(t.db.kysely);
  return Number(r.rows[0].n);
}

async function rejectsWith(promise: Promise<unknown>, code: string, attempts?: number): Promise<FetchError> {
  let caught: unknown = null;
  await promise.catch((error: unknown) => { caught = error; });
  assert.ok(caught instanceof FetchError, `expected a FetchError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (attempts !== undefined) assert.equal(caught.attempts, attempts, caught.message);
  return caught;
}

// --- servers ------------------------------------------------------------------------

async function startSandbox(): Promise<void> {
  sandbox = createSandbox({ key: KEY, publicUrl: 'http://127.0.0.1', logLevel: 'silent', now: () => clock });
  sandbox.faults.notifyDrop = true;
  await sandbox.app.listen({ port: 0, host: '127.0.0.1' });
  const address = sandbox.app.server.address() as net.AddressInfo;
  sandboxUrl = `http://127.0.0.1:${address.port}`;
  closers.push(() => sandbox.app.close());
  const adapter = createSandboxAdapter({ baseUrl: sandboxUrl, key: KEY });
  for (const [id, fen] of [['P-fetch-1', 12345n], ['P-fetch-2', 250n]] as const) {
    const created = await adapter.createOrder({
      payOrderId: id, amountFen: fen, currency: 'cny', subject: '物业费', body: '物业费', wayCode: 'WX_NATIVE', clientIp: null,
      channelExtra: null, expireSeconds: 600, notifyUrl: 'http://127.0.0.1:9/unused',
    });
    assert.equal(created.status, 'paying');
    await sandbox.pay(id, 'oPayer');
  }
  clock = new Date(`2026-11-22T10:00:00+08:00`); // the next day: D's bill is ready
}

const silentLog = { info() {}, debug() {}, trace() {}, warn() {}, error() {}, child() { return silentLog; } };

async function startFtp(): Promise<number> {
  const port = await freePort();
  const pasvMin = 30_000 + Math.floor(Math.random() * 20_000);
  const server = new FtpSrv({ url: `ftp://127.0.0.1:${port}`, pasv_url: '127.0.0.1', pasv_min: pasvMin, pasv_max: pasvMin + 200, anonymous: false, log: silentLog, greeting: 'custos test' });
  server.on('login', ({ username, password }: { username: string; password: string }, resolve: (r: { root: string }) => void, reject: (e: Error) => void) => {
    if (username === 'bank' && password === 'secret') resolve({ root: remoteDir });
    else reject(new Error('用户名或密码错误 / login incorrect'));
  });
  await server.listen();
  closers.push(() => server.close());
  return port;
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const hostKey = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;

/** An ssh2 server whose SFTP subsystem serves remoteDir read-only: OPEN, READ, STAT, FSTAT, CLOSE, REALPATH. */
async function startSftp(): Promise<number> {
  const { STATUS_CODE, OPEN_MODE } = ssh2.utils.sftp;
  const server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
    client.on('authentication', (ctx) => {
      if (ctx.method === 'password' && ctx.username === 'bank' && ctx.password === 'secret') ctx.accept();
      else ctx.reject(['password']);
    });
    client.on('error', () => {});
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          const handles = new Map<number, number>();
          let nextHandle = 1;
          const local = (p: string) => path.join(remoteDir, path.posix.normalize('/' + p));
          const attrsOf = (file: string) => {
            const s = statSync(file);
            return { mode: s.mode, uid: 0, gid: 0, size: s.size, atime: Math.floor(s.atimeMs / 1000), mtime: Math.floor(s.mtimeMs / 1000) };
          };
          sftp.on('OPEN', (reqid, filename, flags) => {
            if (flags !== OPEN_MODE.READ || !existsSync(local(filename))) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
            const id = nextHandle++;
            handles.set(id, openSync(local(filename), 'r'));
            const handle = Buffer.alloc(4);
            handle.writeUInt32BE(id);
            sftp.handle(reqid, handle);
          });
          sftp.on('READ', (reqid, handle, offset, length) => {
            const fd = handles.get(handle.readUInt32BE(0));
            if (fd === undefined) return sftp.status(reqid, STATUS_CODE.FAILURE);
            const buf = Buffer.alloc(length);
            const n = readSync(fd, buf, 0, length, offset);
            if (n === 0) sftp.status(reqid, STATUS_CODE.EOF);
            else sftp.data(reqid, buf.subarray(0, n));
          });
          sftp.on('FSTAT', (reqid, handle) => {
            const fd = handles.get(handle.readUInt32BE(0));
            if (fd === undefined) return sftp.status(reqid, STATUS_CODE.FAILURE);
            const s = statSync(`/proc/self/fd/${fd}`);
            sftp.attrs(reqid, { mode: s.mode, uid: 0, gid: 0, size: s.size, atime: 0, mtime: 0 });
          });
          const onStat = (reqid: number, p: string) => (existsSync(local(p)) ? sftp.attrs(reqid, attrsOf(local(p))) : sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE));
          sftp.on('STAT', onStat);
          sftp.on('LSTAT', onStat);
          sftp.on('CLOSE', (reqid, handle) => {
            const id = handle.readUInt32BE(0);
            const fd = handles.get(id);
            if (fd !== undefined) closeSync(fd);
            handles.delete(id);
            sftp.status(reqid, STATUS_CODE.OK);
          });
          sftp.on('REALPATH', (reqid, p) => {
            const name = path.posix.normalize('/' + p);
            sftp.name(reqid, [{ filename: name, longname: name, attrs: {} as never }]);
          });
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as net.AddressInfo).port;
}

/** Accepts connections and never says a word. */
async function startSilent(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(resolve); }));
  return (server.address() as net.AddressInfo).port;
}

/** Answers 200 with headers, then one byte a second: the transfer never ends. */
async function startTrickle(): Promise<number> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/csv' });
    const timer = setInterval(() => res.write('x'), 1000);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
  return (server.address() as net.AddressInfo).port;
}

let ftpPort = 0;
let sftpPort = 0;
let silentPort = 0;
let tricklePort = 0;

before(async () => {
  t = await openTestDb();
  writeFileSync(path.join(remoteDir, `bank_${D.replaceAll('-', '')}.csv`), bankCsv);
  await startSandbox();
  [ftpPort, sftpPort, silentPort, tricklePort] = await Promise.all([startFtp(), startSftp(), startSilent(), startTrickle()]);
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await t.close();
});

// --- HTTP ---------------------------------------------------------------------------

test('HTTP: the sandbox bill is stored as received (sha256, size, row); fetching it again is the same row', async () => {
  const s = store();
  const source: StatementSource = { kind: 'http', baseUrl: sandboxUrl, key: KEY, format: 'wechat', billType: 'ALL', ...FAST };
  const expected = Buffer.from(wechatBill(sandbox.statementInput(D), 'ALL'), 'utf8');
  assert.ok(expected.toString('utf8').includes('P-fetch-1'), 'the bill lists the paid order');
  const before = await rows();
  const row = await s.fetchAndStore(source, { channel: 'sandbox', billDate: D, fileType: 'wechat:ALL', account: '1900000109' });
  assert.equal(row.sha256, sha(expected));
  assert.equal(row.size_bytes, BigInt(expected.length));
  assert.equal(row.bill_date, D);
  assert.equal(row.source_kind, 'http');
  assert.equal(row.account, '1900000109');
  assert.deepEqual(readFileSync(path.join(s.dir, row.stored_path)), expected, 'stored copy = the bytes served');
  const again = await s.fetchAndStore(source, { channel: 'sandbox', billDate: D, fileType: 'wechat:ALL', account: '1900000109' });
  assert.equal(again.id, row.id);
  assert.equal(await rows(), before + 1, 'one row for the same bytes');
  // the stored copy reads back verified
  const chunks: Buffer[] = [];
  for await (const c of s.open(row)) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), expected);
  // Alipay is binary (a zip): stored byte for byte
  const zipRow = await s.fetchAndStore({ ...source, format: 'alipay', billType: undefined }, { channel: 'sandbox', billDate: D, fileType: 'alipay:trade' });
  assert.equal(zipRow.original_name, `alipay_${D.replaceAll('-', '')}.zip`);
  const zip = readFileSync(path.join(s.dir, zipRow.stored_path));
  assert.equal(sha(zip), zipRow.sha256);
  assert.equal(zip.readUInt32LE(0), 0x04034b50, 'a zip as received');
  assert.deepEqual(zip, alipayBill(sandbox.statementInput(D), clock), 'the sandbox\'s zip, byte for byte');
});

test('HTTP: a bill that is not ready is STATEMENT_NOT_READY after the bounded retries, waits doubling', async () => {
  const waits: number[] = [];
  const before = await rows();
  const today = new Date(clock.getTime() + 8 * 3600_000).toISOString().slice(0, 10);
  const error = await rejectsWith(store(waits).fetchAndStore({ kind: 'http', baseUrl: sandboxUrl, key: KEY, format: 'wechat', ...FAST, attemptsMax: 4, backoffBaseMs: 100, backoffMaxMs: 300 },
    { channel: 'sandbox', billDate: today, fileType: 'wechat:ALL' }), 'STATEMENT_NOT_READY', 4);
  assert.deepEqual(waits, [100, 200, 300], 'exponential back-off, capped');
  assert.match(error.message, /gave up after 4 attempts/);
  assert.equal(await rows(), before, 'nothing stored');
});

test('HTTP: a wrong key is FETCH_AUTH_FAILED at once; a refused connection is FETCH_FAILED after retries', async () => {
  const waits: number[] = [];
  await rejectsWith(store(waits).fetchAndStore({ kind: 'http', baseUrl: sandboxUrl, key: 'wrong', format: 'wechat', ...FAST },
    { channel: 'sandbox', billDate: D, fileType: 'wechat:ALL' }), 'FETCH_AUTH_FAILED', 1);
  assert.deepEqual(waits, [], 'credentials are not retried');
  const closed = await freePort();
  await rejectsWith(store().fetchAndStore({ kind: 'http', baseUrl: `http://127.0.0.1:${closed}`, key: KEY, format: 'wechat', ...FAST, attemptsMax: 2 },
    { channel: 'sandbox', billDate: D, fileType: 'wechat:ALL' }), 'FETCH_FAILED', 2);
});

test('timeouts: a server that never answers, or never finishes, is FETCH_TIMEOUT within the timeouts', async () => {
  const limits = { connectTimeoutMs: 300, transferTimeoutMs: 800, attemptsMax: 2, backoffBaseMs: 10, backoffMaxMs: 10 };
  const cases: Array<[string, StatementSource]> = [
    ['HTTP no answer', { kind: 'http', baseUrl: `http://127.0.0.1:${silentPort}`, key: KEY, format: 'wechat', ...limits }],
    ['HTTP endless body', { kind: 'http', baseUrl: `http://127.0.0.1:${tricklePort}`, key: KEY, format: 'wechat', ...limits }],
    ['FTP no greeting', { kind: 'ftp', host: '127.0.0.1', port: silentPort, user: 'bank', password: 'secret', remotePath: '/x', ...limits }],
    ['SFTP no handshake', { kind: 'sftp', host: '127.0.0.1', port: silentPort, user: 'bank', password: 'secret', remotePath: '/x', ...limits }],
  ];
  for (const [name, source] of cases) {
    const started = Date.now();
    const error = await rejectsWith(store().fetchAndStore(source, { channel: 'bank', billDate: D, fileType: 'bank:csv' }), 'FETCH_TIMEOUT', 2);
    const elapsed = Date.now() - started;
    // two attempts of at most the transfer timeout each, plus one back-off and slack
    assert.ok(elapsed < 2 * 800 + 10 + 1500, `${name}: gave up after ${elapsed} ms (${error.message})`);
  }
});

test('HTTP → store → parse: the batch reads the stored copy (WeChat text and the UnionPay zip), not the network', async () => {
  const s = store();
  for (const [format, kind] of [['wechat', 'wechat:ALL'], ['unionpay', 'unionpay:ZM']] as const) {
    const row = await s.fetchAndStore({ kind: 'http', baseUrl: sandboxUrl, key: KEY, format, ...FAST }, { channel: 'sandbox', billDate: D, fileType: kind });
    const records: ChannelRecord[] = [];
    const { totals } = await parseStatement(kind, s.open(row), { billDate: D, onBatch: (batch) => { records.push(...batch); } });
    assert.deepEqual(records.map((r) => `${r.kind}:${r.payOrderId}:${r.amountFen}`).sort(), ['payment:P-fetch-1:12345', 'payment:P-fetch-2:250'], format);
    assert.equal(totals.settledFen, 12595n);
  }
});

// --- FTP ----------------------------------------------------------------------------

test('FTP: download by path template, stored with sha256; missing file, wrong password, too large', async () => {
  const s = store();
  const source: StatementSource = { kind: 'ftp', host: '127.0.0.1', port: ftpPort, user: 'bank', password: 'secret', remotePath: '/bank_{yyyymmdd}.csv', ...FAST };
  const row = await s.fetchAndStore(source, { channel: 'icbc', billDate: D, fileType: 'bank:csv', account: '6222000011112222' });
  assert.equal(row.sha256, sha(bankCsv));
  assert.equal(row.size_bytes, BigInt(bankCsv.length));
  assert.equal(row.original_name, 'bank_20261121.csv');
  assert.equal(row.source_kind, 'ftp');
  assert.equal((await s.fetchAndStore(source, { channel: 'icbc', billDate: D, fileType: 'bank:csv', account: '6222000011112222' })).id, row.id);

  const waits: number[] = [];
  await rejectsWith(store(waits).fetchAndStore({ ...source, attemptsMax: 3 }, { channel: 'icbc', billDate: '2026-11-22', fileType: 'bank:csv' }), 'STATEMENT_NOT_READY', 3);
  assert.equal(waits.length, 2);
  const auth = await rejectsWith(s.fetchAndStore({ ...source, password: 'wrong' }, { channel: 'icbc', billDate: D, fileType: 'bank:csv' }), 'FETCH_AUTH_FAILED', 1);
  assert.match(auth.message, /530/);
  const before = await rows();
  await rejectsWith(s.fetchAndStore({ ...source, sizeMaxBytes: 10 }, { channel: 'icbc', billDate: D, fileType: 'bank:big' }), 'FETCH_TOO_LARGE', 1);
  assert.equal(await rows(), before);
  assert.deepEqual(readdirSync(path.join(s.dir, 'tmp')), [], 'no temp file left behind');
});

// --- SFTP ---------------------------------------------------------------------------

test('SFTP: download with password, stored with sha256; missing file, wrong password, wrong host key', async () => {
  const s = store();
  const source: StatementSource = { kind: 'sftp', host: '127.0.0.1', port: sftpPort, user: 'bank', password: 'secret', remotePath: '/bank_{yyyymmdd}.csv', ...FAST };
  const row = await s.fetchAndStore(source, { channel: 'ccb', billDate: D, fileType: 'bank:csv', account: '6227' });
  assert.equal(row.sha256, sha(bankCsv));
  assert.equal(row.size_bytes, BigInt(bankCsv.length));
  assert.equal(row.source_kind, 'sftp');
  assert.deepEqual(readFileSync(path.join(s.dir, row.stored_path)), bankCsv);

  await rejectsWith(s.fetchAndStore({ ...source, attemptsMax: 2 }, { channel: 'ccb', billDate: '2026-11-22', fileType: 'bank:csv' }), 'STATEMENT_NOT_READY', 2);
  await rejectsWith(s.fetchAndStore({ ...source, password: 'wrong' }, { channel: 'ccb', billDate: D, fileType: 'bank:csv' }), 'FETCH_AUTH_FAILED', 1);
  await rejectsWith(s.fetchAndStore({ ...source, hostKeySha256: 'AAAA' }, { channel: 'ccb', billDate: D, fileType: 'bank:csv' }), 'FETCH_AUTH_FAILED', 1);
});

// --- local --------------------------------------------------------------------------

test('local: an operator\'s file is stored; missing is STATEMENT_NOT_READY; a changed stored copy is refused on read', async () => {
  const s = store();
  const file = path.join(remoteDir, `bank_${D.replaceAll('-', '')}.csv`);
  const row = await s.storeLocal(file, { channel: 'boc', billDate: D, fileType: 'bank:csv', account: '1001' });
  assert.equal(row.sha256, sha(bankCsv));
  assert.equal(row.source_kind, 'local');
  assert.equal((await s.storeLocal(file, { channel: 'boc', billDate: D, fileType: 'bank:csv', account: '1001' })).id, row.id);
  await rejectsWith(s.storeLocal(path.join(remoteDir, 'nope.csv'), { channel: 'boc', billDate: D, fileType: 'bank:csv' }), 'STATEMENT_NOT_READY', 1);
  await assert.rejects(s.storeLocal(file, { channel: 'boc', billDate: '2026-13-01', fileType: 'bank:csv' }), (e: unknown) => e instanceof AppError && e.code === 'RECON_BILL_DATE_INVALID');

  writeFileSync(path.join(s.dir, row.stored_path), Buffer.concat([bankCsv.subarray(0, bankCsv.length - 3), Buffer.from('9\r\n')]));
  await assert.rejects(async () => {
    for await (const chunk of s.open(row)) void chunk;
  }, (e: unknown) => e instanceof AppError && e.code === 'STORED_FILE_CORRUPT');
});
