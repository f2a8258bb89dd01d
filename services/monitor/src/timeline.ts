/**
 * What happened to each model version in the last hour, in 5 s buckets by record time:
 * requests, errors, items and a latency histogram. The alert rules read recent windows from
 * it ("p99 over the last minute"), the status page draws it.
 *
 * Why a histogram per bucket and not samples: a window's percentile must merge many
 * buckets, and histogram counts add exactly, in bounded memory whatever the request rate;
 * capped samples would keep the first requests of a busy bucket and drop the rest (or need
 * reservoir sampling, then sort thousands of numbers per rule and version every second).
 * The buckets are log-spaced, each 10 % wider than the one below (10 us to an hour in 207
 * buckets), so a percentile is known within 5 % of its value: plenty for a threshold, and
 * GetModelStats keeps its exact windows. A bucket stores only the latency buckets it saw,
 * as (index, count) pairs: a version's requests fall into a few dozen of them.
 *
 * Not in the monitor's snapshot (it would add up to 720 buckets per version to every
 * snapshot): after a restart it holds the records read since the snapshot (and, when the
 * snapshot came without its percentile windows, the last ten minutes read again through
 * MonitorState.recall), so alert windows fill up again over their length.
 */
import { UNKNOWN, type SeriesLabels } from './known-models.js';

export const TIMELINE_BUCKET_MS = 5000;
export const TIMELINE_KEEP_MS = 3600_000;
const SLOTS = TIMELINE_KEEP_MS / TIMELINE_BUCKET_MS;

/** Latency bucket i holds [MIN_US * GROWTH^i, MIN_US * GROWTH^(i+1)); below MIN_US counts in bucket 0. */
const GROWTH = 1.1;
const MIN_US = 10;
const MAX_US = 3600 * 1e6;
const LATENCY_BUCKETS = Math.ceil(Math.log(MAX_US / MIN_US) / Math.log(GROWTH)) + 1;

export interface TimelinePoint {
  /** The bucket's start. */
  atMs: number;
  requests: number;
  errors: number;
  items: number;
  p50Ms?: number;
  p99Ms?: number;
}

export interface TimelineWindow {
  requests: number;
  errors: number;
  /** Absent when the window holds no request. */
  p50Ms?: number;
  p99Ms?: number;
}

export interface TimelineOptions {
  /** Series (model versions) at most; the records of further versions count under `_unknown`, as in ModelMetrics. */
  maxSeries?: number;
  now?: () => number;
}

/** The latency histogram of one bucket: (latency bucket, count) pairs, in the order first seen. */
class SparseHistogram {
  private indexes = new Uint16Array(8);
  private counts = new Uint32Array(8);
  private size = 0;

  add(index: number): void {
    for (let i = 0; i < this.size; i++) {
      if (this.indexes[i] === index) {
        this.counts[i] += 1;
        return;
      }
    }
    if (this.size === this.indexes.length) {
      const indexes = new Uint16Array(this.size * 2);
      const counts = new Uint32Array(this.size * 2);
      indexes.set(this.indexes);
      counts.set(this.counts);
      this.indexes = indexes;
      this.counts = counts;
    }
    this.indexes[this.size] = index;
    this.counts[this.size] = 1;
    this.size += 1;
  }

  addTo(dense: Float64Array): void {
    for (let i = 0; i < this.size; i++) dense[this.indexes[i]] += this.counts[i];
  }

  clear(): void {
    this.size = 0;
  }
}

interface Bucket {
  /** The bucket's number (record time / TIMELINE_BUCKET_MS): which 5 s this slot holds now. */
  number: number;
  requests: number;
  errors: number;
  items: number;
  latency: SparseHistogram;
}

interface Series {
  labels: SeriesLabels;
  /** A ring: bucket n lives in slot n % SLOTS, allocated when first written. */
  slots: (Bucket | undefined)[];
  lastAtMs: number;
}

const key = ({ model, version }: SeriesLabels) => `${model}\u0000${version}`;

function latencyBucket(latencyUs: number): number {
  if (!(latencyUs > MIN_US)) return 0;
  return Math.min(LATENCY_BUCKETS - 1, Math.floor(Math.log(latencyUs / MIN_US) / Math.log(GROWTH)));
}

/** The geometric middle of a latency bucket, in ms: within 5 % of any latency in it. */
function bucketMiddleMs(index: number): number {
  return (MIN_US * GROWTH ** (index + 0.5)) / 1000;
}

/** Nearest-rank percentile of a dense histogram holding `total` counts. */
function percentileOf(dense: Float64Array, total: number, p: number): number {
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (let i = 0; i < dense.length; i++) {
    seen += dense[i];
    if (seen >= rank) return bucketMiddleMs(i);
  }
  return bucketMiddleMs(dense.length - 1);
}

export class Timeline {
  private readonly versions = new Map<string, Series>();
  readonly maxSeries: number;
  private readonly now: () => number;
  /** Reused by every query: one evaluation reads many windows. */
  private readonly scratch = new Float64Array(LATENCY_BUCKETS);

  constructor(options: TimelineOptions = {}) {
    this.maxSeries = options.maxSeries ?? 500;
    this.now = options.now ?? Date.now;
  }

  /**
   * One request at its record time. A record older than the hour the series holds beside
   * newer ones (a replay reaching far back) is not kept.
   */
  observe(labels: SeriesLabels, atMs: number, latencyUs: number, ok: boolean, items: number): void {
    const series = this.seriesOf(labels);
    const number = Math.floor(atMs / TIMELINE_BUCKET_MS);
    const slot = ((number % SLOTS) + SLOTS) % SLOTS;
    let bucket = series.slots[slot];
    if (bucket && bucket.number > number) return;
    if (!bucket) {
      bucket = { number, requests: 0, errors: 0, items: 0, latency: new SparseHistogram() };
      series.slots[slot] = bucket;
    } else if (bucket.number < number) {
      bucket.number = number;
      bucket.requests = 0;
      bucket.errors = 0;
      bucket.items = 0;
      bucket.latency.clear();
    }
    bucket.requests += 1;
    if (!ok) bucket.errors += 1;
    bucket.items += items;
    bucket.latency.add(latencyBucket(latencyUs));
    series.lastAtMs = Math.max(series.lastAtMs, atMs);
  }

  /**
   * Requests, errors and latency percentiles over the last `windowMs` before `nowMs`. The
   * window rounds out to whole buckets: it starts at the start of the bucket holding
   * `nowMs - windowMs`.
   */
  window(labels: SeriesLabels, windowMs: number, nowMs: number = this.now()): TimelineWindow {
    const series = this.versions.get(key(labels));
    const result: TimelineWindow = { requests: 0, errors: 0 };
    if (!series) return result;
    const dense = this.scratch.fill(0);
    for (const bucket of this.buckets(series, nowMs - windowMs, nowMs)) {
      result.requests += bucket.requests;
      result.errors += bucket.errors;
      bucket.latency.addTo(dense);
    }
    if (result.requests > 0) {
      result.p50Ms = percentileOf(dense, result.requests, 0.5);
      result.p99Ms = percentileOf(dense, result.requests, 0.99);
    }
    return result;
  }

  /** The buckets with records from the one holding `sinceMs` to now, oldest first; buckets without records are left out. */
  points(labels: SeriesLabels, sinceMs: number): TimelinePoint[] {
    const series = this.versions.get(key(labels));
    if (!series) return [];
    return this.buckets(series, sinceMs, this.now()).map((bucket) => {
        const dense = this.scratch.fill(0);
        bucket.latency.addTo(dense);
        return {
          atMs: bucket.number * TIMELINE_BUCKET_MS, requests: bucket.requests, errors: bucket.errors, items: bucket.items,
          p50Ms: percentileOf(dense, bucket.requests, 0.5), p99Ms: percentileOf(dense, bucket.requests, 0.99),
        };
      });
  }

  /** Every model version with records, sorted by model then version. */
  series(): SeriesLabels[] {
    return [...this.versions.values()]
      .map((s) => ({ ...s.labels }))
      .sort((a, b) => (a.model !== b.model ? (a.model < b.model ? -1 : 1) : a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  }

  /** The record time of the version's latest request (0 when none). */
  lastRecordMs(labels: SeriesLabels): number {
    return this.versions.get(key(labels))?.lastAtMs ?? 0;
  }

  /** The buckets holding records in [fromMs, toMs], oldest first, rounded out to whole buckets, within the hour kept. */
  private buckets(series: Series, fromMs: number, toMs: number): Bucket[] {
    const last = Math.floor(toMs / TIMELINE_BUCKET_MS);
    const first = Math.max(Math.floor(fromMs / TIMELINE_BUCKET_MS), last - SLOTS + 1);
    const found: Bucket[] = [];
    for (let number = first; number <= last; number++) {
      const bucket = series.slots[((number % SLOTS) + SLOTS) % SLOTS];
      if (bucket && bucket.number === number && bucket.requests > 0) found.push(bucket);
    }
    return found;
  }

  private seriesOf(labels: SeriesLabels): Series {
    // Past the bound, new versions share one series: the bound is maxSeries + 1, as in ModelMetrics.
    const wanted = this.versions.has(key(labels)) || this.versions.size < this.maxSeries ? labels : { model: UNKNOWN, version: UNKNOWN };
    let series = this.versions.get(key(wanted));
    if (!series) {
      series = { labels: { model: wanted.model, version: wanted.version }, slots: new Array<Bucket | undefined>(SLOTS).fill(undefined), lastAtMs: 0 };
      this.versions.set(key(wanted), series);
    }
    return series;
  }
}
