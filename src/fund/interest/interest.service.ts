// 结息与收益分摊 (interest received and allocated). The bank pays interest on the 专户 for
// a period (a quarter, a month or a year, in China time); the center records it:
//   Dr fund:<city>:bank / Cr fund:<city>:yield            (interest received)
//   Dr fund:<city>:yield / Cr hh:<unit>:interest, per unit (allocation)
// in ONE transaction with the batch row, so a period is allocated once: the batch is
// unique per (city, period); a retry with the same amount returns the batch, another
// amount is refused. Allocation is by 积数: each household's end-of-day posted balance
// (本金 + 利息: both sides are the owner's money in the bank and both earn) summed over
// the period's days (calc/interest.ts), read set-wise from the ledger's history.
import { transact, type Database } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { assert } from '../../platform/assert.ts';
import { businessNo } from '../../platform/ids.ts';
import { cstDayStart } from '../../platform/time.ts';
import { BATCH_MAX, type Ledger, type TransferInput } from '../../ledger/index.ts';
import { LEDGER_CNY } from '../../payment/types.ts';
import { HOUSEHOLD_BATCH_MAX, ensureFundAccounts, ensureHouseholdAccounts, fundAccountIds } from '../accounts.ts';
import { requireCenter, type Principal } from '../access.ts';
import { INTEREST_UNITS_MAX, allocateInterest, dayWeightedBalance, parsePeriod, type BalanceHistory } from '../calc/index.ts';
import { asBody, calc, fen, str, useErrors } from '../use/use.errors.ts';
import * as repo from './interest.repo.ts';

export const FUND_INTEREST_TRANSFER_CODE = { received: 3401, allocated: 3402 } as const;
export const INTEREST_MAX_FEN = 10_000_000_000n; // 1 亿元 per city and period
const DAY_NS = 86_400n * 1_000_000_000n;
/** Balance changes read for one allocation at most (a city's quarter of deposits, refunds and holds). */
const CHANGES_MAX = 2_000_000;
const TRANSFERS_PER_CALL = 8_000;
const LIST_MAX = 200;

export type FundInterest = ReturnType<typeof createFundInterest>;

const nsOf = (date: string) => BigInt(cstDayStart(date).getTime()) * 1_000_000n;

export function createFundInterest(deps: { db: Database; ledger: Ledger; clock: Clock }) {
  const { db, ledger, clock } = deps;

  /** Day-weighted balances (积数) of every household of the city over the period. */
  async function weights(city: string, fromNs: bigint, toNs: bigint, days: number) {
    const unitIds = await repo.cityUnitIds(db.kysely, city, INTEREST_UNITS_MAX + 1);
    if (unitIds.length === 0) throw new AppError('FUND_NO_HOUSEHOLDS', 400, `城市 ${city} 没有登记的房屋 / no registered units in city ${city}`);
    if (unitIds.length > INTEREST_UNITS_MAX) throw new AppError('FUND_SCOPE_TOO_LARGE', 400, `more than ${INTEREST_UNITS_MAX} households in ${city}`);
    const unitOf = new Map<string, string>();
    for (const u of unitIds) {
      unitOf.set(fundAccountIds.principal(u), u);
      unitOf.set(fundAccountIds.interest(u), u);
    }
    const accountIds = [...unitOf.keys()];
    const opening = await repo.postedBalancesBefore(db.kysely, accountIds, fromNs);
    const changes = await repo.postedBalanceChanges(db.kysely, accountIds, fromNs, toNs, CHANGES_MAX + 1);
    if (changes.length > CHANGES_MAX) throw new AppError('FUND_SCOPE_TOO_LARGE', 400, `more than ${CHANGES_MAX} balance changes in the period: allocate per month`);
    // Per household: the current balance of each of its two accounts, and the combined balance after each change.
    const current = new Map<string, bigint>(accountIds.map((id) => [id, opening.get(id) ?? 0n]));
    const histories = new Map<string, BalanceHistory & { changes: Array<{ day: number; balanceFen: bigint }> }>();
    const combined = (u: string) => (current.get(fundAccountIds.principal(u)) as bigint) + (current.get(fundAccountIds.interest(u)) as bigint);
    for (const u of unitIds) histories.set(u, { unitId: u, openingFen: combined(u), changes: [] });
    for (const c of changes) {
      const u = unitOf.get(c.account_id);
      assert(u !== undefined, 'a change belongs to an account we asked for');
      current.set(c.account_id, c.balance);
      const day = Number((c.ts - fromNs) / DAY_NS);
      assert(day >= 0 && day < days, 'a change inside the period falls on one of its days');
      (histories.get(u) as { changes: Array<{ day: number; balanceFen: bigint }> }).changes.push({ day, balanceFen: combined(u) });
    }
    return [...histories.values()].map((h) => ({ unitId: h.unitId, weight: calc(() => dayWeightedBalance(h, days)) }));
  }

  async function allocate(p: Principal, raw: unknown) {
    requireCenter(p);
    const b = asBody(raw);
    const city = str(b, 'city', 32) as string;
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(city)) throw useErrors.invalid('城市代码无效 / city code: 1–32 of A-Z a-z 0-9 _ -');
    const period = calc(() => parsePeriod(str(b, 'period', 16) as string));
    const amountFen = fen(b, 'amountFen', INTEREST_MAX_FEN);
    const fromNs = nsOf(period.fromDate);
    const toNs = nsOf(period.toDateExclusive);
    if (toNs > clock.nowNs()) throw new AppError('FUND_PERIOD_NOT_ENDED', 400, `期间 ${period.label} 尚未结束（止于 ${period.toDateExclusive} 零时）/ period ${period.label} has not ended yet (ends ${period.toDateExclusive} 00:00 China time)`);
    const existing = await repo.findBatch(db.kysely, city, period.label);
    if (existing) return same(existing, amountFen);

    const w = await weights(city, fromNs, toNs, period.days);
    const shares = calc(() => allocateInterest(amountFen, w));
    const totalWeight = shares.reduce((s, x) => s + x.weight, 0n);
    const batchId = businessNo('FI');
    const done = await transact(db, async (tx) => {
      const inserted = await repo.insertBatch(tx, {
        id: batchId, city, period: period.label, fromDate: period.fromDate, toDate: period.toDateExclusive, amountFen,
        households: shares.filter((s) => s.shareFen > 0n).length, totalWeight, operator: p.subject,
      });
      if (!inserted) return null;
      await repo.insertShares(tx, batchId, shares);
      await ensureFundAccounts(tx, ledger, city);
      const receivers = shares.filter((s) => s.shareFen > 0n);
      for (let i = 0; i < receivers.length; i += HOUSEHOLD_BATCH_MAX) await ensureHouseholdAccounts(tx, ledger, receivers.slice(i, i + HOUSEHOLD_BATCH_MAX).map((s) => s.unitId));
      const transfers: TransferInput[] = [
        transfer(`fint:${city}:${period.label}:received`, fundAccountIds.bank(city), fundAccountIds.yield(city), amountFen, FUND_INTEREST_TRANSFER_CODE.received, batchId),
        ...receivers.map((s) => transfer(`fint:${city}:${period.label}:${s.unitId}`, fundAccountIds.yield(city), fundAccountIds.interest(s.unitId), s.shareFen, FUND_INTEREST_TRANSFER_CODE.allocated, batchId)),
      ];
      assert(TRANSFERS_PER_CALL <= BATCH_MAX, 'chunks within the ledger batch limit');
      for (let i = 0; i < transfers.length; i += TRANSFERS_PER_CALL) {
        const chunk = transfers.slice(i, i + TRANSFERS_PER_CALL);
        const results = await ledger.applyInTransaction(tx, chunk);
        results.forEach((r, k) => assert(r === 'ok', `interest transfer ${chunk[k].id}: ${r}`));
      }
      return (await repo.findBatch(tx, city, period.label)) as repo.BatchRow;
    });
    if (done) return done;
    const raced = await repo.findBatch(db.kysely, city, period.label);
    assert(raced !== null, 'a conflicting batch exists');
    return same(raced, amountFen);
  }

  function same(batch: repo.BatchRow, amountFen: bigint): repo.BatchRow {
    if (batch.amount_fen !== amountFen) {
      throw new AppError('FUND_INTEREST_ALREADY_POSTED', 409, `${batch.city} ${batch.period} 的利息已按 ${batch.amount_fen} 分入账分摊，不能改为 ${amountFen} 分 / interest for ${batch.city} ${batch.period} was already posted as ${batch.amount_fen} fen`);
    }
    return batch;
  }

  async function list(p: Principal, city: string | null) {
    requireCenter(p);
    return repo.listBatches(db.kysely, city, LIST_MAX);
  }

  async function detail(p: Principal, id: string, sharesLimit = 10_000) {
    requireCenter(p);
    const batch = await repo.findBatchById(db.kysely, id);
    if (!batch) throw useErrors.notFound('batch', id);
    const shares = await repo.listShares(db.kysely, id, sharesLimit + 1);
    return { batch, shares: shares.slice(0, sharesLimit), truncated: shares.length > sharesLimit };
  }

  return { allocate, list, detail, weights };
}

function transfer(id: string, debit: string, credit: string, amount: bigint, code: number, ref: string): TransferInput {
  return { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: LEDGER_CNY, code, flags: 0, pending_id: null, timeout_s: 0, ref, metadata: null };
}
