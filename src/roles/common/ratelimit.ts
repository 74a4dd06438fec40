// Failure messages are rate-limited per destination (DESIGN §4): a token bucket each, so a flood
// of bad packets from one sender cannot turn an SGW into an ICMP amplifier.
import type { Clock } from '../../net/types.js';

export interface RateLimitOptions {
  /** Messages allowed in a burst (default 4). */
  burst?: number;
  /** Tokens refilled per second (default 10). */
  perSecond?: number;
  /** Destinations remembered; the oldest is forgotten first (default 4096). */
  maxDestinations?: number;
}

export class RateLimiter {
  private readonly burst: number;
  private readonly perMs: number;
  private readonly maxDestinations: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly clock: Clock, options: RateLimitOptions = {}) {
    this.burst = options.burst ?? 4;
    this.perMs = (options.perSecond ?? 10) / 1000;
    this.maxDestinations = options.maxDestinations ?? 4096;
  }

  /** Takes a token for `destination`; false when its bucket is empty. */
  allow(destination: string): boolean {
    const now = this.clock.now();
    let bucket = this.buckets.get(destination);
    if (bucket) this.buckets.delete(destination);
    else bucket = { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.perMs);
    bucket.at = now;
    this.buckets.set(destination, bucket);
    if (this.buckets.size > this.maxDestinations) this.buckets.delete(this.buckets.keys().next().value!);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
