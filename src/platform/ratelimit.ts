// Request-rate limiting: fixed windows counted in Redis when REDIS_URL is set (every
// instance shares one budget per key), in this process otherwise. Built on
// rate-limiter-flexible: one limiter per (points, window) pair, any key, one atomic
// INCR+PEXPIRE script per check in Redis. If Redis stops answering, each instance
// falls back to its own in-process count (the insurance limiter) rather than
// refusing or letting everything through.
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppError } from './errors.ts';

/** Distinct (points, window) pairs kept; more are rebuilt on demand (limits are few). */
const LIMITERS_MAX = 1000;
const REDIS_TIMEOUT_MS = 500;

export interface RateLimitOutcome {
  ok: boolean;
  /** When the key's window ends (ms from now); 0 when allowed with room left. */
  retryAfterMs: number;
  remaining: number;
}

export interface RateLimiter {
  readonly store: 'redis' | 'memory';
  /** Counts one request against `key` (bucket `kind`), allowing `points` per `windowS`. */
  hit(kind: string, key: string, points: number, windowS: number): Promise<RateLimitOutcome>;
  close(): Promise<void>;
}

/** 429: too many requests for a key; the handlers add `Retry-After`. */
export class RateLimitedError extends AppError {
  readonly retryAfterS: number;
  constructor(message: string, retryAfterMs: number) {
    super('RATE_LIMITED', 429, message);
    this.retryAfterS = Math.max(1, Math.ceil(retryAfterMs / 1000));
  }
}

export function rateLimited(what: string, retryAfterMs: number): RateLimitedError {
  const s = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new RateLimitedError(`请求过于频繁（${what}），请 ${s} 秒后重试 / too many requests (${what}); retry after ${s} s`, retryAfterMs);
}

/** The `Retry-After` seconds an error asks for, if any (rate limits, shedding). */
export function retryAfterOf(error: unknown): number | null {
  const s = (error as { retryAfterS?: unknown } | null)?.retryAfterS;
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? Math.ceil(s) : null;
}

export function createRateLimiter(options: { redisUrl: string | null; prefix: string }): RateLimiter {
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: REDIS_TIMEOUT_MS, lazyConnect: false })
    : null;
  // ioredis reports connection errors as events; the insurance limiter covers them.
  redis?.on('error', () => {});
  const limiters = new Map<string, RateLimiterAbstract>();

  function limiter(kind: string, points: number, windowS: number): RateLimiterAbstract {
    const name = `${kind}:${points}:${windowS}`;
    let found = limiters.get(name);
    if (found) return found;
    if (limiters.size >= LIMITERS_MAX) limiters.clear();
    // The prefix carries the limit, so changing a merchant's limit starts a fresh window.
    const keyPrefix = `${options.prefix}:${name}`;
    const memory = new RateLimiterMemory({ keyPrefix, points, duration: windowS });
    found = redis ? new RateLimiterRedis({ storeClient: redis, keyPrefix, points, duration: windowS, insuranceLimiter: memory, rejectIfRedisNotReady: true }) : memory;
    limiters.set(name, found);
    return found;
  }

  return {
    store: redis ? 'redis' : 'memory',
    async hit(kind, key, points, windowS) {
      try {
        const res = await limiter(kind, points, windowS).consume(key, 1);
        return { ok: true, retryAfterMs: 0, remaining: res.remainingPoints };
      } catch (error) {
        if (error instanceof RateLimiterRes) return { ok: false, retryAfterMs: Math.max(1, error.msBeforeNext), remaining: 0 };
        throw error;
      }
    },
    async close() {
      if (redis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}
