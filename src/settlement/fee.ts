// Fee rules (计费): what a merchant pays per payment, computed once when the payment
// succeeds, in integer fen. A rule is a rate (a decimal string such as "0.006"), a
// fixed amount, optional tiers by amount, a minimum and a maximum, and one rounding
// rule applied once. Refunds return fees in full, in proportion, or not at all.
import { applyRate, isRate, type Rounding } from '../platform/money.ts';

export interface FeeTier {
  /** The tier applies to payments up to and including this amount (fen); null = no upper bound. */
  upToFen: bigint | null;
  rate: string;
  fixedFen: bigint;
}

export interface FeeRule {
  rate: string;
  fixedFen: bigint;
  tiers: FeeTier[];
  minFen: bigint | null;
  maxFen: bigint | null;
  rounding: Rounding;
  refundMode: 'full' | 'proportional' | 'none';
}

export const NO_FEE: FeeRule = { rate: '0', fixedFen: 0n, tiers: [], minFen: null, maxFen: null, rounding: 'half_up', refundMode: 'proportional' };

export class FeeRuleInvalid extends Error {}

/** Checks a rule's shape; throws FeeRuleInvalid saying what to fix. */
export function validateFeeRule(rule: FeeRule): FeeRule {
  if (!isRate(rule.rate)) throw new FeeRuleInvalid(`rate must be a decimal from 0 to 1 such as "0.006", got "${rule.rate}"`);
  if (rule.fixedFen < 0n) throw new FeeRuleInvalid('fixedFen must not be negative');
  if (rule.minFen !== null && rule.minFen < 0n) throw new FeeRuleInvalid('minFen must not be negative');
  if (rule.minFen !== null && rule.maxFen !== null && rule.minFen > rule.maxFen) throw new FeeRuleInvalid('minFen must not exceed maxFen');
  let previous = -1n;
  rule.tiers.forEach((tier, i) => {
    if (!isRate(tier.rate)) throw new FeeRuleInvalid(`tiers[${i}].rate must be a decimal from 0 to 1`);
    if (tier.fixedFen < 0n) throw new FeeRuleInvalid(`tiers[${i}].fixedFen must not be negative`);
    const bound = tier.upToFen ?? null;
    if (bound !== null && bound <= previous) throw new FeeRuleInvalid('tiers must be in increasing upToFen order');
    if (bound === null && i !== rule.tiers.length - 1) throw new FeeRuleInvalid('only the last tier may be unbounded');
    if (bound !== null) previous = bound;
  });
  return rule;
}

/** The fee on a payment of `amountFen` (0 ≤ fee ≤ amount, so fee + net = gross with net ≥ 0). */
export function computeFee(rule: FeeRule, amountFen: bigint): bigint {
  if (amountFen < 0n) throw new Error('computeFee: amount must not be negative');
  const tier = rule.tiers.find((t) => t.upToFen === null || amountFen <= t.upToFen);
  const rate = tier ? tier.rate : rule.rate;
  const fixed = tier ? tier.fixedFen : rule.fixedFen;
  let fee = applyRate(amountFen, rate, rule.rounding) + fixed;
  if (rule.minFen !== null && fee < rule.minFen) fee = rule.minFen;
  if (rule.maxFen !== null && fee > rule.maxFen) fee = rule.maxFen;
  return fee > amountFen ? amountFen : fee;
}

/**
 * The fee to return with a refund. Proportional returns are cumulative — the fee
 * returned so far is fee × refunded so far / paid, rounded down — so a payment refunded
 * in several parts returns exactly its whole fee at the end, never more.
 */
export function refundedFee(rule: FeeRule, fee: bigint, paidFen: bigint, refundedBeforeFen: bigint, refundFen: bigint): bigint {
  if (refundFen <= 0n || refundedBeforeFen < 0n || refundedBeforeFen + refundFen > paidFen) throw new Error('refundedFee: refund outside the paid amount');
  if (rule.refundMode === 'none') return 0n;
  if (rule.refundMode === 'full') return refundedBeforeFen === 0n ? fee : 0n;
  const before = (fee * refundedBeforeFen) / paidFen;
  const after = refundedBeforeFen + refundFen === paidFen ? fee : (fee * (refundedBeforeFen + refundFen)) / paidFen;
  return after - before;
}

/**
 * The part of `partFen` (a split share or a collection) that comes back with a refund:
 * cumulative and rounded down, so partial refunds never claw back more than the part
 * and a full refund claws back exactly all of it.
 */
export function clawbackShare(partFen: bigint, paidFen: bigint, refundedBeforeFen: bigint, refundFen: bigint): bigint {
  if (refundFen <= 0n || refundedBeforeFen < 0n || refundedBeforeFen + refundFen > paidFen) throw new Error('clawbackShare: refund outside the paid amount');
  const after = refundedBeforeFen + refundFen === paidFen ? partFen : (partFen * (refundedBeforeFen + refundFen)) / paidFen;
  return after - (partFen * refundedBeforeFen) / paidFen;
}

const ROUNDINGS = ['half_up', 'down', 'up'] as const;
const REFUND_MODES = ['full', 'proportional', 'none'] as const;
const TIERS_MAX = 20;

function fenField(value: unknown, name: string, nullable: boolean): bigint | null {
  if (value === undefined || value === null) {
    if (nullable) return null;
    return 0n;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^[0-9]{1,15}$/.test(value)) return BigInt(value);
  throw new FeeRuleInvalid(`${name} must be a whole number of fen (e.g. "100"), got ${JSON.stringify(value)}`);
}

/** A rule from its JSON form (API bodies and the stored column); throws FeeRuleInvalid saying what to fix. */
export function parseFeeRule(input: unknown): FeeRule {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new FeeRuleInvalid('rule must be an object such as {"rate":"0.006"}');
  const o = input as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['rate', 'fixedFen', 'tiers', 'minFen', 'maxFen', 'rounding', 'refundMode'].includes(key)) throw new FeeRuleInvalid(`unknown field "${key}" in the fee rule`);
  }
  const rate = o.rate ?? '0';
  if (typeof rate !== 'string') throw new FeeRuleInvalid('rate must be a decimal string such as "0.006"');
  const rounding = o.rounding ?? 'half_up';
  if (!ROUNDINGS.includes(rounding as never)) throw new FeeRuleInvalid(`rounding must be one of ${ROUNDINGS.join(', ')}`);
  const refundMode = o.refundMode ?? 'proportional';
  if (!REFUND_MODES.includes(refundMode as never)) throw new FeeRuleInvalid(`refundMode must be one of ${REFUND_MODES.join(', ')}`);
  const tiersIn = o.tiers ?? [];
  if (!Array.isArray(tiersIn) || tiersIn.length > TIERS_MAX) throw new FeeRuleInvalid(`tiers must be a list of at most ${TIERS_MAX}`);
  const tiers = tiersIn.map((t, i): FeeTier => {
    if (typeof t !== 'object' || t === null) throw new FeeRuleInvalid(`tiers[${i}] must be an object`);
    const tier = t as Record<string, unknown>;
    if (typeof tier.rate !== 'string') throw new FeeRuleInvalid(`tiers[${i}].rate must be a decimal string`);
    return { upToFen: fenField(tier.upToFen, `tiers[${i}].upToFen`, true), rate: tier.rate, fixedFen: fenField(tier.fixedFen, `tiers[${i}].fixedFen`, false) as bigint };
  });
  return validateFeeRule({
    rate, fixedFen: fenField(o.fixedFen, 'fixedFen', false) as bigint, tiers, minFen: fenField(o.minFen, 'minFen', true),
    maxFen: fenField(o.maxFen, 'maxFen', true), rounding: rounding as FeeRule['rounding'], refundMode: refundMode as FeeRule['refundMode'],
  });
}

/** The JSON form of a rule (fen as strings). */
export function feeRuleJson(rule: FeeRule): string {
  return JSON.stringify(rule, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}
