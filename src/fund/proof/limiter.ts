// Failure limits with lock-out for the owner sign-in (等保: lockout after repeated
// failures). Counters live in PostgreSQL (fund_signin_limits), not in process memory or
// Redis: the lock must hold across instances and restarts on both databases, it follows
// the injected clock (tests move time instead of sleeping), and only failures write.
import type { Database } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import * as repo from './proof.repo.ts';

export interface LimitRule { maxFailures: number; windowS: number; lockS: number }
export interface SigninLimits { unit: LimitRule; ip: LimitRule; smsPerUnit: LimitRule }

export const DEFAULT_SIGNIN_LIMITS: SigninLimits = {
  unit: { maxFailures: 5, windowS: 900, lockS: 900 },
  ip: { maxFailures: 20, windowS: 900, lockS: 900 },
  smsPerUnit: { maxFailures: 5, windowS: 3600, lockS: 3600 },
};

export class LockedError extends AppError {
  readonly retryAfterS: number;
  constructor(code: string, message: string, retryAfterS: number) {
    super(code, 429, message, { retryAfterS });
    this.retryAfterS = retryAfterS;
  }
}

export const signinLocked = (retryAfterS: number) => new LockedError('FUND_SIGNIN_LOCKED', `尝试次数过多，请 ${Math.ceil(retryAfterS / 60)} 分钟后再试 / too many failed attempts: try again in ${retryAfterS} s`, retryAfterS);

export type Limiter = ReturnType<typeof createLimiter>;

export function createLimiter(deps: { db: Database; clock: Clock; limits?: Partial<SigninLimits> }) {
  const limits = { ...DEFAULT_SIGNIN_LIMITS, ...deps.limits };
  const now = () => new Date(Number(deps.clock.nowNs() / 1_000_000n));
  const retryAfter = (lockedUntil: Date | null, at: Date) => (lockedUntil && lockedUntil > at ? Math.max(1, Math.ceil((lockedUntil.getTime() - at.getTime()) / 1000)) : 0);

  /** Throws 429 FUND_SIGNIN_LOCKED (with the seconds to wait) while any of the keys is locked. */
  async function check(keys: string[], error = signinLocked): Promise<void> {
    const at = now();
    const wait = Math.max(0, ...(await repo.findLimits(deps.db.kysely, keys)).map((r) => retryAfter(r.locked_until, at)));
    if (wait > 0) throw error(wait);
  }

  /**
   * Counts an attempt under each key BEFORE it is verified (so a burst of parallel guesses
   * cannot verify more than maxFailures between a check and a count), then refuses when a
   * key is locked or over its limit. A successful attempt is forgiven afterwards.
   */
  async function attempt(keyed: Array<{ key: string; rule: keyof SigninLimits }>, error = signinLocked): Promise<void> {
    await check(keyed.map((k) => k.key), error);
    const at = now();
    let wait = 0;
    for (const { key, rule } of keyed) {
      const r = limits[rule];
      const row = await repo.addFailure(deps.db.kysely, key, at, r.windowS * 1000, r.maxFailures, r.lockS * 1000);
      if (row.failures > r.maxFailures) wait = Math.max(wait, retryAfter(row.locked_until, at), 1);
    }
    if (wait > 0) throw error(wait);
  }

  /** After a success: the unit's counter starts again; the IP's counts one attempt less. */
  async function forgive(keyed: Array<{ key: string; rule: keyof SigninLimits }>): Promise<void> {
    for (const { key, rule } of keyed) {
      if (rule === 'unit') await repo.clearLimit(deps.db.kysely, key);
      else await repo.forgiveOne(deps.db.kysely, key);
    }
  }

  return { check, attempt, forgive, limits };
}
