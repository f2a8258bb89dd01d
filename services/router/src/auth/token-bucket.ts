/**
 * A key's rate limit: a token bucket that holds up to `burst` requests and refills at
 * `perSecond`, so a key may send a burst after a quiet spell and `perSecond` on average.
 */

/** Milliseconds from a monotonic source; tests pass a fake one. */
export type Clock = () => number;

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    private readonly now: Clock = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Takes one token; false when the bucket is empty (nothing is taken then). */
  tryTake(): boolean {
    const now = this.now();
    // A clock that steps back refills nothing rather than draining the bucket.
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
