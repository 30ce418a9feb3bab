// 业主表决 (owner vote), Civil Code Art. 278 (民法典 第二百七十八条):
// - participation: owners holding ≥ ⅔ of the 专有部分 area AND ≥ ⅔ of the owners take part;
// - USE of the maintenance fund (使用): agreed by MORE THAN HALF of the participating area
//   AND more than half of the participating owners (双过半, strict >);
// - RAISING it (筹集/续筹): agreed by ≥ ¾ of the participating area AND ≥ ¾ of the
//   participating owners ("四分之三以上": Chinese law's 以上 includes the number).
// The rule is a parameter (thresholds as exact fractions, strict or not) so cities or a
// later amendment can change it; comparisons are exact cross-multiplications in bigint.
//
// Owner count: one owner per unit (最高法 建筑物区分所有权解释 Art 9: 一个专有部分按一人
// 计算), so co-owners listed on one unit count once. A ballot carries `owners` so a caller
// with a different counting rule can pass it (the service passes 1 per unit).
// Abstentions take part (count for participation) but do not agree.
import { CalcError, compareIds } from './errors.ts';

export interface Fraction {
  num: bigint;
  den: bigint;
}

export interface Threshold {
  fraction: Fraction;
  /** true: strictly more than the fraction (过半数); false: at least (以上). */
  strict: boolean;
}

export interface VoteRule {
  name: 'use' | 'raise' | string;
  participation: Threshold;
  approval: Threshold;
}

const f = (num: bigint, den: bigint): Fraction => ({ num, den });
export const VOTE_RULES = {
  use: { name: 'use', participation: { fraction: f(2n, 3n), strict: false }, approval: { fraction: f(1n, 2n), strict: true } },
  raise: { name: 'raise', participation: { fraction: f(2n, 3n), strict: false }, approval: { fraction: f(3n, 4n), strict: false } },
} as const satisfies Record<string, VoteRule>;

export type Choice = 'agree' | 'disagree' | 'abstain';

export interface Ballot {
  unitId: string;
  areaM2e2: bigint;
  owners: bigint;
  /** null: did not vote. */
  choice: Choice | null;
}

export type VoteCondition = 'participation_area' | 'participation_owners' | 'approval_area' | 'approval_owners';

export interface Tally {
  rule: string;
  totalAreaM2e2: bigint;
  totalOwners: bigint;
  participatingAreaM2e2: bigint;
  participatingOwners: bigint;
  agreeAreaM2e2: bigint;
  agreeOwners: bigint;
  disagreeAreaM2e2: bigint;
  disagreeOwners: bigint;
  abstainAreaM2e2: bigint;
  abstainOwners: bigint;
  passed: boolean;
  /** The conditions that failed, in the order above (empty when passed). */
  failed: VoteCondition[];
}

/** part / whole meets the threshold (exact). A zero whole never meets it. */
export function meets(part: bigint, whole: bigint, t: Threshold): boolean {
  if (whole <= 0n) return false;
  const lhs = part * t.fraction.den;
  const rhs = t.fraction.num * whole;
  return t.strict ? lhs > rhs : lhs >= rhs;
}

export function tally(rule: VoteRule, ballots: readonly Ballot[]): Tally {
  if (rule.participation.fraction.den <= 0n || rule.approval.fraction.den <= 0n) throw new CalcError('bad_ballot', 'threshold denominators must be positive');
  if (ballots.length === 0) throw new CalcError('no_units', '表决范围内没有房屋 / no units in the vote');
  const sorted = [...ballots].sort((a, b) => compareIds(a.unitId, b.unitId));
  const t = {
    totalAreaM2e2: 0n, totalOwners: 0n, agreeAreaM2e2: 0n, agreeOwners: 0n,
    disagreeAreaM2e2: 0n, disagreeOwners: 0n, abstainAreaM2e2: 0n, abstainOwners: 0n,
  };
  for (let i = 0; i < sorted.length; i += 1) {
    const b = sorted[i];
    if (i > 0 && b.unitId === sorted[i - 1].unitId) throw new CalcError('duplicate_unit', `房屋 ${b.unitId} 重复投票 / unit ${b.unitId} has two ballots`);
    if (b.areaM2e2 <= 0n) throw new CalcError('area_not_positive', `房屋 ${b.unitId} 面积必须大于 0 / unit ${b.unitId} has no positive area`);
    if (b.owners <= 0n) throw new CalcError('bad_ballot', `房屋 ${b.unitId} 业主数必须大于 0 / unit ${b.unitId} must count at least one owner`);
    t.totalAreaM2e2 += b.areaM2e2;
    t.totalOwners += b.owners;
    if (b.choice === 'agree') { t.agreeAreaM2e2 += b.areaM2e2; t.agreeOwners += b.owners; }
    else if (b.choice === 'disagree') { t.disagreeAreaM2e2 += b.areaM2e2; t.disagreeOwners += b.owners; }
    else if (b.choice === 'abstain') { t.abstainAreaM2e2 += b.areaM2e2; t.abstainOwners += b.owners; }
    else if (b.choice !== null) throw new CalcError('bad_ballot', `房屋 ${b.unitId} 表决意见无效 / unit ${b.unitId}: unknown choice`);
  }
  const participatingAreaM2e2 = t.agreeAreaM2e2 + t.disagreeAreaM2e2 + t.abstainAreaM2e2;
  const participatingOwners = t.agreeOwners + t.disagreeOwners + t.abstainOwners;
  const failed: VoteCondition[] = [];
  if (!meets(participatingAreaM2e2, t.totalAreaM2e2, rule.participation)) failed.push('participation_area');
  if (!meets(participatingOwners, t.totalOwners, rule.participation)) failed.push('participation_owners');
  if (!meets(t.agreeAreaM2e2, participatingAreaM2e2, rule.approval)) failed.push('approval_area');
  if (!meets(t.agreeOwners, participatingOwners, rule.approval)) failed.push('approval_owners');
  return { rule: rule.name, ...t, participatingAreaM2e2, participatingOwners, passed: failed.length === 0, failed };
}

export const VOTE_CONDITION_TEXT: Record<VoteCondition, string> = {
  participation_area: '参与表决的专有部分面积不足三分之二 / participating area below two thirds of the total',
  participation_owners: '参与表决的业主人数不足三分之二 / participating owners below two thirds of all owners',
  approval_area: '同意的面积未达到参与表决面积的法定比例 / agreeing area below the required share of the participating area',
  approval_owners: '同意的业主人数未达到参与表决人数的法定比例 / agreeing owners below the required share of participating owners',
};
