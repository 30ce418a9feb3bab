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
