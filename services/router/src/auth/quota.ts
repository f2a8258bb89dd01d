/**
 * A key's quota: at most so many requests and/or items in each calendar period (UTC), both
 * counted from the period's start and reset when it ends. Fixed periods, not sliding ones,
 * so a refused client can be told exactly when it may call again.
 */
import type { Clock } from './token-bucket.js';

export const QUOTA_PERIODS = ['minute', 'hour', 'day', 'month'] as const;
export type QuotaPeriod = (typeof QUOTA_PERIODS)[number];

export interface QuotaLimits {
  requests?: number;
  items?: number;
  period: QuotaPeriod;
}

/** What a refused request ran into. */
export interface QuotaExceeded {
  measure: 'requests' | 'items';
  limit: number;
  period: QuotaPeriod;
  /** When the period ends and the counts start again (ms since the epoch). */
  resetsAtMs: number;
}

const FIXED_MS: Record<Exclude<QuotaPeriod, 'month'>, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** The end of the period that holds `nowMs` (UTC; months by the calendar). */
export function periodEnd(period: QuotaPeriod, nowMs: number): number {
  if (period === 'month') {
    const now = new Date(nowMs);
    return Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  }
  const length = FIXED_MS[period];
  return (Math.floor(nowMs / length) + 1) * length;
}

export class Quota {
  private requests = 0;
  private items = 0;
  private resetsAtMs: number;

  /** Wall-clock time: periods are calendar periods. */
  constructor(
    readonly limits: QuotaLimits,
    private readonly now: Clock = Date.now,
  ) {
    this.resetsAtMs = periodEnd(limits.period, now());
  }

  /** Counts one request of `items` items, or says which limit it would pass (nothing counted then). */
  tryCharge(items: number): QuotaExceeded | undefined {
    const now = this.now();
    if (now >= this.resetsAtMs) {
      this.requests = 0;
      this.items = 0;
      this.resetsAtMs = periodEnd(this.limits.period, now);
    }
    const { requests, items: itemLimit, period } = this.limits;
    if (requests !== undefined && this.requests + 1 > requests) return { measure: 'requests', limit: requests, period, resetsAtMs: this.resetsAtMs };
    if (itemLimit !== undefined && this.items + items > itemLimit) return { measure: 'items', limit: itemLimit, period, resetsAtMs: this.resetsAtMs };
    this.requests += 1;
    this.items += items;
    return undefined;
  }
}
