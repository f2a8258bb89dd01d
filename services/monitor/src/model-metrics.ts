/**
 * What the monitor knows about each model version, built from prediction records:
 * counters and histograms for Prometheus, exact recent percentiles for GetModelStats.
 * All of it is saved in the monitor's snapshot; the percentile windows only when the
 * snapshot still fits one NATS message with them, else they are refilled from the stream's
 * recent records after a restart (see prediction-consumer.ts).
 */
import { Status } from '@infermesh/grpc';
import { UNKNOWN, type SeriesLabels } from './known-models.js';
import { BucketCounts, PrometheusText, type Labels } from './prometheus-text.js';
import { SlidingWindow, type Percentiles } from './sliding-window.js';

/** 0.5 ms .. 10 s: a small tabular model answers in well under a millisecond, a cold GPU batch in seconds. */
export const DURATION_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Powers of two, as dynamic batchers form batches. */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export interface VersionStats {
  model: string;
  version: string;
  requestCount: number;
  errorCount: number;
  items: number;
  lastRequestMs: number;
  latencyMs: Percentiles;
  queueMs: Percentiles;
  computeMs: Percentiles;
}

/** One request as a record told it, after the checks in record-checks.ts. */
export interface Observation {
  statusCode: Status;
  items: number;
  latencyUs: number;
  queueUs: number;
  computeUs: number;
  batchSize: number;
  /** When the router answered (never later than the monitor's now), so a replayed sample ages as the original did. */
  atMs: number;
}

export interface ModelMetricsOptions {
  /** Samples kept per quantity and version for the percentiles. */
  windowSize?: number;
  /** Samples older than this leave the percentiles. */
  windowMaxAgeMs?: number;
  /** Series (model versions) at most; records of a version beyond it count under `_unknown`. */
  maxSeries?: number;
  now?: () => number;
}

/** The saved form of one series. */
export interface SavedSeries {
  model: string;
  version: string;
  requests: number;
  errors: number;
  items: number;
  lastRequestMs: number;
  codes: Record<string, number>;
  duration: { counts: number[]; sum: number };
  queue: { counts: number[]; sum: number };
  compute: { counts: number[]; sum: number };
  batch: { counts: number[]; sum: number };
  /** SlidingWindow.samples of each window, when saved. */
  windows?: { latency: number[]; queue: number[]; compute: number[] };
}

interface Series {
  labels: SeriesLabels;
  requests: number;
  errors: number;
  items: number;
  lastRequestMs: number;
  codes: Map<string, number>;
  duration: BucketCounts;
  queueDuration: BucketCounts;
  computeDuration: BucketCounts;
  batchSize: BucketCounts;
  latency: SlidingWindow;
  queue: SlidingWindow;
  compute: SlidingWindow;
}

const key = ({ model, version }: SeriesLabels) => `${model}\u0000${version}`;

export class ModelMetrics {
  private readonly series = new Map<string, Series>();
  private readonly windowSize: number;
  readonly windowMaxAgeMs: number;
  readonly maxSeries: number;
  private readonly now: () => number;

  constructor(options: ModelMetricsOptions = {}) {
    this.windowSize = options.windowSize ?? 2048;
    this.windowMaxAgeMs = options.windowMaxAgeMs ?? 600_000;
    this.maxSeries = options.maxSeries ?? 500;
    this.now = options.now ?? Date.now;
  }

  /** Counts one request under `labels`. Every call counts: telling a repeated message from a new one is the consumer's job. */
  record(labels: SeriesLabels, o: Observation): void {
    const series = this.seriesOf(labels);
    const ok = o.statusCode === Status.OK;
    series.requests += 1;
    if (!ok) series.errors += 1;
    series.items += o.items;
    series.lastRequestMs = Math.max(series.lastRequestMs, o.atMs);
    const code = (Status[o.statusCode] as string | undefined) ?? String(o.statusCode);
    series.codes.set(code, (series.codes.get(code) ?? 0) + 1);
    series.duration.observe(o.latencyUs / 1e6);
    if (ok) {
      series.queueDuration.observe(o.queueUs / 1e6);
      series.computeDuration.observe(o.computeUs / 1e6);
      if (o.batchSize > 0) series.batchSize.observe(o.batchSize);
    }
    this.sample(series, o);
  }

  /**
   * Puts the samples of a request counted before the last snapshot back into the
   * percentile windows, counting nothing: after a restart the windows are refilled from
   * the stream's recent records. A series the snapshot did not have is left alone.
   */
  recall(labels: SeriesLabels, o: Observation): void {
    const series = this.series.get(key(labels));
    if (series) this.sample(series, o);
  }

  /** Every model with records, sorted. */
  models(): string[] {
    return [...new Set([...this.series.values()].map((s) => s.labels.model))].sort();
  }

  /** The versions of `model` (only `version` when given) with records, sorted; empty when none. */
  stats(model: string, version?: string): VersionStats[] {
    const now = this.now();
    return [...this.series.values()]
      .filter((s) => s.labels.model === model && (version === undefined || s.labels.version === version))
      .sort((a, b) => (a.labels.version < b.labels.version ? -1 : a.labels.version > b.labels.version ? 1 : 0))
      .map((s) => ({
        model,
        version: s.labels.version,
        requestCount: s.requests,
        errorCount: s.errors,
        items: s.items,
        lastRequestMs: s.lastRequestMs,
        latencyMs: s.latency.percentiles(now),
        queueMs: s.queue.percentiles(now),
        computeMs: s.compute.percentiles(now),
      }));
  }

  get seriesCount(): number {
    return this.series.size;
  }

  writePrometheus(out: PrometheusText): void {
    const all = [...this.series.values()].sort((a, b) => (key(a.labels) < key(b.labels) ? -1 : 1));
    const labelsOf = (s: Series): Labels => [['model', s.labels.model], ['version', s.labels.version]];
    out.family('infermesh_requests_total', 'counter', 'Inference requests answered by the router, by gRPC status code.');
    for (const s of all) for (const [code, n] of [...s.codes].sort()) out.sample('infermesh_requests_total', [...labelsOf(s), ['code', code]], n);
    out.family('infermesh_items_total', 'counter', 'Rows (leading dimension) in inference requests.');
    for (const s of all) if (s.items > 0) out.sample('infermesh_items_total', labelsOf(s), s.items);
    const histograms = [
      ['infermesh_request_duration_seconds', 'End-to-end request duration at the router.', (s: Series) => s.duration],
      ['infermesh_queue_duration_seconds', 'Time a successful request waited in the worker queue.', (s: Series) => s.queueDuration],
      ['infermesh_compute_duration_seconds', 'Model execution time of a successful request (its whole batch).', (s: Series) => s.computeDuration],
      ['infermesh_batch_size', 'Requests in the worker batch that served a successful request.', (s: Series) => s.batchSize],
    ] as const;
    for (const [name, help, of] of histograms) {
      out.family(name, 'histogram', help);
      for (const s of all) if (of(s).count > 0) out.histogram(name, labelsOf(s), of(s));
    }
    // The same exact windows GetModelStats answers from, so a dashboard and the API agree.
    out.family('infermesh_request_latency_seconds', 'summary', 'End-to-end request latency at the router, recent quantiles (the window of GetModelStats).');
    const now = this.now();
    for (const s of all) {
      const p = s.latency.percentiles(now);
      for (const [q, v] of [['0.5', p.p50], ['0.9', p.p90], ['0.99', p.p99]] as const) out.sample('infermesh_request_latency_seconds', [['quantile', q], ...labelsOf(s)], v / 1000);
      out.sample('infermesh_request_latency_seconds_sum', labelsOf(s), s.duration.sum);
      out.sample('infermesh_request_latency_seconds_count', labelsOf(s), s.duration.count);
    }
  }

  /** The saved form of every series; with the windows' samples (as of `nowMs`) when `windows`. */
  save(windows: boolean, nowMs: number): SavedSeries[] {
    return [...this.series.values()].map((s) => ({
      model: s.labels.model,
      version: s.labels.version,
      requests: s.requests,
      errors: s.errors,
      items: s.items,
      lastRequestMs: s.lastRequestMs,
      codes: Object.fromEntries(s.codes),
      duration: s.duration.toJSON(),
      queue: s.queueDuration.toJSON(),
      compute: s.computeDuration.toJSON(),
      batch: s.batchSize.toJSON(),
      ...(windows ? { windows: { latency: s.latency.samples(nowMs), queue: s.queue.samples(nowMs), compute: s.compute.samples(nowMs) } } : {}),
    }));
  }

  /**
   * Takes the counts of a snapshot saved at `savedAtMs`, and the windows' samples when it
   * has them; returns whether it had them. Series past this monitor's bound are added to
   * `_unknown`, as their records would have been.
   */
  restore(saved: readonly SavedSeries[], savedAtMs: number): boolean {
    let withWindows = true;
    this.series.clear();
    for (const s of saved) {
      const series = this.seriesOf({ model: s.model, version: s.version });
      series.requests += s.requests;
      series.errors += s.errors;
      series.items += s.items;
      series.lastRequestMs = Math.max(series.lastRequestMs, s.lastRequestMs);
      for (const [code, n] of Object.entries(s.codes)) series.codes.set(code, (series.codes.get(code) ?? 0) + n);
      series.duration.add(s.duration);
      series.queueDuration.add(s.queue);
      series.computeDuration.add(s.compute);
      series.batchSize.add(s.batch);
      if (s.windows) {
        series.latency.restore(s.windows.latency, savedAtMs);
        series.queue.restore(s.windows.queue, savedAtMs);
        series.compute.restore(s.windows.compute, savedAtMs);
      } else withWindows = false;
    }
    return withWindows;
  }

  private sample(series: Series, o: Observation): void {
    series.latency.add(o.latencyUs / 1000, o.atMs);
    // A failed request may never have reached a worker; its zeros would drag the
    // queue and compute percentiles down, so only successes describe the workers.
    if (o.statusCode === Status.OK) {
      series.queue.add(o.queueUs / 1000, o.atMs);
      series.compute.add(o.computeUs / 1000, o.atMs);
    }
  }

  private seriesOf(labels: SeriesLabels): Series {
    // Past the bound, new versions share one series: `_unknown` is always allowed, so the bound is maxSeries + 1.
    const wanted = this.series.has(key(labels)) || this.series.size < this.maxSeries ? labels : { model: UNKNOWN, version: UNKNOWN };
    let series = this.series.get(key(wanted));
    if (!series) {
      const window = () => new SlidingWindow(this.windowSize, this.windowMaxAgeMs);
      series = {
        labels: wanted, requests: 0, errors: 0, items: 0, lastRequestMs: 0, codes: new Map(),
        duration: new BucketCounts(DURATION_BUCKETS_SECONDS), queueDuration: new BucketCounts(DURATION_BUCKETS_SECONDS),
        computeDuration: new BucketCounts(DURATION_BUCKETS_SECONDS), batchSize: new BucketCounts(BATCH_SIZE_BUCKETS),
        latency: window(), queue: window(), compute: window(),
      };
      this.series.set(key(wanted), series);
    }
    return series;
  }
}
