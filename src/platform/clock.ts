// Time as nanoseconds since the epoch, injectable so tests can move it.
export interface Clock {
  nowNs(): bigint;
}

export const systemClock: Clock = { nowNs: () => BigInt(Date.now()) * 1_000_000n };

/** A clock that only moves when told (tests). */
export class ManualClock implements Clock {
  private ns: bigint;
  constructor(startNs: bigint = 1_790_000_000_000_000_000n) {
    this.ns = startNs;
  }
  nowNs(): bigint {
    return this.ns;
  }
  advanceSeconds(seconds: number): void {
    this.ns += BigInt(seconds) * 1_000_000_000n;
  }
}

export const nsToIso = (ns: bigint): string => new Date(Number(ns / 1_000_000n)).toISOString();
