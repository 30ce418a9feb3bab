// 分摊 (apportionment): a repair's cost shared among the units in scope in proportion
// to their 建筑面积 (165号令 Art 20), exact to the fen. Largest remainder (Hamilton):
// every share is the floor of its exact proportion; the fen left over go one each to
// the largest fractional remainders, ties to the smaller unit id (units are sorted by
// id first, so the result does not depend on input order). Consequences, property-
// tested in test/fund.calc.test.ts: the shares sum to the cost exactly, none is
// negative, each is within one fen of its exact proportion, and the same input always
// gives the same output.
import { allocate } from '../../platform/money.ts';
import { CalcError, compareIds } from './errors.ts';

/** A limit on how many units one application may cover (a whole large estate fits). */
export const APPORTION_UNITS_MAX = 4000;

export interface AreaUnit {
  unitId: string;
  areaM2e2: bigint;
}

export interface Share {
  unitId: string;
  areaM2e2: bigint;
  shareFen: bigint;
}

export function apportion(costFen: bigint, units: readonly AreaUnit[]): Share[] {
  if (costFen < 0n) throw new CalcError('amount_negative', `费用不能为负 / cost must not be negative (${costFen})`);
  if (units.length === 0) throw new CalcError('no_units', '分摊范围内没有房屋 / no units in scope');
  if (units.length > APPORTION_UNITS_MAX) throw new CalcError('units_too_many', `分摊范围超过 ${APPORTION_UNITS_MAX} 户 / more than ${APPORTION_UNITS_MAX} units in scope`);
  const sorted = [...units].sort((a, b) => compareIds(a.unitId, b.unitId));
  for (let i = 0; i < sorted.length; i += 1) {
    if (sorted[i].areaM2e2 <= 0n) throw new CalcError('area_not_positive', `房屋 ${sorted[i].unitId} 建筑面积必须大于 0 / unit ${sorted[i].unitId} has no positive area`);
    if (i > 0 && sorted[i].unitId === sorted[i - 1].unitId) throw new CalcError('duplicate_unit', `房屋 ${sorted[i].unitId} 重复 / unit ${sorted[i].unitId} listed twice`);
  }
  const shares = allocate(costFen, sorted.map((u) => u.areaM2e2));
  return sorted.map((u, i) => ({ unitId: u.unitId, areaM2e2: u.areaM2e2, shareFen: shares[i] }));
}

/** What a household can pay from: posted balance minus amounts already held. */
export interface Available {
  unitId: string;
  principalFen: bigint;
  interestFen: bigint;
}

/**
 * Whether a share may draw on the household's interest (增值收益) side. 'principal_only'
 * (the default): only 本金 pays, a household whose 本金 is short blocks approval.
 * 'interest_first': the city's rule uses the 利息 side first, then 本金.
 */
export type DrawRule = 'principal_only' | 'interest_first';

export interface PreviewLine extends Share {
  availablePrincipalFen: bigint;
  availableInterestFen: bigint;
  /** The planned holds: fromInterestFen + fromPrincipalFen = shareFen when not short. */
  fromInterestFen: bigint;
  fromPrincipalFen: bigint;
  shortFen: bigint;
}

export interface Preview {
  costFen: bigint;
  lines: PreviewLine[];
  short: Array<{ unitId: string; shareFen: bigint; availableFen: bigint; shortFen: bigint }>;
  shortTotalFen: bigint;
}

/** Shares plus, per household, where the money comes from and how much is missing. */
export function previewApportionment(costFen: bigint, units: readonly AreaUnit[], available: readonly Available[], rule: DrawRule): Preview {
  const byUnit = new Map(available.map((a) => [a.unitId, a]));
  const lines: PreviewLine[] = apportion(costFen, units).map((s) => {
    const a = byUnit.get(s.unitId) ?? { unitId: s.unitId, principalFen: 0n, interestFen: 0n };
    if (a.principalFen < 0n || a.interestFen < 0n) throw new CalcError('balance_negative', `房屋 ${s.unitId} 可用余额为负 / unit ${s.unitId} has a negative available balance`);
    const fromInterestFen = rule === 'interest_first' ? min(s.shareFen, a.interestFen) : 0n;
    const fromPrincipalFen = min(s.shareFen - fromInterestFen, a.principalFen);
    const shortFen = s.shareFen - fromInterestFen - fromPrincipalFen;
    return { ...s, availablePrincipalFen: a.principalFen, availableInterestFen: a.interestFen, fromInterestFen, fromPrincipalFen, shortFen };
  });
  const short = lines.filter((l) => l.shortFen > 0n).map((l) => ({
    unitId: l.unitId, shareFen: l.shareFen, availableFen: l.fromInterestFen + l.fromPrincipalFen, shortFen: l.shortFen,
  }));
  return { costFen, lines, short, shortTotalFen: short.reduce((s, l) => s + l.shortFen, 0n) };
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
