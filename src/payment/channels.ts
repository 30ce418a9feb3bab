// The channel registry: adapters by ifCode, and routing with failover — a channel
// whose circuit breaker is open (channel/guard.ts) is skipped, and one that just
// failed (ChannelUnavailable) or whose health check fails is tried after the route's
// fallback channel for a while. When every channel of the route is open, routing
// refuses at once (503 CHANNEL_UNAVAILABLE) instead of piling calls up.
import type { ChannelAdapter } from '../channel/contract.ts';
import { AppError } from '../platform/errors.ts';

const UNHEALTHY_FOR_MS = 15_000;
const HEALTH_CACHE_MS = 5_000;
/** Retry-After when every channel of a route is open (about a breaker's half-open probe). */
const ALL_OPEN_RETRY_AFTER_S = 5;

export function allChannelsOpen(codes: string[]): AppError {
  const error = new AppError('CHANNEL_UNAVAILABLE', 503,
    `支付渠道 ${codes.join('、')} 暂时熔断或繁忙，请稍后用同一商户订单号重试 / every channel of this route (${codes.join(', ')}) is paused after failures (circuit open) or saturated; retry later with the same mchOrderNo`);
  return Object.assign(error, { retryAfterS: ALL_OPEN_RETRY_AFTER_S });
}

export type Channels = ReturnType<typeof createChannels>;

export function createChannels(adapters: ChannelAdapter[], defaultIfCode: string) {
  const byCode = new Map(adapters.map((a) => [a.ifCode, a]));
  const downUntil = new Map<string, number>();
  const healthCache = new Map<string, { ok: boolean; until: number }>();

  async function healthy(ifCode: string): Promise<boolean> {
    if ((downUntil.get(ifCode) ?? 0) > Date.now()) return false;
    const cached = healthCache.get(ifCode);
    if (cached && cached.until > Date.now()) return cached.ok;
    const adapter = byCode.get(ifCode);
    const ok = adapter ? await adapter.health() : false;
    healthCache.set(ifCode, { ok, until: Date.now() + HEALTH_CACHE_MS });
    return ok;
  }

  return {
    defaultIfCode,
    get(ifCode: string): ChannelAdapter | undefined {
      return byCode.get(ifCode);
    },
    list(): ChannelAdapter[] {
      return [...byCode.values()];
    },
    /**
     * The route's channels to try, in order: those whose breaker is not open, the
     * healthy one first (the primary when both or neither are). Empty when none is
     * known; throws 503 CHANNEL_UNAVAILABLE when every known one is open.
     */
    async candidates(primary: string, fallback: string | null): Promise<ChannelAdapter[]> {
      const known = [...new Set([primary, fallback ?? primary])].map((c) => byCode.get(c)).filter((a): a is ChannelAdapter => a !== undefined);
      const usable = known.filter((a) => !a.available || a.available());
      if (known.length > 0 && usable.length === 0) throw allChannelsOpen(known.map((a) => a.ifCode));
      if (usable.length < 2 || (await healthy(usable[0].ifCode))) return usable;
      if (await healthy(usable[1].ifCode)) return [usable[1], usable[0]];
      return usable;
    },
    markDown(ifCode: string): void {
      downUntil.set(ifCode, Date.now() + UNHEALTHY_FOR_MS);
      healthCache.delete(ifCode);
    },
  };
}
