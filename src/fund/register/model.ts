// The register's vocabulary and exact parsers: areas in hundredths of a square metre
// (area_m2e2), money in fen; never through a float.

export interface Owner { name: string; idNo: string | null; phone: string | null }

export const BUILDING_TYPES = [
  { code: 'high_rise_lift', label: '高层电梯' },
  { code: 'multi_storey', label: '多层' },
  { code: 'low_rise', label: '低层' },
  { code: 'villa', label: '别墅' },
  { code: 'non_residential', label: '非住宅' },
] as const;

export const UNIT_USES = [
  { code: 'residential', label: '住宅' },
  { code: 'commercial', label: '商业' },
  { code: 'office', label: '办公' },
  { code: 'other', label: '其他' },
] as const;

export const isBuildingType = (v: unknown): v is string => BUILDING_TYPES.some((t) => t.code === v);
export const isUnitUse = (v: unknown): v is string => UNIT_USES.some((u) => u.code === v);
export const buildingTypeLabel = (code: string) => BUILDING_TYPES.find((t) => t.code === code)?.label ?? code;
export const useLabel = (code: string) => UNIT_USES.find((u) => u.code === code)?.label ?? code;

/** Largest area of one unit: 100000 ㎡. */
export const AREA_M2E2_MAX = 10_000_000n;

/** "98.5" → 9850n (hundredths of a ㎡); null unless 0 < area ≤ 100000 with ≤ 2 decimals. */
export function parseAreaM2e2(text: string): bigint | null {
  const m = /^(\d{1,6})(?:\.(\d{1,2}))?$/.exec(text.trim());
  if (!m) return null;
  const v = BigInt(m[1]) * 100n + BigInt((m[2] ?? '').padEnd(2, '0'));
  return v > 0n && v <= AREA_M2E2_MAX ? v : null;
}

/** "1234567.8" → 123456780n fen; null unless ≤ 2 decimals and ≤ 10^12 yuan. */
export function parseYuanToFen(text: string): bigint | null {
  const m = /^(\d{1,12})(?:\.(\d{1,2}))?$/.exec(text.trim());
  if (!m) return null;
  return BigInt(m[1]) * 100n + BigInt((m[2] ?? '').padEnd(2, '0'));
}

/** 9850n → "98.50". */
export function formatAreaM2(areaM2e2: bigint): string {
  return `${areaM2e2 / 100n}.${(areaM2e2 % 100n).toString().padStart(2, '0')}`;
}

/** 张三 → 张*; 欧阳娜娜 → 欧***. */
export function maskName(name: string): string {
  const chars = [...name];
  return chars.length <= 1 ? '*' : chars[0] + '*'.repeat(chars.length - 1);
}

/** For property companies and committees: 张三 → 张*, 张小三 → 张*三, 欧阳娜娜 → 欧**娜 (the public pages keep only the surname). */
export function maskNameStaff(name: string): string {
  const chars = [...name];
  if (chars.length <= 2) return maskName(name);
  return chars[0] + '*'.repeat(chars.length - 2) + chars[chars.length - 1];
}
