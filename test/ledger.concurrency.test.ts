// 64 clients hammering one hot account through two API nodes (two platforms, two
// connection pools, one PostgreSQL database) over real HTTP. The hot account may not
// spend more than it has (debits_must_not_exceed_credits) and keeps history, and the
// load spends more than it ever receives, so the limit is reached and transfers fail.
// The load mixes single transfers, batches, linked chains, pending transfers with
// posts and voids (some raced against each other), the same id sent concurrently
// with the same body and with different bodies. Afterwards every answer is checked
// against the stored rows, the hot account against its transfers (and its history,
// entry by entry), and the whole ledger with verify().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { PG_ONLY, createPgDatabase } from './helpers.ts';
import { createPlatform, type Platform } from '../src/server.ts';
import { loadConfig } from '../src/platform/config.ts';
import { openDatabase, type Database } from '../src/platform/db.ts';
import { systemClock } from '../src/platform/clock.ts';

const TOKEN = 'test-token-123456';
const MASTER_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
const CLIENTS = 64;
const TASKS = 2000;
const QUIET_CONTESTS = 64;
const COUNTERPARTIES = 48;
const HOT = 'hot';
const FUND = 'fund';
const FUNDING = 20_000n;

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

interface Row {
  id: string;
  ts: bigint;
  debit_account_id: string | null;
  credit_account_id: string | null;
  amount: bigint;
  flags: number;
  pending_id: string | null;
  status: number | null;
  failure: string | null;
  dr: bigint[] | null;
  cr: bigint[] | null;
}

/** Deterministic PRNG (mulberry32) so a failing run's workload can be reproduced. */
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
const SUCCESS = new Set(['ok', 'exists']);
const NOT_DECISIVE = new Set(['exists', 'exists_with_different_fields', 'id_already_failed']);

test('64 clients hammering one hot account through two API nodes', { skip: PG_ONLY, timeout: 180_000 }, async (t) => {
  const started = Date.now();
  const created = await createPgDatabase();
  const config = loadConfig({
    DATABASE_URL: created.url, CUSTOS_ADMIN_TOKEN: TOKEN, CUSTOS_MASTER_KEY: MASTER_KEY, LOG_LEVEL: 'silent', CUSTOS_DATA_DIR: 'memory',
  });
  const dbs: Database[] = [];
  const platforms: Platform[] = [];
  const direct = new pg.Client({ connectionString: created.url });
  try {
    for (let i = 0; i < 2; i += 1) {
      const db = await openDatabase({ databaseUrl: created.url });
      dbs.push(db);
      platforms.push(await createPlatform(config, { clock: systemClock, db })); // its own pool: a second API node
    }
    const bases: string[] = [];
    for (const p of platforms) {
      await p.app.listen({ port: 0, host: '127.0.0.1' });
      bases.push(`http://127.0.0.1:${(p.app.server.address() as AddressInfo).port}`);
    }
    await direct.connect();
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

    // Every transfer sent and what it was answered, in send order (one id may be sent many times).
    const sent: Array<{ body: Body; result: string }> = [];
    const chains: string[][] = [];
    const resolveRaces: Array<{ pendingId: string; results: string[] }> = [];
    const sameBodyGroups: string[] = [];
    const differentBodyGroups: string[] = [];

    async function send(node: number, transfers: Body[]): Promise<string[]> {
      const res = await fetch(`${bases[node]}/v1/ledger/transfers`, { method: 'POST', headers, body: JSON.stringify({ transfers }) });
      const text = await res.text();
      assert.equal(res.status, 200, `node ${node} answered ${res.status}: ${text}`);
      const { results } = JSON.parse(text) as { results: Array<{ id: string; result: string }> };
      assert.deepEqual(results.map((r) => r.id), transfers.map((b) => b.id));
      results.forEach((r, i) => sent.push({ body: transfers[i], result: r.result }));
      return results.map((r) => r.result);
    }
    async function get(node: number, path: string) {
      const res = await fetch(`${bases[node]}${path}`, { headers: { authorization: headers.authorization } });
      const text = await res.text();
      assert.equal(res.status, 200, `GET ${path}: ${text}`);
      return JSON.parse(text);
    }

    // Accounts: created half through each node, all at once.
    const cps = Array.from({ length: COUNTERPARTIES }, (_, i) => `cp-${String(i).padStart(3, '0')}`);
    const accountBodies = [
      { id: HOT, ledger: 1, code: 10, flags: ['debits_must_not_exceed_credits', 'history'] },
      { id: FUND, ledger: 1, code: 10 },
      ...cps.map((id) => ({ id, ledger: 1, code: 20 })),
    ];
    const accountResults = await Promise.all(accountBodies.map(async (a, i) => {
      const res = await fetch(`${bases[i % 2]}/v1/ledger/accounts`, { method: 'POST', headers, body: JSON.stringify({ accounts: [a] }) });
      assert.equal(res.status, 200);
      return ((await res.json()) as { results: Array<{ result: string }> }).results[0].result;
    }));
    assert.deepEqual(accountResults, accountBodies.map(() => 'ok'));
    assert.deepEqual(await send(0, [{ id: 'funding', debit_account_id: FUND, credit_account_id: HOT, amount: FUNDING.toString(), ledger: 1, code: 1 }]), ['ok']);

    // The workload: TASKS tasks, each one HTTP request or a few concurrent ones.
    const rnd = prng(20240611);
    const cp = () => cps[rnd.int(0, cps.length - 1)];
    let seq = 0;
    const nextId = (kind: string) => `${kind}-${seq++}`;
    const spend = (id = nextId('s')): Body => ({ id, debit_account_id: HOT, credit_account_id: cp(), amount: String(rnd.int(1, 60)), ledger: 1, code: 1 });
    const deposit = (id = nextId('d')): Body => ({ id, debit_account_id: cp(), credit_account_id: HOT, amount: String(rnd.int(1, 40)), ledger: 1, code: 2 });
    const aside = (id = nextId('x')): Body => {
      const a = cp();
      let b = cp();
      while (b === a) b = cp();
      return { id, debit_account_id: a, credit_account_id: b, amount: String(rnd.int(1, 500)), ledger: 1, code: 3 };
    };

    type Task = (node: number) => Promise<void>;
    const tasks: Task[] = [];
    for (let i = 0; i < TASKS; i += 1) {
      const r = rnd.next();
      if (r < 0.35) {
        const b = spend();
        tasks.push(async (node) => { await send(node, [b]); });
      } else if (r < 0.43) {
        const b = deposit();
        tasks.push(async (node) => { await send(node, [b]); });
      } else if (r < 0.50) {
        // a batch of independent transfers in one request
        const batch = Array.from({ length: rnd.int(3, 6) }, () => (rnd.next() < 0.6 ? spend() : rnd.next() < 0.5 ? deposit() : aside()));
        tasks.push(async (node) => { await send(node, batch); });
      } else if (r < 0.65) {
        // a linked chain: spends with a deposit, all or nothing
        const chain = Array.from({ length: rnd.int(2, 4) }, (_, k) => (k === 1 ? deposit() : spend()));
        chain.forEach((b, k) => { if (k < chain.length - 1) b.flags = ['linked']; });
        chains.push(chain.map((b) => b.id));
        tasks.push(async (node) => { await send(node, chain); });
      } else if (r < 0.80) {
        // pending spend, then resolved through the other node: post (full or partial), void,
        // the same post sent to both nodes at once, a post raced against a void, or left pending
        const p = { ...spend(nextId('p')), flags: ['pending'] };
        const amount = BigInt(p.amount as string);
        const how = rnd.int(0, 5);
        const postId = nextId('post');
        const voidId = nextId('void');
        const partial = String(rnd.int(1, Number(amount)));
        tasks.push(async (node) => {
          const [res] = await send(node, [p]);
          if (res !== 'ok') return;
          const other = 1 - node;
          if (how === 0) {
            assert.deepEqual(await send(other, [{ id: postId, pending_id: p.id, flags: ['post_pending'] }]), ['ok']);
          } else if (how === 1) {
            assert.deepEqual(await send(other, [{ id: postId, pending_id: p.id, flags: ['post_pending'], amount: partial }]), ['ok']);
          } else if (how === 2) {
            assert.deepEqual(await send(other, [{ id: voidId, pending_id: p.id, flags: ['void_pending'] }]), ['ok']);
          } else if (how === 3) {
            const post: Body = { id: postId, pending_id: p.id, flags: ['post_pending'], amount: partial };
            sameBodyGroups.push(postId);
            await Promise.all([0, 1, 2].map((k) => send((other + k) % 2, [post])));
          } else if (how === 4) {
            const results = await Promise.all([
              send(other, [{ id: postId, pending_id: p.id, flags: ['post_pending'] }]),
              send(node, [{ id: voidId, pending_id: p.id, flags: ['void_pending'] }]),
            ]);
            resolveRaces.push({ pendingId: p.id, results: results.map((x) => x[0]) });
          } // how === 5: the hold stays
        });
      } else if (r < 0.90) {
        // the same id with the same body from four clients at once, across both nodes
        const b = rnd.next() < 0.5 ? deposit(nextId('same')) : spend(nextId('same'));
        sameBodyGroups.push(b.id);
        tasks.push(async (node) => { await Promise.all([0, 1, 2, 3].map((k) => send((node + k) % 2, [b]))); });
      } else {
        // the same id with three different bodies at once (different accounts, so no
        // common lock: the loser learns of the winner through the primary key)
        const id = nextId('diff');
        const bodies = [deposit(id), aside(id), spend(id)];
        differentBodyGroups.push(id);
        tasks.push(async (node) => { await Promise.all(bodies.map((b, k) => send((node + k) % 2, [b]))); });
      }
    }

    // A quiet phase after the load: contests over ids whose bodies share no account, so
    // no batch holds a common lock and the two nodes race on the primary key itself.
    // Each contest has six accounts of its own (created in one batch).
    const quietAccounts = Array.from({ length: QUIET_CONTESTS * 6 }, (_, i) => `q-${String(i).padStart(3, '0')}`);
    const quietCreated = await fetch(`${bases[1]}/v1/ledger/accounts`, {
      method: 'POST', headers, body: JSON.stringify({ accounts: quietAccounts.map((id) => ({ id, ledger: 1, code: 30 })) }),
    });
    assert.equal(quietCreated.status, 200);
    assert.ok(((await quietCreated.json()) as { results: Array<{ result: string }> }).results.every((r) => r.result === 'ok'));
    const quietTasks: Task[] = [];
    for (let i = 0; i < QUIET_CONTESTS; i += 1) {
      const id = nextId('quiet');
      const bodies = [0, 1, 2].map((k): Body => ({
        id, debit_account_id: quietAccounts[i * 6 + 2 * k], credit_account_id: quietAccounts[i * 6 + 2 * k + 1],
        amount: String(rnd.int(1, 500)), ledger: 1, code: 3,
      }));
      differentBodyGroups.push(id);
      quietTasks.push(async (node) => { await Promise.all(bodies.map((b, k) => send((node + k) % 2, [b]))); });
    }

    const runClients = async (list: Task[]) => {
      let next = 0;
      await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
        let n = client;
        while (next < list.length) {
          const task = list[next++];
          await task(n++ % 2); // each client alternates between the two nodes
        }
      }));
    };
    const loadStarted = Date.now();
    await runClients(tasks);
    await runClients(quietTasks);
    const loadMs = Date.now() - loadStarted;

    // ---- the stored rows ----
    const { rows: raw } = await direct.query(`
      SELECT id, ts::text, debit_account_id, credit_account_id, amount::text, flags, pending_id, status, failure,
        ARRAY[dr_debits_posted, dr_credits_posted, dr_debits_pending, dr_credits_pending]::text[] AS dr,
        ARRAY[cr_debits_posted, cr_credits_posted, cr_debits_pending, cr_credits_pending]::text[] AS cr
      FROM ledger_transfers ORDER BY ts`);
    const big = (a: Array<string | null>) => (a[0] === null ? null : a.map((v) => BigInt(v as string)));
    const rows: Row[] = raw.map((r) => ({ ...r, ts: BigInt(r.ts), amount: BigInt(r.amount), dr: big(r.dr), cr: big(r.cr) }));
    const byId = new Map(rows.map((r) => [r.id, r]));
    assert.equal(byId.size, rows.length, 'one row per id');
    assert.equal(new Set(rows.map((r) => r.ts)).size, rows.length, 'timestamps are unique across both nodes');

    // ---- every answer against the stored rows ----
    const answers = new Map<string, Array<{ body: Body; result: string }>>();
    for (const s of sent) {
      const list = answers.get(s.body.id) ?? [];
      list.push(s);
      answers.set(s.body.id, list);
    }
    /** Does the stored row carry this body's fields? (post/void: optional fields may be left out) */
    const matches = (b: Body, row: Row) => {
      if (flagBits(b) !== row.flags || (b.pending_id ?? null) !== row.pending_id) return false;
      if (b.debit_account_id !== undefined && b.debit_account_id !== row.debit_account_id) return false;
      if (b.credit_account_id !== undefined && b.credit_account_id !== row.credit_account_id) return false;
      if (b.amount !== undefined && BigInt(b.amount) !== row.amount) return false;
      return true;
    };
    const tally = new Map<string, number>();
    for (const [id, list] of answers) {
      const row = byId.get(id);
      const applied = row !== undefined && row.failure === null;
      const decisive = list.filter((a) => !NOT_DECISIVE.has(a.result));
      assert.equal(decisive.length, 1, `${id}: exactly one request decided it: ${JSON.stringify(list.map((a) => a.result))}`);
      assert.ok(list.filter((a) => a.result === 'ok').length <= 1, `${id} applied at most once`);
      for (const a of list) {
        tally.set(a.result, (tally.get(a.result) ?? 0) + 1);
        const what = `${id} answered ${a.result}, stored ${JSON.stringify(row ?? null, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`;
        if (a.result === 'ok' || a.result === 'exists') {
          assert.ok(applied && matches(a.body, row), what);
        } else if (a.result === 'exists_with_different_fields') {
          assert.ok(applied && !matches(a.body, row), what);
        } else if (a.result === 'id_already_failed') {
          assert.ok(row !== undefined && row.failure !== null, what);
        } else {
          assert.ok(row === undefined || row.failure !== null, what); // a failure is never applied
        }
      }
      if (applied) assert.equal(decisive[0].result, 'ok', `${id} is applied, so the deciding answer was ok`);
    }
    for (const row of rows) assert.ok(answers.has(row.id), `${row.id} is stored but was never sent`);

    // The contested ids.
    for (const id of sameBodyGroups) {
      const results = (answers.get(id) ?? []).map((a) => a.result).sort();
      assert.ok(results.length >= 3, `${id} was sent by several clients`);
      const first = results.find((r) => !NOT_DECISIVE.has(r)) as string;
      const rest = first === 'ok' ? 'exists' : 'id_already_failed';
      assert.deepEqual(results.filter((r) => r !== first), Array(results.length - 1).fill(rest), `${id}: ${results}`);
    }
    for (const id of differentBodyGroups) {
      const list = answers.get(id) ?? [];
      assert.equal(list.length, 3);
      const winner = list.find((a) => !NOT_DECISIVE.has(a.result)) as { body: Body; result: string };
      const rest = winner.result === 'ok' ? 'exists_with_different_fields' : 'id_already_failed';
      for (const a of list) if (a !== winner) assert.equal(a.result, rest, `${id}: ${list.map((x) => x.result)}`);
      const row = byId.get(id) as Row;
      if (winner.result === 'ok') assert.ok(matches(winner.body, row), `${id} stored as the winner's body`);
    }
    for (const race of resolveRaces) {
      assert.deepEqual([...race.results].sort(), ['ok', 'pending_already_resolved'], `${race.pendingId}: post vs void`);
    }
    for (const chain of chains) {
      const results = chain.map((id) => (answers.get(id) as Array<{ result: string }>)[0].result);
      const appliedCount = chain.filter((id) => byId.get(id)?.failure === null).length;
      if (results.every((r) => r === 'ok')) assert.equal(appliedCount, chain.length, `chain ${chain} fully applied`);
      else {
        assert.equal(appliedCount, 0, `chain ${chain} (${results}) not applied at all`);
        assert.equal(results.filter((r) => r !== 'linked_event_failed').length, 1, `chain ${chain}: one cause, ${results}`);
      }
    }

    // ---- the hot account: balances = its applied transfers, as the clients saw them ----
    const model = { debits_posted: 0n, credits_posted: 0n, debits_pending: 0n, credits_pending: 0n };
    const pendingBodies = new Map<string, Body>();
    for (const s of sent) if ((flagBits(s.body) & F_PENDING) !== 0) pendingBodies.set(s.body.id, s.body);
    for (const s of sent) {
      if (s.result !== 'ok') continue;
      const b = s.body;
      const bits = flagBits(b);
      if ((bits & (F_POST | F_VOID)) !== 0) {
        const p = pendingBodies.get(b.pending_id as string) as Body;
        if (p.debit_account_id !== HOT) continue;
        model.debits_pending -= BigInt(p.amount as string);
        if ((bits & F_POST) !== 0) model.debits_posted += BigInt(b.amount ?? (p.amount as string));
      } else {
        const amount = BigInt(b.amount as string);
        const pending = (bits & F_PENDING) !== 0;
        if (b.debit_account_id === HOT) model[pending ? 'debits_pending' : 'debits_posted'] += amount;
        if (b.credit_account_id === HOT) model[pending ? 'credits_pending' : 'credits_posted'] += amount;
      }
    }
    const hot = await get(1, `/v1/ledger/accounts/${HOT}`);
    const stored = {
      debits_posted: BigInt(hot.debits_posted), credits_posted: BigInt(hot.credits_posted),
      debits_pending: BigInt(hot.debits_pending), credits_pending: BigInt(hot.credits_pending),
    };
    assert.deepEqual(stored, model, 'hot balances equal the sum of the transfers answered ok');
    assert.ok(stored.debits_posted + stored.debits_pending <= stored.credits_posted, 'the limit holds at the end');

    // ---- the hot account's history: every entry's balance-after, replayed in ts order ----
    const hotRows = rows.filter((r) => r.failure === null && (r.debit_account_id === HOT || r.credit_account_id === HOT));
    const run = [0n, 0n, 0n, 0n]; // debits_posted, credits_posted, debits_pending, credits_pending
    for (const r of hotRows) {
      const debit = r.debit_account_id === HOT;
      if ((r.flags & (F_POST | F_VOID)) !== 0) {
        const p = byId.get(r.pending_id as string) as Row;
        run[debit ? 2 : 3] -= p.amount;
        if ((r.flags & F_POST) !== 0) run[debit ? 0 : 1] += r.amount;
      } else {
        run[((r.flags & F_PENDING) !== 0 ? 2 : 0) + (debit ? 0 : 1)] += r.amount;
      }
      const after = debit ? r.dr : r.cr;
      assert.ok(after !== null, `${r.id} carries the hot account's balance-after`);
      assert.deepEqual(after, run, `${r.id}: balance-after follows from the previous entry`);
      assert.ok(after[0] + after[2] <= after[1], `${r.id}: debits_posted + debits_pending <= credits_posted after it`);
    }
    assert.deepEqual(run, [stored.debits_posted, stored.credits_posted, stored.debits_pending, stored.credits_pending]);

    // The same history through the API, paged.
    const viaApi: string[] = [];
    for (let cursor: string | null = '0'; cursor !== null;) {
      const page: { entries: Array<{ transfer_id: string; balance_after: Record<string, string> }>; next_cursor: string | null } =
        await get(viaApi.length % 2, `/v1/ledger/accounts/${HOT}/entries?limit=500&cursor=${cursor}`);
      for (const e of page.entries) {
        const r = byId.get(e.transfer_id) as Row;
        const after = (r.debit_account_id === HOT ? r.dr : r.cr) as bigint[];
        assert.equal(e.balance_after.debits_posted, after[0].toString());
        viaApi.push(e.transfer_id);
      }
      cursor = page.next_cursor;
    }
    assert.deepEqual(viaApi, hotRows.map((r) => r.id), 'the entries API lists the hot account history in ts order');

    // ---- the whole ledger ----
    for (const p of platforms) {
      const report = await p.ledger.verify();
      assert.equal(report.balanced, true, JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    }
    assert.equal((await get(0, '/v1/ledger/verify')).balanced, true);

    // The load did what it is for: the limit was reached, and both paths of every race ran.
    const applied = rows.filter((r) => r.failure === null).length;
    assert.ok((tally.get('exceeds_credits') ?? 0) > 0, 'some transfers hit the limit');
    assert.ok((tally.get('ok') ?? 0) > 1000, 'most transfers went through');
    assert.ok((tally.get('exists') ?? 0) > 0 && (tally.get('exists_with_different_fields') ?? 0) > 0);
    assert.ok(chains.some((c) => byId.get(c[0])?.failure === null) && chains.some((c) => byId.get(c[0])?.failure !== null),
      'some chains applied and some failed');
    t.diagnostic(`${sent.length} transfers sent in ${loadMs} ms by ${CLIENTS} clients; ${applied} applied, ` +
      `${rows.length - applied} failed ids; results ${JSON.stringify(Object.fromEntries(tally))}; ` +
      `hot ${JSON.stringify(hot, ['debits_posted', 'credits_posted', 'debits_pending', 'credits_pending', 'version'])}; ` +
      `total ${Date.now() - started} ms`);
  } finally {
    await direct.end().catch(() => {});
    for (const p of platforms) await p.close().catch(() => {});
    for (const db of dbs) await db.close().catch(() => {});
    await created.drop();
  }
});
