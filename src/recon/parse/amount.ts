// Statement amounts are yuan as decimal text ("12.34", "-0.04000"); they become integers
// by string arithmetic, never through a float. `scale` is the number of decimals kept:
// 2 gives fen; 5 gives the 1e-5 yuan of WeChat's fee column.

export class AmountInvalid extends Error {}

const AMOUNT = /^(-?)(\d{1,15})(?:\.(\d{1,8}))?$/;

export function parseYuan(text: string, scale: 2 | 5 = 2): bigint {
  const match = AMOUNT.exec(text.trim());
  if (!match) throw new AmountInvalid(`not an amount: ${JSON.stringify(text)}`);
  const [, sign, whole, fraction = ''] = match;
  if (fraction.length > scale && /[1-9]/.test(fraction.slice(scale))) {
    throw new AmountInvalid(`${JSON.stringify(text)} has more than ${scale} decimals`);
  }
  const value = BigInt(whole + fraction.slice(0, scale).padEnd(scale, '0'));
  return sign === '-' ? -value : value;
}

/** Largest magnitude fastYuan returns as a number: every sum of two stays a safe integer. */
const FAST_LIMIT_DIGITS = 15;

/**
 * parseYuan's result as a number, for the common canonical text ("-12.34"): no
 * surrounding space, at most 15 significant digits once scaled (so the value is below
 * 1e15 and exact). Returns null for anything else, and the caller falls back to
 * parseYuan, which accepts or rejects it: the two never disagree on a value.
 */
export function fastYuan(text: string, scale: 2 | 5): number | null {
  const n = text.length;
  let i = text.charCodeAt(0) === 45 ? 1 : 0;
  const negative = i === 1;
  let value = 0;
  const wholeStart = i;
  for (; i < n; i += 1) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    value = value * 10 + c;
  }
  const whole = i - wholeStart;
  if (whole === 0 || whole + scale > FAST_LIMIT_DIGITS) return null;
  let kept = 0;
  if (i < n) {
    if (text.charCodeAt(i) !== 46) return null;
    const fractionStart = (i += 1);
    for (; i < n; i += 1) {
      const c = text.charCodeAt(i) - 48;
      if (c < 0 || c > 9) return null;
      if (kept < scale) {
        value = value * 10 + c;
        kept += 1;
      } else if (c !== 0) return null;
    }
    const fraction = n - fractionStart;
    if (fraction === 0 || fraction > 8) return null;
  }
  for (; kept < scale; kept += 1) value *= 10;
  return negative ? -value : value;
}
