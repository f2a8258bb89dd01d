/** The per-key rate limit, on a fake clock. */
import { describe, expect, it } from 'vitest';
import { TokenBucket } from './token-bucket.js';

function takes(bucket: TokenBucket, tries: number): number {
  let taken = 0;
  for (let i = 0; i < tries; i++) if (bucket.tryTake()) taken++;
  return taken;
}

describe('TokenBucket', () => {
  it('lets a full burst through at once, then refuses', () => {
    const bucket = new TokenBucket(10, 20, () => 0);
    expect(takes(bucket, 25)).toBe(20);
  });

  it('refills at its rate: 10 per second gives one more request every 100 ms', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 5, () => now);
    expect(takes(bucket, 5)).toBe(5);
    now = 99;
    expect(bucket.tryTake()).toBe(false);
    now = 100;
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    now = 1100;
    expect(takes(bucket, 20)).toBe(5);
  });

  it('holds no more than its burst after a long quiet spell', () => {
    let now = 0;
    const bucket = new TokenBucket(100, 3, () => now);
    now = 3_600_000;
    expect(takes(bucket, 10)).toBe(3);
  });

  it('refills nothing when the clock steps back', () => {
    let now = 1000;
    const bucket = new TokenBucket(1, 1, () => now);
    expect(bucket.tryTake()).toBe(true);
    now = 0;
    expect(bucket.tryTake()).toBe(false);
    now = 1000;
    expect(bucket.tryTake()).toBe(true);
  });
});
