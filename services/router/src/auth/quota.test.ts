/** The per-key quota, on a fake wall clock. */
import { describe, expect, it } from 'vitest';
import { Quota, periodEnd } from './quota.js';

const NOV_27 = Date.UTC(2026, 10, 27, 14, 30);

describe('periodEnd', () => {
  it('ends minutes, hours and days on UTC boundaries', () => {
    expect(periodEnd('minute', NOV_27 + 5_000)).toBe(Date.UTC(2026, 10, 27, 14, 31));
    expect(periodEnd('hour', NOV_27)).toBe(Date.UTC(2026, 10, 27, 15));
    expect(periodEnd('day', NOV_27)).toBe(Date.UTC(2026, 10, 28));
  });

  it('ends a month on the first of the next, across a year', () => {
    expect(periodEnd('month', NOV_27)).toBe(Date.UTC(2026, 11, 1));
    expect(periodEnd('month', Date.UTC(2026, 11, 31, 23))).toBe(Date.UTC(2027, 0, 1));
  });
});

describe('Quota', () => {
  it('refuses the request after the last one allowed, saying which limit and when it resets', () => {
    const quota = new Quota({ requests: 2, period: 'day' }, () => NOV_27);
    expect(quota.tryCharge(1)).toBeUndefined();
    expect(quota.tryCharge(1)).toBeUndefined();
    expect(quota.tryCharge(1)).toEqual({ measure: 'requests', limit: 2, period: 'day', resetsAtMs: Date.UTC(2026, 10, 28) });
  });

  it('counts items by the batch: a request that would pass the item limit is refused and not counted', () => {
    const quota = new Quota({ items: 10, period: 'hour' }, () => NOV_27);
    expect(quota.tryCharge(8)).toBeUndefined();
    expect(quota.tryCharge(3)).toMatchObject({ measure: 'items', limit: 10 });
    expect(quota.tryCharge(2)).toBeUndefined();
    expect(quota.tryCharge(1)).toMatchObject({ measure: 'items' });
  });

  it('starts counting again when the period ends', () => {
    let now = NOV_27;
    const quota = new Quota({ requests: 1, period: 'day' }, () => now);
    expect(quota.tryCharge(1)).toBeUndefined();
    expect(quota.tryCharge(1)).toBeDefined();
    now = Date.UTC(2026, 10, 28);
    expect(quota.tryCharge(1)).toBeUndefined();
    expect(quota.tryCharge(1)).toMatchObject({ resetsAtMs: Date.UTC(2026, 10, 29) });
  });

  it('counts a request refused for its items against neither measure', () => {
    const quota = new Quota({ requests: 2, items: 4, period: 'minute' }, () => NOV_27);
    expect(quota.tryCharge(5)).toMatchObject({ measure: 'items' });
    expect(quota.tryCharge(2)).toBeUndefined();
    expect(quota.tryCharge(2)).toBeUndefined();
    expect(quota.tryCharge(0)).toMatchObject({ measure: 'requests' });
  });
});
