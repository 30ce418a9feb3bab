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
