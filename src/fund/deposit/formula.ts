// The deposit formulas, exact in fen (pure; property-tested).
//   area method:  amount = area_m2e2 × fen_per_m2 / 100, rounded half up to the fen
//                 (area in hundredths of a ㎡, so the product is in hundredths of a fen)
//   price method: amount = price_fen × rate, rounded half up to the fen (money.applyRate)
// Top-up (续筹) by difference: first deposit − principal balance; by standard: the
// standard amount × a coefficient (half up).
import { applyRate } from '../../platform/money.ts';

export type Standard = { method: 'area'; fenPerM2: bigint } | { method: 'price'; rate: string };

export interface Basis {
  method: 'area' | 'price' | 'difference' | 'standard_coefficient';
  areaM2e2?: string; fenPerM2?: string; priceFen?: string; rate?: string; coefficient?: string;
  firstDepositFen?: string; principalFen?: string; rounding: 'half_up';
  text: string;
}

export const ROUNDING = 'half_up' as const;

/** area_m2e2 × fen_per_m2 / 100, half up. */
export function areaAmountFen(areaM2e2: bigint, fenPerM2: bigint): bigint {
  if (areaM2e2 <= 0n || fenPerM2 <= 0n) throw new Error('area and standard must be positive');
  return (areaM2e2 * fenPerM2 + 50n) / 100n;
}

/** Returns the amount and the basis printed on the bill; null when the price method has no price. */
export function depositAmount(unit: { area_m2e2: bigint; price_fen: bigint | null }, standard: Standard): { amountFen: bigint; basis: Basis } | null {
  if (standard.method === 'area') {
    const amountFen = areaAmountFen(unit.area_m2e2, standard.fenPerM2);
    return {
      amountFen,
      basis: {
        method: 'area', areaM2e2: unit.area_m2e2.toString(), fenPerM2: standard.fenPerM2.toString(), rounding: ROUNDING,
        text: `建筑面积 ${fmt2(unit.area_m2e2)}㎡ × ${fmt2(standard.fenPerM2)}元/㎡（四舍五入到分）/ area × standard, half up to the fen`,
      },
    };
  }
  if (unit.price_fen === null) return null;
  const amountFen = applyRate(unit.price_fen, standard.rate, ROUNDING);
  return {
    amountFen,
    basis: {
      method: 'price', priceFen: unit.price_fen.toString(), rate: standard.rate, rounding: ROUNDING,
      text: `房款 ${fmt2(unit.price_fen)}元 × ${standard.rate}（四舍五入到分）/ price × rate, half up to the fen`,
    },
  };
}

/** 按差额: what brings the principal back to the first deposit (0 if it is not below). */
export function topUpByDifference(firstDepositFen: bigint, principalFen: bigint): bigint {
  return firstDepositFen > principalFen ? firstDepositFen - principalFen : 0n;
}

/** Below the threshold: principal < first deposit × ratio (basis points), exactly. */
export function belowThreshold(firstDepositFen: bigint, principalFen: bigint, ratioBp: number): boolean {
  return principalFen * 10_000n < firstDepositFen * BigInt(ratioBp);
}

const fmt2 = (v: bigint) => `${v / 100n}.${(v % 100n).toString().padStart(2, '0')}`;
