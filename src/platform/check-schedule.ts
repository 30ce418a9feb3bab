// The schedule on which open orders, refunds, transfers and payouts are checked at
// their channel: each row has its own next check time and attempt count (columns
// next_check_at / check_attempts); a poller claims the due rows in next_check_at
// order, a bounded batch per tick, and the claim itself moves each row to its next
// check (back-off), so a row that fails or is skipped is simply tried again later and
// every open row is visited in turn — not only the oldest ones.
import { assert } from './assert.ts';

/** Seconds until the next check after the 1st, 2nd, … check; the last value repeats. */
export const CHECK_BACKOFF_S: readonly number[] = [5, 10, 30, 60, 120, 300];

/** The back-off as a PostgreSQL int4[] literal (passed as a parameter). */
export const CHECK_BACKOFF_LITERAL = `{${CHECK_BACKOFF_S.join(',')}}`;

export interface ClaimOptions {
  now: Date;
  /** Rows claimed at most. */
  limit: number;
  /** Also take open rows created at or before this time, due or not (a manual sweep); null: only due rows. */
  forceBefore: Date | null;
}

export interface PollOutcome {
  checked: number;
  settled: number;
  errors: number;
}

/**
 * Runs `work` over `items` with at most `concurrency` at once; an item's error is
 * counted and reported, never stops the others. Returns how many failed.
 */
export async function forEachBounded<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>, onError: (item: T, error: unknown) => void): Promise<number> {
  assert(concurrency >= 1, 'concurrency is positive');
  let next = 0;
  let errors = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next];
      next += 1;
      try {
        await work(item);
      } catch (error) {
        errors += 1;
        onError(item, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return errors;
}
