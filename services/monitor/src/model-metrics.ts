/**
 * What the monitor knows about each model version, built from prediction records:
 * Prometheus series for scraping, and exact recent percentiles for GetModelStats.
 */
import { Counter, Histogram, Registry, Summary } from 'prom-client';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
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

/** `invalid`: a record without a model, which no series could hold. */
export type RecordOutcome = 'counted' | 'invalid';

export interface ModelMetricsOptions {
  /** Samples kept per quantity and version for the percentiles. */
  windowSize?: number;
  /** Samples older than this leave the percentiles (the Summary's maxAge, so both agree on "recent"). */
  windowMaxAgeMs?: number;
  now?: () => number;
}

interface Series {
  requests: number;
  errors: number;
  items: number;
  lastRequestMs: number;
  latency: SlidingWindow;
  queue: SlidingWindow;
  compute: SlidingWindow;
}

const LABELS = ['model', 'version'] as const;

export class ModelMetrics {
  /** Private, so tests and embedders can run several monitors in one process. */
  readonly registry = new Registry();
  private readonly series = new Map<string, Map<string, Series>>();
  private readonly windowSize: number;
  private readonly windowMaxAgeMs: number;
  private readonly now: () => number;

  private readonly requestsTotal = new Counter({ name: 'infermesh_requests_total', help: 'Inference requests answered by the router, by gRPC status code.', labelNames: [...LABELS, 'code'], registers: [this.registry] });
  private readonly itemsTotal = new Counter({ name: 'infermesh_items_total', help: 'Rows (leading dimension) in inference requests.', labelNames: LABELS, registers: [this.registry] });
  private readonly duration = new Histogram({ name: 'infermesh_request_duration_seconds', help: 'End-to-end request duration at the router.', labelNames: LABELS, buckets: DURATION_BUCKETS_SECONDS, registers: [this.registry] });
  private readonly queueDuration = new Histogram({ name: 'infermesh_queue_duration_seconds', help: 'Time a successful request waited in the worker queue.', labelNames: LABELS, buckets: DURATION_BUCKETS_SECONDS, registers: [this.registry] });
  private readonly computeDuration = new Histogram({ name: 'infermesh_compute_duration_seconds', help: 'Model execution time of a successful request (its whole batch).', labelNames: LABELS, buckets: DURATION_BUCKETS_SECONDS, registers: [this.registry] });
  private readonly batchSize = new Histogram({ name: 'infermesh_batch_size', help: 'Requests in the worker batch that served a successful request.', labelNames: LABELS, buckets: BATCH_SIZE_BUCKETS, registers: [this.registry] });
  private readonly dropped = new Counter({ name: 'infermesh_monitor_records_dropped_total', help: 'Prediction records not counted: records of a redelivered message counted at an earlier delivery, or records without a model.', labelNames: ['reason'], registers: [this.registry] });
  readonly latencySummary: Summary<'model' | 'version'>;

  constructor(options: ModelMetricsOptions = {}) {
    this.windowSize = options.windowSize ?? 2048;
    this.windowMaxAgeMs = options.windowMaxAgeMs ?? 600_000;
    this.now = options.now ?? Date.now;
    this.latencySummary = new Summary({
      name: 'infermesh_request_latency_seconds',
      help: 'End-to-end request latency at the router, recent quantiles.',
      labelNames: LABELS,
      percentiles: [0.5, 0.9, 0.99],
      maxAgeSeconds: this.windowMaxAgeMs / 1000,
      ageBuckets: 5,
      registers: [this.registry],
    });
  }

  /**
   * Counts one request. Every call counts, whatever its request id (clients choose ids and
   * may reuse them): telling a redelivered message from a new one is the consumer's job.
   */
  record(record: PredictionRecord__Output): RecordOutcome {
    if (!record.model) {
      this.dropped.inc({ reason: 'invalid' });
      return 'invalid';
    }
    const now = this.now();
    const labels = { model: record.model, version: record.version };
    const ok = record.statusCode === Status.OK;
    const series = this.seriesOf(record.model, record.version);
    const latencyUs = micros(record.latencyUs);

    series.requests += 1;
    if (!ok) series.errors += 1;
    series.items += record.items;
    series.lastRequestMs = Math.max(series.lastRequestMs, Number(record.timestampMs) || now);
    series.latency.add(latencyUs / 1000, now);
    this.requestsTotal.inc({ ...labels, code: codeName(record.statusCode) });
    if (record.items > 0) this.itemsTotal.inc(labels, record.items);
    this.duration.observe(labels, latencyUs / 1e6);
    this.latencySummary.observe(labels, latencyUs / 1e6);

    // A failed request may never have reached a worker; its zeros would drag the
    // queue and compute percentiles down, so only successes describe the workers.
    if (ok) {
      const queueUs = micros(record.queueUs);
      const computeUs = micros(record.computeUs);
      series.queue.add(queueUs / 1000, now);
      series.compute.add(computeUs / 1000, now);
      this.queueDuration.observe(labels, queueUs / 1e6);
      this.computeDuration.observe(labels, computeUs / 1e6);
      if (record.batchSize > 0) this.batchSize.observe(labels, record.batchSize);
    }
    return 'counted';
  }

  /** Notes `records` records of a redelivered message that were counted at an earlier delivery. */
  skipRedelivered(records: number): void {
    if (records > 0) this.dropped.inc({ reason: 'redelivered' }, records);
  }

  /** Every model with records, sorted. */
  models(): string[] {
    return [...this.series.keys()].sort();
  }

  /** The versions of `model` (only `version` when given) with records, sorted; empty when none. */
  stats(model: string, version?: string): VersionStats[] {
    const versions = this.series.get(model);
    if (!versions) return [];
    const names = version ? (versions.has(version) ? [version] : []) : [...versions.keys()].sort();
    const now = this.now();
    return names.map((name) => {
      const s = versions.get(name) as Series;
      return {
        model,
        version: name,
        requestCount: s.requests,
        errorCount: s.errors,
        items: s.items,
        lastRequestMs: s.lastRequestMs,
        latencyMs: s.latency.percentiles(now),
        queueMs: s.queue.percentiles(now),
        computeMs: s.compute.percentiles(now),
      };
    });
  }

  private seriesOf(model: string, version: string): Series {
    let versions = this.series.get(model);
    if (!versions) this.series.set(model, (versions = new Map()));
    let series = versions.get(version);
    if (!series) {
      const window = () => new SlidingWindow(this.windowSize, this.windowMaxAgeMs);
      series = { requests: 0, errors: 0, items: 0, lastRequestMs: 0, latency: window(), queue: window(), compute: window() };
      versions.set(version, series);
    }
    return series;
  }
}

/** int64 fields arrive as decimal strings (loader option longs: String). */
function micros(value: string): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** "OK", "NOT_FOUND", ...: what dashboards filter on; unknown codes keep their number. */
function codeName(code: number): string {
  return (Status[code] as string | undefined) ?? String(code);
}
