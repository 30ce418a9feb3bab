// A small fund stack for the use/interest tests: a real database (PGlite or PostgreSQL),
// the ledger on a manual clock, the use and interest services, and an HTTP app with
// A's fundGuard and our routes (driven with inject: no port). The register is seeded
// with SQL (estates, buildings, units) and households get money by ledger postings
// Dr fund:<city>:bank / Cr hh:<unit>:principal, as the contract's counter deposit does.
import type { FastifyInstance } from 'fastify';
import { openTestDb, type TestDb } from './helpers.ts';
import { ManualClock } from '../src/platform/clock.ts';
import { createMetrics } from '../src/platform/metrics.ts';
import { buildApp } from '../src/platform/http/app.ts';
import { sql, transact } from '../src/platform/db.ts';
import { createLedger, type Ledger, type TransferInput } from '../src/ledger/index.ts';
import { LEDGER_CNY } from '../src/payment/types.ts';
import { ensureFundAccounts, ensureHouseholdAccounts, fundAccountIds } from '../src/fund/accounts.ts';
import { fundGuard, issueToken } from '../src/fund/access.ts';
import { createPii, type Pii } from '../src/fund/register/pii.ts';
import { createFundUse, createFundInterest, fundUseRoutes, type FundUse, type FundInterest } from '../src/fund/use/index.ts';

export const ADMIN = 'fund-test-admin-token-0123456789';
export const CITY = 'C1';
export const MASTER_KEY = Buffer.alloc(32, 11);

export interface FundStack {
  t: TestDb;
  clock: ManualClock;
  ledger: Ledger;
  use: FundUse;
  interest: FundInterest;
  pii: Pii;
  app: FastifyInstance;
  /** inject with a bearer token (default: the center's admin token). */
  call(method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startFund(clockStartNs?: bigint, options: { ownerCount?: 'per_unit' | 'register'; accountBlocked?: (ledgerAccountId: string) => Promise<boolean> } = {}): Promise<FundStack> {
  const t = await openTestDb({ poolSize: 8 });
  const clock = new ManualClock(clockStartNs);
  const ledger = createLedger({ db: t.db, clock });
  const pii = createPii(MASTER_KEY);
  const use = createFundUse({ db: t.db, ledger, ownerCount: options.ownerCount, accountBlocked: options.accountBlocked, pii, clock });
  const interest = createFundInterest({ db: t.db, ledger, clock });
  const guard = fundGuard({ db: t.db, adminToken: ADMIN, clock });
  const app = await buildApp({ db: t.db, metrics: createMetrics(), logLevel: 'silent', modules: [fundUseRoutes({ use, interest, guard })] });
  await app.ready();
  return {
    t, clock, ledger, use, interest, pii, app,
    async call(method, url, body, token = ADMIN) {
      const r = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
      return { status: r.statusCode, body: r.body === '' ? null : JSON.parse(r.body) };
    },
    async close() {
      await app.close();
      await t.close();
    },
  };
}

export interface UnitSpec { id: string; building: string; stair: string; room: string; areaM2e2: bigint }

/** Estate E1 in CITY: building B1 (stairs 1 and 2) and B2; unit ids u_<b><stair><room>. */
export async function seedRegister(s: FundStack, estateId = 'E1', units?: UnitSpec[], city = CITY): Promise<UnitSpec[]> {
  const list = units ?? [
    { id: `${estateId}_u1101`, building: `${estateId}_B1`, stair: '1', room: '101', areaM2e2: 8_950n },
    { id: `${estateId}_u1102`, building: `${estateId}_B1`, stair: '1', room: '102', areaM2e2: 12_000n },
    { id: `${estateId}_u1201`, building: `${estateId}_B1`, stair: '2', room: '101', areaM2e2: 8_950n },
    { id: `${estateId}_u1202`, building: `${estateId}_B1`, stair: '2', room: '102', areaM2e2: 10_030n },
    { id: `${estateId}_u2101`, building: `${estateId}_B2`, stair: '1', room: '101', areaM2e2: 14_425n },
    { id: `${estateId}_u2102`, building: `${estateId}_B2`, stair: '1', room: '102', areaM2e2: 6_645n },
  ];
  const db = s.t.db.kysely;
  await sql`INSERT INTO register_estates (id, city, name, address) VALUES (${estateId}, ${city}, ${`小区 ${estateId}`}, '测试路 1 号')`.execute(db);
  for (const b of [...new Set(list.map((u) => u.building))]) {
    await sql`INSERT INTO register_buildings (id, estate_id, name, building_type, floors) VALUES (${b}, ${estateId}, ${b}, 'multi_storey', 6)`.execute(db);
  }
  for (const u of list) {
    await sql`INSERT INTO register_units (id, estate_id, building_id, stair, room_no, area_m2e2, use, sold)
      VALUES (${u.id}, ${estateId}, ${u.building}, ${u.stair}, ${u.room}, ${u.areaM2e2.toString()}::int8, 'residential', true)`.execute(db);
  }
  return list;
}

let depositSeq = 0;
/** Counter deposits: Dr fund:<city>:bank / Cr hh:<unit>:principal (or :interest). */
export async function deposit(s: FundStack, amounts: Array<[string, bigint]>, side: 'principal' | 'interest' = 'principal', city = CITY): Promise<void> {
  await transact(s.t.db, async (tx) => {
    await ensureFundAccounts(tx, s.ledger, city);
    await ensureHouseholdAccounts(tx, s.ledger, amounts.map(([u]) => u));
    const transfers: TransferInput[] = amounts.map(([u, amount]) => ({
      id: `test-dep:${(depositSeq += 1)}:${u}`, debit_account_id: fundAccountIds.bank(city),
      credit_account_id: side === 'principal' ? fundAccountIds.principal(u) : fundAccountIds.interest(u), amount, ledger: LEDGER_CNY,
      code: 3502, flags: 0, pending_id: null, timeout_s: 0, ref: null, metadata: null,
    }));
    const results = await s.ledger.applyInTransaction(tx, transfers);
    if (results.some((r) => r !== 'ok')) throw new Error(`seed deposit failed: ${results.join(',')}`);
  });
}

/** Moves money out of a household (a refund or a posted repair share): Dr hh:<unit>:principal / Cr fund:<city>:bank. */
export async function withdraw(s: FundStack, unitId: string, amount: bigint, city = CITY): Promise<void> {
  await transact(s.t.db, async (tx) => {
    const [r] = await s.ledger.applyInTransaction(tx, [{
      id: `test-wd:${(depositSeq += 1)}:${unitId}`, debit_account_id: fundAccountIds.principal(unitId), credit_account_id: fundAccountIds.bank(city), amount,
      ledger: LEDGER_CNY, code: 3503, flags: 0, pending_id: null, timeout_s: 0, ref: null, metadata: null,
    }]);
    if (r !== 'ok') throw new Error(`seed withdrawal failed: ${r}`);
  });
}

/** A household's posted and pending figures, as strings for deepEqual. */
export async function household(s: FundStack, unitId: string) {
  const a = await s.ledger.getAccount(fundAccountIds.principal(unitId));
  const i = await s.ledger.getAccount(fundAccountIds.interest(unitId));
  return {
    principal: a.credits_posted - a.debits_posted, principalHeld: a.debits_pending,
    interest: i.credits_posted - i.debits_posted, interestHeld: i.debits_pending,
  };
}

export async function tokenFor(s: FundStack, role: 'property' | 'committee' | 'owner', subject: string, estateIds: string[] | null, unitIds: string[] | null = null) {
  return issueToken(s.t.db, { role, subject, estateIds, unitIds, expiresAt: null });
}

export async function count(s: FundStack, table: string): Promise<number> {
  const r = await sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql.table(table)}`.execute(s.t.db.kysely);
  return Number(r.rows[0].n);
}

/** The center issues a fresh voting code for one unit of an application (shown once) — what a paper ballot carries. */
export async function votingCode(s: FundStack, applicationId: string, unitId: string): Promise<string> {
  const r = await s.call('POST', `/v1/fund/applications/${applicationId}/voting-codes`, { unitIds: [unitId] });
  if (r.status !== 201) throw new Error(`voting code: ${JSON.stringify(r.body)}`);
  return r.body.codes[0].code;
}

/** A ballot entered by the center with the unit's voting code. */
export async function ballot(s: FundStack, applicationId: string, unitId: string, choice: string, token?: string) {
  return s.call('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId, choice, votingCode: await votingCode(s, applicationId, unitId) }, token);
}
