// Crash safety: `custos serve` runs as a child process under a load of concurrent
// transfer requests (singles, batches, linked chains, pending transfers and their
// posts/voids) and is killed with SIGKILL in the middle of it. After a restart on the
// same database: every acknowledged transfer is there, no request is half-applied
// (a linked chain, like any one request, is all there or not at all), the balances
// equal their transfers (verify, over HTTP and with `custos ledger verify --json`),
// the limited account never overdrew, and retrying everything — the unacknowledged
// requests and the acknowledged ones — applies nothing twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { PG_ONLY, createPgDatabase } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'custos.js');
const TOKEN = 'test-token-123456';
const MASTER_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
const CLIENTS = 48;
/**
 * Kill at a random moment (up to 150 ms) after this many transfers are acknowledged,
 * or after KILL_AFTER_MS, whichever comes first.
 */
const KILL_AFTER_ACKED = 1000;
const KILL_AFTER_MS = 3000;
const LIM = 'lim';
const SRC = 'src';
const FUNDING = 1_000_000_000n;

const F_PENDING = 2;
const F_POST = 4;
const F_VOID = 8;
const FLAG_BITS: Record<string, number> = { linked: 1, pending: 2, post_pending: 4, void_pending: 8 };

interface Body {
  id: string;
  debit_account_id?: string;
  credit_account_id?: string;
  amount?: string;
  ledger?: number;
  code?: number;
  flags?: string[];
  pending_id?: string;
}
interface Op {
  transfers: Body[];
  linked: boolean;
  acked: boolean;
}
interface Row {
  id: string;
  debit_account_id: string | null;
  credit_account_id: string | null;
  amount: bigint;
  flags: number;
  pending_id: string | null;
  failure: string | null;
}

function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)) };
}

const flagBits = (b: Body) => (b.flags ?? []).reduce((m, f) => m | FLAG_BITS[f], 0);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function childEnv(url: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.join(ROOT, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH ?? ''}`,
    DATABASE_URL: url,
    CUSTOS_ADMIN_TOKEN: TOKEN,
    CUSTOS_MASTER_KEY: MASTER_KEY,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    // no embedded sandbox channel (it would bind its own port) and nothing in ./data
    CUSTOS_SANDBOX: 'off',
    CUSTOS_DATA_DIR: 'memory',
    ...extra,
  };
  delete env.NODE_TEST_CONTEXT; // the child is a server, not a test file
  return env;
}

/** Every child still running: killed by the test's finally, or by the watchdog if the test hangs. */
const children = new Set<ChildProcess>();
const killAll = () => { for (const c of children) c.kill('SIGKILL'); };
process.once('exit', killAll);

interface Server {
  child: ChildProcess;
  base: string;
  exited: Promise<void>;
  output(): string;
}

async function startServer(url: string): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve'], { cwd: ROOT, env: childEnv(url, { PORT: String(port) }), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  const keep = (chunk: Buffer) => { out = (out + chunk.toString()).slice(-20_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const server = { child, base: `http://127.0.0.1:${port}`, exited, output: () => out };
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`custos serve exited early (${child.exitCode ?? child.signalCode}):\n${out}`);
      try {
        const res = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return server;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`custos serve did not become healthy in 20 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stopServer(server); // never leave a child behind
    throw error;
  }
}

async function stopServer(server: Server | null): Promise<void> {
  if (!server) return;
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  await server.exited;
}

function cliVerify(url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'ledger', 'verify', '--json'], { cwd: ROOT, env: childEnv(url), timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test('SIGKILL in the middle of a load loses no acknowledged transfer and half-applies nothing', { skip: PG_ONLY, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  // Should the test hang, kill the servers so that the test process can end (unref'd:
  // it only fires while something else keeps the process alive).
  const watchdog = setTimeout(killAll, 90_000);
  watchdog.unref();
  const created = await createPgDatabase();
  const direct = new pg.Client({ connectionString: created.url });
  let server: Server | null = null;
  try {
    server = await startServer(created.url);
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const post = async (base: string, route: string, body: unknown, timeoutMs = 15_000) => {
      const res = await fetch(`${base}${route}`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text();
      return { status: res.status, json: JSON.parse(text) };
    };
    const get = async (base: string, route: string) => {
      const res = await fetch(`${base}${route}`, { headers: { authorization: headers.authorization } });
      const text = await res.text();
      assert.equal(res.status, 200, `GET ${route}: ${text}`);
      return JSON.parse(text);
    };
    const transfers = async (base: string, list: Body[]): Promise<string[]> => {
      const { status, json } = await post(base, '/v1/ledger/transfers', { transfers: list });
      assert.equal(status, 200, JSON.stringify(json));
      assert.deepEqual(json.results.map((r: { id: string }) => r.id), list.map((b) => b.id));
      return json.results.map((r: { result: string }) => r.result);
    };

    // Accounts: a limited account with history that everyone spends from, a few with
    // history, a few plain ones, and the source that funds the limited one.
    const plain = Array.from({ length: 12 }, (_, i) => `c-${String(i).padStart(2, '0')}`);
    const withHistory = ['h-0', 'h-1', 'h-2', 'h-3'];
    const accounts = [
      { id: LIM, ledger: 1, code: 10, flags: ['debits_must_not_exceed_credits', 'history'] },
      { id: SRC, ledger: 1, code: 10 },
      ...withHistory.map((id) => ({ id, ledger: 1, code: 20, flags: ['history'] })),
      ...plain.map((id) => ({ id, ledger: 1, code: 20 })),
    ];
    const created1 = await post(server.base, '/v1/ledger/accounts', { accounts });
    assert.equal(created1.status, 200);
    assert.ok(created1.json.results.every((r: { result: string }) => r.result === 'ok'));
    const funding: Body = { id: 'funding', debit_account_id: SRC, credit_account_id: LIM, amount: FUNDING.toString(), ledger: 1, code: 1 };
    assert.deepEqual(await transfers(server.base, [funding]), ['ok']);

    // ---- the load, killed in the middle ----
    const ops: Op[] = [];
    const problems: string[] = [];
    let acked = 0;
    let stop = false;
    const others = [...withHistory, ...plain];
    const loadBase = server.base;
    const victim = server;
    const loadStarted = Date.now();

    const worker = async (w: number) => {
      const rnd = prng(1000 + w);
      let seq = 0;
      const id = (kind: string) => `w${w}-${kind}${seq++}`;
      const pair = (): [string, string] => {
        const a = rnd.next() < 0.6 ? LIM : others[rnd.int(0, others.length - 1)];
        let b = others[rnd.int(0, others.length - 1)];
        while (b === a) b = others[rnd.int(0, others.length - 1)];
        return rnd.next() < 0.8 ? [a, b] : [b, a];
      };
      const transfer = (kind = 't', extra: Partial<Body> = {}): Body => {
        const [dr, cr] = pair();
        return { id: id(kind), debit_account_id: dr, credit_account_id: cr, amount: String(rnd.int(1, 1000)), ledger: 1, code: 1, ...extra };
      };
      /** Sends one request; false when the server is gone (the request stays unacknowledged). */
      const send = async (op: Op): Promise<string[] | null> => {
        ops.push(op);
        let results: string[];
        try {
          const { status, json } = await post(loadBase, '/v1/ledger/transfers', { transfers: op.transfers }, 10_000);
          if (status !== 200) {
            problems.push(`${op.transfers[0].id}: HTTP ${status} ${JSON.stringify(json)}`);
            return null;
          }
          results = json.results.map((r: { result: string }) => r.result);
        } catch {
          return null; // connection refused or reset: the server is gone
        }
        op.acked = true;
        acked += op.transfers.length;
        if (!results.every((r) => r === 'ok')) problems.push(`${op.transfers.map((b) => b.id)}: ${results}`);
        return results;
      };
      while (!stop) {
        const r = rnd.next();
        if (r < 0.4) {
          if (!(await send({ transfers: [transfer()], linked: false, acked: false }))) break;
        } else if (r < 0.6) {
          const chain = Array.from({ length: rnd.int(2, 4) }, () => transfer('l'));
          chain.forEach((b, k) => { if (k < chain.length - 1) b.flags = ['linked']; });
          if (!(await send({ transfers: chain, linked: true, acked: false }))) break;
        } else if (r < 0.8) {
          const batch = Array.from({ length: rnd.int(3, 8) }, () => transfer('b'));
          if (!(await send({ transfers: batch, linked: false, acked: false }))) break;
        } else {
          const p = transfer('p', { flags: ['pending'] });
          if (!(await send({ transfers: [p], linked: false, acked: false }))) break;
          const how = rnd.int(0, 3);
          if (how === 3) continue; // the hold stays
          const resolve: Body = how === 2
            ? { id: id('v'), pending_id: p.id, flags: ['void_pending'] }
            : { id: id('q'), pending_id: p.id, flags: ['post_pending'], ...(how === 1 ? { amount: String(rnd.int(1, Number(p.amount))) } : {}) };
          if (!(await send({ transfers: [resolve], linked: false, acked: false }))) break;
        }
      }
    };
    const killer = (async () => {
      while (acked < KILL_AFTER_ACKED && Date.now() - loadStarted < KILL_AFTER_MS) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 150)));
      stop = true;
      victim.child.kill('SIGKILL');
      await victim.exited;
    })();
    await Promise.all([killer, ...Array.from({ length: CLIENTS }, (_, w) => worker(w))]);
    const killedAt = Date.now() - loadStarted;
    server = null;
    assert.deepEqual(problems, [], 'every answer before the kill was ok');
    const unacked = ops.filter((o) => !o.acked);
    assert.ok(acked > 0, 'the load got going before the kill');
    assert.ok(unacked.length > 0, 'the kill caught requests in flight');

    // ---- restart on the same database ----
    server = await startServer(created.url);
    await direct.connect();
    const readRows = async (): Promise<Map<string, Row>> => {
      const { rows } = await direct.query(
        'SELECT id, debit_account_id, credit_account_id, amount::text, flags, pending_id, failure FROM ledger_transfers');
      return new Map(rows.map((r) => [r.id, { ...r, amount: BigInt(r.amount) }]));
    };
    const sentBodies = new Map<string, Body>([[funding.id, funding]]);
    for (const op of ops) for (const b of op.transfers) sentBodies.set(b.id, b);
    const matches = (b: Body, row: Row) =>
      row.failure === null && flagBits(b) === row.flags && (b.pending_id ?? null) === row.pending_id &&
      (b.debit_account_id === undefined || b.debit_account_id === row.debit_account_id) &&
      (b.credit_account_id === undefined || b.credit_account_id === row.credit_account_id) &&
      (b.amount === undefined || BigInt(b.amount) === row.amount);

    /** Balances per account from the transfers applied (by the bodies the clients sent). */
    const expectedBalances = (applied: Iterable<string>) => {
      const bal = new Map(accounts.map((a) => [a.id, [0n, 0n, 0n, 0n]])); // dp, cp, dpe, cpe
      for (const id of applied) {
        const b = sentBodies.get(id) as Body;
        const bits = flagBits(b);
        if ((bits & (F_POST | F_VOID)) !== 0) {
          const p = sentBodies.get(b.pending_id as string) as Body;
          const pa = BigInt(p.amount as string);
          (bal.get(p.debit_account_id as string) as bigint[])[2] -= pa;
          (bal.get(p.credit_account_id as string) as bigint[])[3] -= pa;
          if ((bits & F_POST) !== 0) {
            const amount = BigInt(b.amount ?? (p.amount as string));
            (bal.get(p.debit_account_id as string) as bigint[])[0] += amount;
            (bal.get(p.credit_account_id as string) as bigint[])[1] += amount;
          }
        } else {
          const amount = BigInt(b.amount as string);
          const k = (bits & F_PENDING) !== 0 ? 2 : 0;
          (bal.get(b.debit_account_id as string) as bigint[])[k] += amount;
          (bal.get(b.credit_account_id as string) as bigint[])[k + 1] += amount;
        }
      }
      return bal;
    };
    const checkAccounts = async (applied: Iterable<string>, when: string) => {
      const expected = expectedBalances(applied);
      for (const a of accounts) {
        const got = await get((server as Server).base, `/v1/ledger/accounts/${a.id}`);
        assert.deepEqual([got.debits_posted, got.credits_posted, got.debits_pending, got.credits_pending],
          (expected.get(a.id) as bigint[]).map(String), `${when}: balances of ${a.id}`);
      }
      const lim = expected.get(LIM) as bigint[];
      assert.ok(lim[0] + lim[2] <= lim[1], `${when}: the limited account never overdraws`);
      const { rows: [over] } = await direct.query(`
        SELECT count(*)::int AS n FROM ledger_transfers
        WHERE failure IS NULL AND ((debit_account_id = $1 AND (dr_debits_posted IS NULL OR dr_debits_posted + dr_debits_pending > dr_credits_posted))
           OR (credit_account_id = $1 AND (cr_debits_posted IS NULL OR cr_debits_posted + cr_debits_pending > cr_credits_posted)))`, [LIM]);
      assert.equal(over.n, 0, `${when}: every balance-after of the limited account is within its limit`);
      const report = await get((server as Server).base, '/v1/ledger/verify');
      assert.equal(report.balanced, true, `${when}: ${JSON.stringify(report)}`);
      const cli = await cliVerify(created.url);
      assert.equal(cli.code, 0, `${when}: custos ledger verify --json exits 0: ${cli.stdout}${cli.stderr}`);
      const cliReport = JSON.parse(cli.stdout);
      assert.equal(cliReport.balanced, true, cli.stdout);
      return cliReport as { transfers_applied: string; transfers_failed: string };
    };

    const rows = await readRows();
    for (const row of rows.values()) {
      assert.equal(row.failure, null, `${row.id} did not fail`);
      assert.ok(sentBodies.has(row.id), `${row.id} is stored but was never sent`);
      assert.ok(matches(sentBodies.get(row.id) as Body, row), `${row.id} is stored as sent`);
    }
    let inFlightCommitted = 0;
    for (const op of ops) {
      const present = op.transfers.filter((b) => rows.has(b.id)).length;
      if (op.acked) assert.equal(present, op.transfers.length, `acknowledged ${op.transfers.map((b) => b.id)} survived the crash`);
      else assert.ok(present === 0 || present === op.transfers.length,
        `${op.linked ? 'linked chain' : 'request'} ${op.transfers.map((b) => b.id)} is all there or not at all (${present}/${op.transfers.length})`);
      if (!op.acked && present > 0) inFlightCommitted += 1;
    }
    const before = await checkAccounts(rows.keys(), 'after the restart');
    assert.equal(before.transfers_applied, String(rows.size));

    // ---- retry: the unacknowledged requests (ok or exists, as they were committed or
    // not) and then every acknowledged one again (all exists) ----
    for (let i = 0; i < unacked.length; i += 8) {
      await Promise.all(unacked.slice(i, i + 8).map(async (op) => {
        const results = await transfers((server as Server).base, op.transfers);
        const want = rows.has(op.transfers[0].id) ? 'exists' : 'ok';
        assert.deepEqual(results, op.transfers.map(() => want), `retry of ${op.transfers.map((b) => b.id)}`);
      }));
    }
    const ackedOps = ops.filter((o) => o.acked);
    for (let i = 0; i < ackedOps.length; i += 100) {
      const list = ackedOps.slice(i, i + 100).flatMap((o) => o.transfers);
      const results = await transfers(server.base, list);
      assert.deepEqual(results, list.map(() => 'exists'), 'a retried acknowledged transfer is exists');
    }
    const after = await readRows();
    assert.equal(after.size, sentBodies.size, 'every transfer sent is applied exactly once');
    for (const [id, body] of sentBodies) assert.ok(matches(body, after.get(id) as Row), `${id} is stored as sent`);
    const final = await checkAccounts(sentBodies.keys(), 'after the retries');
    assert.equal(final.transfers_applied, String(sentBodies.size));
    assert.equal(final.transfers_failed, '0');

    t.diagnostic(`killed after ${killedAt} ms with ${acked} transfers acknowledged in ${ops.length - unacked.length} requests; ` +
      `${unacked.length} requests in flight (${inFlightCommitted} of them committed); ${rows.size} transfers stored at restart, ` +
      `${after.size} after retries; total ${Date.now() - started} ms`);
  } finally {
    clearTimeout(watchdog);
    await stopServer(server).catch(() => {});
    killAll();
    await direct.end().catch(() => {});
    await created.drop();
  }
});
