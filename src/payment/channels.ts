// The channel registry: adapters by ifCode, and routing with failover — a channel
// that just failed (ChannelUnavailable) or whose health check fails is skipped for a
// while in favour of the route's fallback channel.
import type { ChannelAdapter } from '../channel/contract.ts';

const UNHEALTHY_FOR_MS = 15_000;
const HEALTH_CACHE_MS = 5_000;

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
    /** The first healthy of the route's channel and its fallback (the primary when neither is). */
    async pick(primary: string, fallback: string | null): Promise<ChannelAdapter | undefined> {
      if (!fallback || (await healthy(primary))) return byCode.get(primary);
      if (await healthy(fallback)) return byCode.get(fallback);
      return byCode.get(primary);
    },
    markDown(ifCode: string): void {
      downUntil.set(ifCode, Date.now() + UNHEALTHY_FOR_MS);
      healthCache.delete(ifCode);
    },
  };
}
