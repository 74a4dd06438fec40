// Failure messages and discovery answers are rate-limited per destination and overall (DESIGN §4):
// a token bucket each destination, so a flood of bad packets from one sender cannot turn a node into
// an amplifier, and one global bucket, so a flood from spoofed sources (a new "destination" each
// packet) cannot either.
import type { Clock } from '../../net/types.js';

export interface RateLimitOptions {
  /** Messages allowed in a burst to one destination (default 4). */
  burst?: number;
  /** Tokens refilled per second for one destination (default 10). */
  perSecond?: number;
  /** Messages allowed in a burst to all destinations together (default 16). */
  globalBurst?: number;
  /** Tokens refilled per second for all destinations together (default 20). */
  globalPerSecond?: number;
  /** Destinations remembered; the oldest is forgotten first (default 4096). */
  maxDestinations?: number;
}

/** Why a message may not go: its destination's bucket or the global one is empty. */
export type RateVerdict = 'allowed' | 'rate_limited' | 'global_rate_limited';

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly burst: number;
  private readonly perMs: number;
  private readonly globalBurst: number;
  private readonly globalPerMs: number;
  private readonly maxDestinations: number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly global: Bucket;

  constructor(
    private readonly clock: Clock,
    options: RateLimitOptions = {},
  ) {
    this.burst = options.burst ?? 4;
    this.perMs = (options.perSecond ?? 10) / 1000;
    this.globalBurst = options.globalBurst ?? 16;
    this.globalPerMs = (options.globalPerSecond ?? 20) / 1000;
    this.maxDestinations = options.maxDestinations ?? 4096;
    this.global = { tokens: this.globalBurst, at: clock.now() };
  }

  /** Takes a token for `destination` and one from the global budget; false when either is empty. */
  allow(destination: string): boolean {
    return this.take(destination) === 'allowed';
  }

  /** Like allow, saying which budget ran out; a refused message spends no token. */
  take(destination: string): RateVerdict {
    const now = this.clock.now();
    let bucket = this.buckets.get(destination);
    if (bucket) this.buckets.delete(destination);
    else bucket = { tokens: this.burst, at: now };
    refill(bucket, now, this.burst, this.perMs);
    this.buckets.set(destination, bucket);
    if (this.buckets.size > this.maxDestinations) this.buckets.delete(this.buckets.keys().next().value!);
    refill(this.global, now, this.globalBurst, this.globalPerMs);
    if (bucket.tokens < 1) return 'rate_limited';
    if (this.global.tokens < 1) return 'global_rate_limited';
    bucket.tokens -= 1;
    this.global.tokens -= 1;
    return 'allowed';
  }
}

function refill(bucket: Bucket, now: number, burst: number, perMs: number): void {
  bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) * perMs);
  bucket.at = now;
}
