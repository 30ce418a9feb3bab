// Business numbers: a letter, the Beijing time to the millisecond, and random digits
// (e.g. P20261122103000123 48213907). Sortable by time, unguessable enough, unique by
// the database's key.
import { randomInt } from 'node:crypto';

export function businessNo(prefix: string, at: Date = new Date()): string {
  const cst = new Date(at.getTime() + 8 * 3600 * 1000).toISOString();
  const stamp = cst.slice(0, 23).replace(/[-T:.]/g, '');
  return `${prefix}${stamp}${randomInt(0, 100_000_000).toString().padStart(8, '0')}`;
}
