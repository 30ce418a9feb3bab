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

/**
 * Splits `totalFen` in proportion to `weights` by largest remainder (Hamilton): every
 * share is the floor of its exact proportion, and the fen left over go one each to the
 * largest fractional remainders (ties: the earlier weight). The shares always sum to
 * the total exactly and each is within one fen of its exact proportion.
 */
export function allocate(totalFen: bigint, weights: readonly bigint[]): bigint[] {
  if (totalFen < 0n) throw new Error('allocate: total must not be negative');
  if (weights.length === 0) throw new Error('allocate: at least one weight');
  let sum = 0n;
  for (const w of weights) {
    if (w < 0n) throw new Error('allocate: weights must not be negative');
    sum += w;
  }
  if (sum === 0n) throw new Error('allocate: weights must not all be zero');
  const shares = weights.map((w) => (totalFen * w) / sum);
  const remainders = weights.map((w, i) => ({ i, r: (totalFen * w) % sum }));
  let left = totalFen - shares.reduce((a, b) => a + b, 0n);
  remainders.sort((a, b) => (a.r === b.r ? a.i - b.i : a.r > b.r ? -1 : 1));
  for (let k = 0; left > 0n; k += 1, left -= 1n) shares[remainders[k].i] += 1n;
  return shares;
}
