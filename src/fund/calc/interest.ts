// 增值收益分摊 (interest allocation). Interest I received for a period is shared among
// households in proportion to their 积数 (day-weighted balance, Σ_d bal_i,d: the
// end-of-day balance summed over the days of the period):
//   share_i = floor(I × W_i / W),  W_i = Σ_d bal_i,d,  W = Σ_j W_j
// and the fen left over (fewer than the number of households) go by LARGEST REMAINDER,
// one each to the largest fractional parts, ties to the smaller unit id. We chose this
// over "the residue to the largest share" (domain.md's suggestion) because it keeps
// every household within one fen of its exact proportion; "to the largest share" can
// push one household up to n−1 fen over. Households with W_i = 0 get exactly 0 (their
// remainder is 0 and the residue k < the number of positive remainders). All bigint.
import { allocate } from '../../platform/money.ts';
import { CalcError, compareIds } from './errors.ts';

/** A limit on households per allocation and on balance changes per household. */
export const INTEREST_UNITS_MAX = 200_000;
export const CHANGES_PER_UNIT_MAX = 100_000;

/** A household's balance at the period's start and its changes during the period. */
export interface BalanceHistory {
  unitId: string;
  /** Balance at the start of day 0 (end of the day before the period). */
  openingFen: bigint;
  /** Balance after each change, with the 0-based day of the period it happened on; ascending by day. */
  changes: ReadonlyArray<{ day: number; balanceFen: bigint }>;
}

/**
 * Σ_d bal_d over `days` days, where bal_d is the balance at the END of day d (the last
 * change on or before day d, else the opening balance): each segment's balance × the
 * days it was the end-of-day balance.
 */
export function dayWeightedBalance(h: BalanceHistory, days: number): bigint {
  if (!Number.isInteger(days) || days <= 0) throw new CalcError('bad_period', `期间天数必须为正整数 / days must be a positive integer (${days})`);
  if (h.changes.length > CHANGES_PER_UNIT_MAX) throw new CalcError('bad_period', `too many balance changes for unit ${h.unitId}`);
  let total = 0n;
  let balance = h.openingFen;
  let from = 0; // first day whose end-of-day balance is `balance`
  for (let i = 0; i < h.changes.length; i += 1) {
    const c = h.changes[i];
    if (!Number.isInteger(c.day) || c.day < 0 || c.day >= days || (i > 0 && c.day < h.changes[i - 1].day)) {
      throw new CalcError('bad_period', `余额变动日期无效 / change ${i} of unit ${h.unitId} has day ${c.day} outside 0..${days - 1} or out of order`);
    }
    // The balance at the end of c.day is the last change on c.day: days before c.day keep `balance`.
    total += balance * BigInt(c.day - from);
    balance = c.balanceFen;
    from = c.day;
  }
  total += balance * BigInt(days - from);
  if (total < 0n) throw new CalcError('balance_negative', `房屋 ${h.unitId} 积数为负 / unit ${h.unitId} has a negative day-weighted balance`);
  return total;
}

export interface Weight {
  unitId: string;
  weight: bigint;
}

export interface InterestShare {
  unitId: string;
  weight: bigint;
  shareFen: bigint;
}

export function allocateInterest(interestFen: bigint, weights: readonly Weight[]): InterestShare[] {
  if (interestFen < 0n) throw new CalcError('amount_negative', `利息不能为负 / interest must not be negative (${interestFen})`);
  if (weights.length === 0) throw new CalcError('no_units', '没有参与分摊的分户 / no households to allocate to');
  if (weights.length > INTEREST_UNITS_MAX) throw new CalcError('units_too_many', `more than ${INTEREST_UNITS_MAX} households`);
  const sorted = [...weights].sort((a, b) => compareIds(a.unitId, b.unitId));
  let total = 0n;
  for (let i = 0; i < sorted.length; i += 1) {
    if (sorted[i].weight < 0n) throw new CalcError('balance_negative', `分户 ${sorted[i].unitId} 积数为负 / negative weight for ${sorted[i].unitId}`);
    if (i > 0 && sorted[i].unitId === sorted[i - 1].unitId) throw new CalcError('duplicate_unit', `分户 ${sorted[i].unitId} 重复 / unit ${sorted[i].unitId} listed twice`);
    total += sorted[i].weight;
  }
  if (total === 0n) throw new CalcError('no_weight', '期间内所有分户余额为零，利息无法分摊 / every household had a zero balance over the period: nothing to allocate by');
  const shares = allocate(interestFen, sorted.map((w) => w.weight));
  return sorted.map((w, i) => ({ unitId: w.unitId, weight: w.weight, shareFen: shares[i] }));
}

export interface Period {
  label: string;
  /** First day (YYYY-MM-DD, China time) and the day after the last. */
  fromDate: string;
  toDateExclusive: string;
  days: number;
}

/** 'YYYY-Qn' (quarterly 结息), 'YYYY-MM' or 'YYYY' (年终结息). */
export function parsePeriod(label: string): Period {
  let m = /^(\d{4})-Q([1-4])$/.exec(label);
  let from: [number, number];
  let to: [number, number];
  if (m) {
    const y = Number(m[1]);
    const q = Number(m[2]);
    from = [y, (q - 1) * 3 + 1];
    to = q === 4 ? [y + 1, 1] : [y, q * 3 + 1];
  } else if ((m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(label))) {
    const y = Number(m[1]);
    const mo = Number(m[2]);
    from = [y, mo];
    to = mo === 12 ? [y + 1, 1] : [y, mo + 1];
  } else if ((m = /^(\d{4})$/.exec(label))) {
    const y = Number(m[1]);
    from = [y, 1];
    to = [y + 1, 1];
  } else {
    throw new CalcError('bad_period', `期间格式应为 YYYY-Qn、YYYY-MM 或 YYYY / period must look like 2026-Q1, 2026-03 or 2026 (got "${label}")`);
  }
  if (from[0] < 2000 || from[0] > 2999) throw new CalcError('bad_period', `期间年份超出范围 / period year out of range (${label})`);
  const fmt = ([y, mo]: [number, number]) => `${y}-${String(mo).padStart(2, '0')}-01`;
  const fromDate = fmt(from);
  const toDateExclusive = fmt(to);
  const days = (Date.parse(`${toDateExclusive}T00:00:00Z`) - Date.parse(`${fromDate}T00:00:00Z`)) / 86_400_000;
  return { label, fromDate, toDateExclusive, days };
}
