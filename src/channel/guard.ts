// Flow control in front of every channel adapter: a timeout on every call, a bound
// on concurrent calls per channel (with a bounded wait queue), and a circuit breaker
// (opossum) that opens when more than half of the last calls in its rolling window
// failed (at least `breakerVolume` calls), fails fast while open, lets one probe
// through after `breakerResetMs` (half-open) and closes when it succeeds. Routing
// reads `available()` to skip an open channel in favour of the route's fallback.
// A call refused here (open breaker, full queue) was never sent to the channel: it
// throws ChannelRejected, which routing may safely retry at another channel.
import CircuitBreaker from 'opossum';
import { ChannelUnavailable, type ChannelAdapter } from './contract.ts';

export interface ChannelGuardOptions {
  timeoutMs: number;
  concurrency: number;
  queueMax: number;
  breakerVolume: number;
  breakerResetMs: number;
  breakerWindowMs: number;
}

export type BreakerState = 'closed' | 'half_open' | 'open';
export type CallOutcome = 'success' | 'failure' | 'timeout' | 'rejected_open' | 'rejected_busy';

/** Refused before anything was sent to the channel (open breaker or full queue). */
export class ChannelRejected extends ChannelUnavailable {
  readonly reason: 'open' | 'busy';
  constructor(ifCode: string, reason: 'open' | 'busy') {
    super(ifCode, reason === 'open' ? 'circuit breaker open' : 'too many calls in flight');
    this.name = 'ChannelRejected';
    this.reason = reason;
  }
}

export interface ChannelGuard {
  state(): BreakerState;
  inFlight(): number;
  queued(): number;
  shutdown(): void;
}

export type GuardedAdapter = ChannelAdapter & { readonly guard: ChannelGuard };

const BUCKETS = 10;

/** A counting semaphore with a bounded FIFO of waiters, each waiting at most `waitMs`. */
function bulkhead(ifCode: string, concurrency: number, queueMax: number, waitMs: number) {
  let inFlight = 0;
  const waiters: Array<{ grant: () => void; timer: NodeJS.Timeout }> = [];
  return {
    inFlight: () => inFlight,
    queued: () => waiters.length,
    async acquire(): Promise<void> {
      if (inFlight < concurrency) {
        inFlight += 1;
        return;
      }
      if (waiters.length >= queueMax) throw new ChannelRejected(ifCode, 'busy');
      await new Promise<void>((resolve, reject) => {
        const waiter = {
          grant: () => { clearTimeout(waiter.timer); resolve(); },
          timer: setTimeout(() => {
            const i = waiters.indexOf(waiter);
            if (i >= 0) waiters.splice(i, 1);
            reject(new ChannelRejected(ifCode, 'busy'));
          }, waitMs),
        };
        waiters.push(waiter);
      });
    },
    release(): void {
      const next = waiters.shift();
      if (next) next.grant(); // the slot passes on: inFlight stays
      else inFlight -= 1;
    },
  };
}

const countsAsFailure = (error: unknown) => error instanceof ChannelUnavailable || (error as { code?: string } | null)?.code === 'ETIMEDOUT';

export function guardAdapter(adapter: ChannelAdapter, options: ChannelGuardOptions, onCall?: (ifCode: string, outcome: CallOutcome) => void): GuardedAdapter {
  const ifCode = adapter.ifCode;
  const breaker = new CircuitBreaker((op: () => Promise<unknown>) => op(), {
    timeout: options.timeoutMs,
    errorThresholdPercentage: 50,
    volumeThreshold: options.breakerVolume,
    resetTimeout: options.breakerResetMs,
    rollingCountTimeout: options.breakerWindowMs,
    rollingCountBuckets: BUCKETS,
    // Only channel outages count: programming errors and refusals are not the channel's health.
    errorFilter: (error: unknown) => !countsAsFailure(error),
    name: ifCode,
  });
  const slots = bulkhead(ifCode, options.concurrency, options.queueMax, options.timeoutMs);
  const state = (): BreakerState => (breaker.opened ? 'open' : breaker.halfOpen ? 'half_open' : 'closed');

  async function run<T>(op: () => Promise<T>): Promise<T> {
    if (breaker.opened || (breaker.halfOpen && !breaker.pendingClose)) {
      onCall?.(ifCode, 'rejected_open');
      throw new ChannelRejected(ifCode, 'open');
    }
    try {
      await slots.acquire();
    } catch (error) {
      onCall?.(ifCode, 'rejected_busy');
      throw error;
    }
    try {
      const result = (await breaker.fire(op)) as T;
      onCall?.(ifCode, 'success');
      return result;
    } catch (error) {
      const code = (error as { code?: string } | null)?.code;
      if (code === 'EOPENBREAKER') {
        onCall?.(ifCode, 'rejected_open');
        throw new ChannelRejected(ifCode, 'open');
      }
      if (code === 'ETIMEDOUT') {
        onCall?.(ifCode, 'timeout');
        throw new ChannelUnavailable(ifCode, `no answer within ${options.timeoutMs} ms`);
      }
      onCall?.(ifCode, countsAsFailure(error) ? 'failure' : 'success');
      throw error;
    } finally {
      slots.release();
    }
  }

  return {
    ifCode,
    wayCodes: adapter.wayCodes,
    createOrder: (input) => run(() => adapter.createOrder(input)),
    queryOrder: (id) => run(() => adapter.queryOrder(id)),
    closeOrder: (id) => run(() => adapter.closeOrder(id)),
    refund: (input) => run(() => adapter.refund(input)),
    queryRefund: (id) => run(() => adapter.queryRefund(id)),
    transfer: (input) => run(() => adapter.transfer(input)),
    queryTransfer: (id) => run(() => adapter.queryTransfer(id)),
    // Local work (signature checks) and bulk files: not the breaker's business.
    parseNotification: (headers, rawBody) => adapter.parseNotification(headers, rawBody),
    notificationAck: () => adapter.notificationAck(),
    downloadStatement: (request) => adapter.downloadStatement(request),
    async health() {
      if (breaker.opened) return false;
      const timeout = new Promise<boolean>((resolve) => setTimeout(resolve, options.timeoutMs, false).unref());
      return Promise.race([adapter.health().catch(() => false), timeout]);
    },
    available: () => !breaker.opened && !(breaker.halfOpen && !breaker.pendingClose),
    guard: { state, inFlight: slots.inFlight, queued: slots.queued, shutdown: () => breaker.shutdown() },
  };
}
