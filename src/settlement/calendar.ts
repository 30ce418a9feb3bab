// The business-day calendar (工作日): China's public holidays and adjusted working
// weekends (调休) from the maintained package chinese-days, overridden by a table of
// announcements the package does not have yet (the State Council publishes next year's
// schedule each November). Dates are Beijing dates, YYYY-MM-DD.
import chineseDays from 'chinese-days';
import { cstDate, isValidDate } from '../platform/time.ts';

export type DayKind = 'workday' | 'holiday';

export interface Calendar {
  isBusinessDay(date: string): boolean;
  /** The n-th business day after `date` (n ≥ 1), or `date` itself when n = 0 and it is a business day. */
  addBusinessDays(date: string, n: number): string;
  /** When money paid at `paidAt` becomes available under a settlement cycle. */
  availableOn(paidAt: Date, cycle: SettlementCycle): string | null;
}

export type SettlementCycle = 'T0' | 'T1' | 'D1' | 'weekly' | 'monthly' | 'manual';
export const SETTLEMENT_CYCLES: readonly SettlementCycle[] = ['T0', 'T1', 'D1', 'weekly', 'monthly', 'manual'];

const SEARCH_DAYS_MAX = 60;

function shift(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

function firstOfNextMonth(date: string): string {
  const d = new Date(`${date.slice(0, 7)}-01T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() + 1);
  return d.toISOString().slice(0, 10);
}

function weekday(date: string): number {
  return new Date(`${date}T00:00:00Z`).getUTCDay();
}

export function createCalendar(overrides: ReadonlyMap<string, DayKind> = new Map()): Calendar {
  for (const date of overrides.keys()) if (!isValidDate(date)) throw new Error(`calendar override has an invalid date: ${date}`);

  function isBusinessDay(date: string): boolean {
    const override = overrides.get(date);
    if (override) return override === 'workday';
    return chineseDays.isWorkday(date);
  }

  function addBusinessDays(date: string, n: number): string {
    if (!isValidDate(date) || !Number.isInteger(n) || n < 0) throw new Error(`addBusinessDays(${date}, ${n}): bad arguments`);
    if (n === 0) return nextOrSame(date);
    let current = date;
    for (let found = 0, steps = 0; found < n; steps += 1) {
      if (steps > SEARCH_DAYS_MAX * n) throw new Error(`no business day within ${SEARCH_DAYS_MAX * n} days after ${date}`);
      current = shift(current, 1);
      if (isBusinessDay(current)) found += 1;
    }
    return current;
  }

  function nextOrSame(date: string): string {
    let current = date;
    for (let steps = 0; !isBusinessDay(current); steps += 1) {
      if (steps > SEARCH_DAYS_MAX) throw new Error(`no business day within ${SEARCH_DAYS_MAX} days of ${date}`);
      current = shift(current, 1);
    }
    return current;
  }

  function availableOn(paidAt: Date, cycle: SettlementCycle): string | null {
    const day = cstDate(paidAt);
    switch (cycle) {
      case 'T0': return day;
      case 'T1': return addBusinessDays(day, 1); // the next working day
      case 'D1': return shift(day, 1); // the next calendar day
      case 'weekly': return nextOrSame(shift(day, ((8 - weekday(day)) % 7) || 7)); // the next Monday, or the business day after it
      case 'monthly': return nextOrSame(firstOfNextMonth(day)); // the first business day of the next month (utilities' remittance)
      case 'manual': return null; // released by an operator
    }
  }

  return { isBusinessDay, addBusinessDays, availableOn };
}
