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

/** Formats fen as yuan with two decimals, for people (never for arithmetic). */
export function formatYuan(fen: bigint): string {
  const negative = fen < 0n;
  const abs = negative ? -fen : fen;
  const yuan = abs / 100n;
  const cents = (abs % 100n).toString().padStart(2, '0');
  return `${negative ? '-' : ''}${yuan}.${cents}`;
}
