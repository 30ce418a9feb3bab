// Interest (增值收益) received for a period and allocated by day-weighted balance (积数),
// on a real database with the ledger on a manual clock: a hand-computed quarter, a
// cross-check against ledger.balanceAt day by day, idempotency per (city, period), and
// refusals that write nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFund, seedRegister, deposit, withdraw, count, CITY, type FundStack } from './fund.use.support.ts';
import { fundAccountIds } from '../src/fund/accounts.ts';
import { cstDayStart } from '../src/platform/time.ts';

const ns = (isoCst: string) => BigInt(Date.parse(`${isoCst}+08:00`)) * 1_000_000n;
const at = (s: FundStack, isoCst: string) => s.clock.advanceSeconds(Number((ns(isoCst) - s.clock.nowNs()) / 1_000_000_000n));

test('a quarter: shares by 积数 (end-of-day balance × days), exact to the fen, zero balances get zero, posted once', async () => {
  const s = await startFund(ns('2026-09-20T10:00:00'));
  try {
    await seedRegister(s);
    await deposit(s, [['E1_u1101', 10_000n], ['E1_u1102', 20_000n]]);
    await deposit(s, [['E1_u1101', 1_000n]], 'interest'); // earlier interest earns too
    at(s, '2026-10-11T09:30:00'); // day 10 of 2026-Q4
    await deposit(s, [['E1_u1201', 30_000n]]);
    at(s, '2026-11-16T15:00:00'); // day 46
    await withdraw(s, 'E1_u1102', 5_000n);
    at(s, '2026-12-31T23:59:00'); // day 91, the last
    await deposit(s, [['E1_u1202', 50_000n]]);
    at(s, '2027-01-05T10:00:00');
    await deposit(s, [['E1_u2101', 99_000n]]); // after the period: must not count
    // 积数: u1101 11000×92 = 1 012 000; u1102 20000×46 + 15000×46 = 1 610 000;
    // u1201 30000×82 = 2 460 000; u1202 50000×1 = 50 000; total 5 132 000.
    // I = 12345: floors 2434 + 3872 + 5917 + 120 = 12343; the 2 fen go to the largest remainders (u1102, u1201).
    const r = await s.call('POST', '/v1/fund/interest', { city: CITY, period: '2026-Q4', amountFen: '12345' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.totalWeight, '5132000');
    assert.equal(r.body.households, 4);
    const d = await s.call('GET', `/v1/fund/interest/${r.body.id}`);
    assert.deepEqual(d.body.shares.map((x: any) => [x.unitId, x.weight, x.shareFen]), [
      ['E1_u1101', '1012000', '2434'], ['E1_u1102', '1610000', '3873'], ['E1_u1201', '2460000', '5918'],
      ['E1_u1202', '50000', '120'], ['E1_u2101', '0', '0'], ['E1_u2102', '0', '0'],
    ]);
    for (const [u, share] of [['E1_u1101', 1_000n + 2_434n], ['E1_u1102', 3_873n], ['E1_u1201', 5_918n], ['E1_u1202', 120n]] as const) {
      const a = await s.ledger.getAccount(fundAccountIds.interest(u));
      assert.equal(a.credits_posted - a.debits_posted, share, u);
    }
    const y = await s.ledger.getAccount(fundAccountIds.yield(CITY));
    assert.deepEqual([y.debits_posted, y.credits_posted], [12_345n, 12_345n], 'the yield account is fully allocated');
    const transfers = await count(s, 'ledger_transfers');
    const again = await s.call('POST', '/v1/fund/interest', { city: CITY, period: '2026-Q4', amountFen: '12345' });
    assert.equal(again.body.id, r.body.id, 'the same period again returns the same batch');
    assert.equal(await count(s, 'ledger_transfers'), transfers, 'and posts nothing');
    const other = await s.call('POST', '/v1/fund/interest', { city: CITY, period: '2026-Q4', amountFen: '12346' });
    assert.equal(other.status, 409);
    assert.equal(other.body.code, 'FUND_INTEREST_ALREADY_POSTED');
    assert.equal((await s.call('GET', `/v1/fund/interest?city=${CITY}`)).body.batches.length, 1);
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('积数 from the ledger history equals the day-by-day sum of ledger.balanceAt at each day end (random month)', async () => {
  const s = await startFund(ns('2026-02-25T08:00:00'));
  try {
    const units = await seedRegister(s);
    let seed = 20261122;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    await deposit(s, [[units[0].id, 7_777n], [units[3].id, 1_234n]]);
    const monthStart = ns('2026-03-01T00:00:00');
    const held = new Map<string, bigint>([[units[0].id, 7_777n], [units[3].id, 1_234n]]);
    for (let step = 0; step < 40; step += 1) {
      // move forward 0–20 hours, then a deposit, an interest credit or a withdrawal
      s.clock.advanceSeconds(rand(20) * 3600 + rand(3600));
      if (s.clock.nowNs() >= ns('2026-04-01T00:00:00')) break;
      const u = units[rand(units.length)].id;
      const kind = rand(3);
      if (kind === 2 && (held.get(u) ?? 0n) > 100n) {
        await withdraw(s, u, 100n);
        held.set(u, (held.get(u) as bigint) - 100n);
      } else {
        const amount = BigInt(1 + rand(50_000));
        await deposit(s, [[u, amount]], kind === 1 ? 'interest' : 'principal');
        if (kind !== 1) held.set(u, (held.get(u) ?? 0n) + amount);
      }
    }
    at(s, '2026-04-02T00:00:00');
    const weights = await s.interest.weights(CITY, monthStart, ns('2026-04-01T00:00:00'), 31);
    for (const w of weights) {
      let expected = 0n;
      for (let d = 0; d < 31; d += 1) {
        const next = d === 30 ? '2026-04-01' : `2026-03-${String(d + 2).padStart(2, '0')}`;
        const end = BigInt(cstDayStart(next).getTime()) * 1_000_000n - 1n; // the last instant of day d
        for (const id of [fundAccountIds.principal(w.unitId), fundAccountIds.interest(w.unitId)]) {
          const exists = await s.ledger.getAccount(id).then(() => true, () => false);
          if (!exists) continue;
          const b = await s.ledger.balanceAt(id, end);
          expected += b.credits_posted - b.debits_posted;
        }
      }
      assert.equal(w.weight, expected, w.unitId);
    }
    assert.ok(weights.some((w) => w.weight > 0n));
  } finally {
    await s.close();
  }
});

test('refusals write nothing: a period not yet over, a bad period, a city without units or without balances', async () => {
  const s = await startFund(ns('2026-05-10T10:00:00'));
  try {
    await seedRegister(s);
    const transfers = await count(s, 'ledger_transfers');
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ city: CITY, period: '2026-Q2', amountFen: '100' }, 400, 'FUND_PERIOD_NOT_ENDED'],
      [{ city: CITY, period: '2026-Q7', amountFen: '100' }, 400, 'FUND_INVALID_PERIOD'],
      [{ city: CITY, period: '2026-Q1', amountFen: '-5' }, 400, 'FUND_INVALID_REQUEST'],
      [{ city: CITY, period: '2026-Q1', amountFen: 1.5 }, 400, 'FUND_INVALID_REQUEST'],
      [{ city: 'NOWHERE', period: '2026-Q1', amountFen: '100' }, 400, 'FUND_NO_HOUSEHOLDS'],
      [{ city: CITY, period: '2026-Q1', amountFen: '100' }, 409, 'FUND_INTEREST_NO_BALANCE'],
      [{ period: '2026-Q1', amountFen: '100' }, 400, 'FUND_INVALID_REQUEST'],
    ];
    for (const [body, status, code] of cases) {
      const r = await s.call('POST', '/v1/fund/interest', body);
      assert.equal(r.status, status, `${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, code);
    }
    assert.equal(await count(s, 'fund_interest_batches'), 0);
    assert.equal(await count(s, 'ledger_transfers'), transfers);
  } finally {
    await s.close();
  }
});

test('CLI: custos fund interest posts a period once, with one clear line on errors', async () => {
  const { spawnSync } = await import('node:child_process');
  const { rmSync } = await import('node:fs');
  const path = (await import('node:path')).default;
  const { cliStore } = await import('./helpers.ts');
  const { openDatabase, sql, transact } = await import('../src/platform/db.ts');
  const { migrate } = await import('../src/platform/migrate.ts');
  const { createLedger } = await import('../src/ledger/index.ts');
  const { ManualClock } = await import('../src/platform/clock.ts');
  const { ensureFundAccounts, ensureHouseholdAccounts } = await import('../src/fund/accounts.ts');
  const root = path.resolve(import.meta.dirname, '..');
  const custos = (args: string[], env: Record<string, string>) => {
    const r = spawnSync(process.execPath, [path.join(root, 'bin/custos.js'), ...args], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', ...env }, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const { dir, pgUrl, drop } = await cliStore('custos-fund-cli-');
  const env: Record<string, string> = pgUrl ? { DATABASE_URL: pgUrl } : { CUSTOS_DATA_DIR: dir };
  try {
    const db = await openDatabase({ databaseUrl: env.DATABASE_URL ?? null, dataDir: env.CUSTOS_DATA_DIR ?? null });
    try {
      await migrate(db);
      await sql`INSERT INTO register_estates (id, city, name, address) VALUES ('E9', 'C9', '小区九', '路 9 号')`.execute(db.kysely);
      await sql`INSERT INTO register_buildings (id, estate_id, name, building_type, floors) VALUES ('E9_B1', 'E9', '1', 'multi_storey', 6)`.execute(db.kysely);
      await sql`INSERT INTO register_units (id, estate_id, building_id, stair, room_no, area_m2e2, use, sold) VALUES
        ('E9_u1', 'E9', 'E9_B1', '1', '101', 9000, 'residential', true), ('E9_u2', 'E9', 'E9_B1', '1', '102', 9000, 'residential', true)`.execute(db.kysely);
      const ledger = createLedger({ db, clock: new ManualClock(ns('2025-12-20T10:00:00')) });
      await transact(db, async (tx) => {
        await ensureFundAccounts(tx, ledger, 'C9');
        await ensureHouseholdAccounts(tx, ledger, ['E9_u1', 'E9_u2']);
        const t = (id: string, unit: string, amount: bigint) => ({ id, debit_account_id: 'fund:C9:bank', credit_account_id: `hh:${unit}:principal`, amount, ledger: 1, code: 3502, flags: 0, pending_id: null, timeout_s: 0, ref: null, metadata: null });
        const r = await ledger.applyInTransaction(tx, [t('cli-dep-1', 'E9_u1', 30_000n), t('cli-dep-2', 'E9_u2', 10_000n)]);
        assert.deepEqual(r, ['ok', 'ok']);
      });
    } finally {
      await db.close();
    }
    const ok = custos(['fund', 'interest', '--city', 'C9', '--period', '2026-Q1', '--amount-yuan', '10.01', '--json'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const batch = JSON.parse(ok.stdout);
    assert.deepEqual([batch.city, batch.period, batch.amountFen, batch.households], ['C9', '2026-Q1', '1001', 2]);
    const again = custos(['fund', 'interest', '--city', 'C9', '--period', '2026-Q1', '--amount-yuan', '10.01'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(batch.id));
    const clash = custos(['fund', 'interest', '--city', 'C9', '--period', '2026-Q1', '--amount-yuan', '10.02'], env);
    assert.equal(clash.code, 2);
    assert.equal(clash.stderr.trim().split('\n').length, 1);
    assert.match(clash.stderr, /already posted/);
    const badAmount = custos(['fund', 'interest', '--city', 'C9', '--period', '2026-Q1', '--amount-yuan', '1.234'], env);
    assert.equal(badAmount.code, 2);
    assert.match(badAmount.stderr, /amount-yuan/);
    const missing = custos(['fund', 'interest', '--city', 'C9'], env);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    const verify = custos(['ledger', 'verify', '--json'], env);
    assert.equal(verify.code, 0, verify.stdout);
    // 30000:10000 over the whole quarter → 750.75 : 250.25 fen → 751 / 250 (largest remainder, tie to the smaller id)
    const db2 = await openDatabase({ databaseUrl: env.DATABASE_URL ?? null, dataDir: env.CUSTOS_DATA_DIR ?? null });
    try {
      const r = await sql<{ unit_id: string; share_fen: bigint }>`SELECT unit_id, share_fen FROM fund_interest_shares ORDER BY unit_id`.execute(db2.kysely);
      assert.deepEqual(r.rows.map((x) => [x.unit_id, x.share_fen]), [['E9_u1', 751n], ['E9_u2', 250n]]);
    } finally {
      await db2.close();
    }
  } finally {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  }
});
