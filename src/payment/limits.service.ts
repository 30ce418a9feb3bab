// Merchants' request-rate limits on the merchant API: per merchant (mchNo) and per app
// (appId), each a merchant's own setting or the platform default. Counted only for
// requests whose signature verified (authenticate calls `check` last), so nobody can
// spend a merchant's budget by naming it in unsigned or forged requests; floods of
// those meet the per-IP limit before the body is even parsed (ratelimit.hooks.ts).
import type { Database } from '../platform/db.ts';
import { rateLimited, type RateLimiter } from '../platform/ratelimit.ts';
import * as repo from './limits.repo.ts';
import * as payRepo from './payment.repo.ts';
import { paymentErrors } from './payment.errors.ts';
import type { App } from './merchant.service.ts';

const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
export const LIMIT_PER_S_MAX = 100_000;

export interface LimitDefaults { mchPerS: number; appPerS: number; windowS: number }
export interface EffectiveLimits { mchNo: string; merchantPerS: number; appPerS: number; windowS: number; merchantPerSSet: number | null; appPerSSet: number | null }

export type MerchantLimits = ReturnType<typeof createMerchantLimits>;

export function createMerchantLimits(deps: { db: Database; limiter: RateLimiter | null; defaults: LimitDefaults }) {
  const { db, defaults } = deps;
  const cache = new Map<string, { row: repo.MerchantLimitsRow | null; until: number }>();

  async function stored(mchNo: string): Promise<repo.MerchantLimitsRow | null> {
    const hit = cache.get(mchNo);
    if (hit && hit.until > Date.now()) return hit.row;
    const row = await repo.findMerchantLimits(db.kysely, mchNo);
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(mchNo, { row, until: Date.now() + CACHE_MS });
    return row;
  }

  function effective(mchNo: string, row: repo.MerchantLimitsRow | null): EffectiveLimits {
    return {
      mchNo, windowS: defaults.windowS,
      merchantPerS: row?.merchant_per_s ?? defaults.mchPerS, appPerS: row?.app_per_s ?? defaults.appPerS,
      merchantPerSSet: row?.merchant_per_s ?? null, appPerSSet: row?.app_per_s ?? null,
    };
  }

  async function get(mchNo: string): Promise<EffectiveLimits> {
    if (!(await payRepo.findMerchant(db.kysely, mchNo))) throw paymentErrors.merchantNotFound(`商户不存在 / no merchant ${mchNo}`);
    return effective(mchNo, await repo.findMerchantLimits(db.kysely, mchNo));
  }

  /** null = back to the platform default. Other instances see a change within CACHE_MS. */
  async function set(mchNo: string, input: { merchantPerS: number | null; appPerS: number | null }): Promise<EffectiveLimits> {
    for (const [name, v] of Object.entries(input)) {
      if (v !== null && (!Number.isInteger(v) || v < 1 || v > LIMIT_PER_S_MAX)) {
        throw paymentErrors.invalidParam(`${name} 必须是 1–${LIMIT_PER_S_MAX} 的整数或 null / ${name} must be a whole number from 1 to ${LIMIT_PER_S_MAX}, or null for the default`);
      }
    }
    if (!(await payRepo.findMerchant(db.kysely, mchNo))) throw paymentErrors.merchantNotFound(`商户不存在 / no merchant ${mchNo}`);
    const row = await repo.upsertMerchantLimits(db.kysely, mchNo, input.merchantPerS, input.appPerS);
    cache.delete(mchNo);
    return effective(mchNo, row);
  }

  /** Counts one authenticated request; throws RATE_LIMITED (429, Retry-After) over either limit. */
  async function check(app: App): Promise<void> {
    if (!deps.limiter) return;
    const limits = effective(app.mchNo, await stored(app.mchNo));
    const w = limits.windowS;
    const mch = await deps.limiter.hit('mch', app.mchNo, limits.merchantPerS * w, w);
    if (!mch.ok) throw rateLimited(`商户 ${app.mchNo} 超过 ${limits.merchantPerS} 次/秒 / merchant ${app.mchNo} is over ${limits.merchantPerS}/s`, mch.retryAfterMs);
    const perApp = await deps.limiter.hit('app', app.appId, limits.appPerS * w, w);
    if (!perApp.ok) throw rateLimited(`应用 ${app.appId} 超过 ${limits.appPerS} 次/秒 / app ${app.appId} is over ${limits.appPerS}/s`, perApp.retryAfterMs);
  }

  return { get, set, check };
}
