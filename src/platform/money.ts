// Money is an integer count of fen in a bigint. Parsing never goes through a float.

export const INT8_MAX = 9223372036854775807n;

/** Parses a decimal string of integer fen (or a safe JS integer). Returns null when invalid. */
export function parseFen(value: unknown): bigint | null {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return null;
    return BigInt(value);
  }
  if (typeof value !== 'string') return null;
  if (!/^-?[0-9]{1,19}$/.test(value)) return null;
  const fen = BigInt(value);
  if (fen > INT8_MAX || fen < -INT8_MAX) return null;
  return fen;
}

/** Fen as yuan with `decimals` places (2 or 5 in statements), for files and people. */
export function fenToYuan(fen: bigint, decimals = 2): string {
  const negative = fen < 0n;
  const abs = negative ? -fen : fen;
  let text = `${abs / 100n}.${(abs % 100n).toString().padStart(2, '0')}`;
  if (decimals > 2) text += '0'.repeat(decimals - 2);
  return (negative ? '-' : '') + text;
}

export type Rounding = 'half_up' | 'down' | 'up';

/** amount × rate (a decimal string such as "0.006") in whole fen, rounded once as stated. */
export function applyRate(amountFen: bigint, rate: string, rounding: Rounding = 'half_up'): bigint {
  const match = /^(\d+)(?:\.(\d{1,12}))?$/.exec(rate);
  if (!match) throw new Error(`rate must be a non-negative decimal string, got "${rate}"`);
  const scale = 10n ** BigInt(match[2]?.length ?? 0);
  const numerator = BigInt(match[1] + (match[2] ?? ''));
  const negative = amountFen < 0n;
  const product = (negative ? -amountFen : amountFen) * numerator;
  let result: bigint;
  if (rounding === 'down') result = product / scale;
  else if (rounding === 'up') result = (product + scale - 1n) / scale;
  else result = (product * 2n + scale) / (2n * scale);
  return negative ? -result : result;
}

export function isRate(value: unknown, max = '1'): value is string {
  if (typeof value !== 'string' || !/^\d+(\.\d{1,12})?$/.test(value)) return false;
  const [w, f = ''] = value.split('.');
  const [mw, mf = ''] = max.split('.');
  const len = Math.max(f.length, mf.length);
  return BigInt(w + f.padEnd(len, '0')) <= BigInt(mw + mf.padEnd(len, '0'));
}
