// The channel guards in /metrics: breaker state (0 closed, 1 half-open, 2 open), calls
// in flight and waiting per channel, and calls by outcome.
import client from 'prom-client';
import type { CallOutcome, GuardedAdapter } from './guard.ts';

const STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

export function channelGuardMetrics(registry: client.Registry, adapters: () => GuardedAdapter[]) {
  new client.Gauge({
    name: 'custos_channel_breaker_state', help: 'Circuit breaker per channel: 0 closed, 1 half-open, 2 open', labelNames: ['if_code'] as const, registers: [registry],
    collect() { for (const a of adapters()) this.set({ if_code: a.ifCode }, STATE_VALUE[a.guard.state()]); },
  });
  new client.Gauge({
    name: 'custos_channel_in_flight', help: 'Channel calls running now', labelNames: ['if_code'] as const, registers: [registry],
    collect() { for (const a of adapters()) this.set({ if_code: a.ifCode }, a.guard.inFlight()); },
  });
  new client.Gauge({
    name: 'custos_channel_queued', help: 'Channel calls waiting for a slot (concurrency bound)', labelNames: ['if_code'] as const, registers: [registry],
    collect() { for (const a of adapters()) this.set({ if_code: a.ifCode }, a.guard.queued()); },
  });
  const calls = new client.Counter({
    name: 'custos_channel_calls_total', help: 'Channel calls by outcome (rejected_* were never sent)', labelNames: ['if_code', 'outcome'] as const, registers: [registry],
  });
  return (ifCode: string, outcome: CallOutcome) => calls.inc({ if_code: ifCode, outcome });
}
