import { describe, expect, it } from 'vitest';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { ModelMetrics } from './model-metrics.js';
import { SlidingWindow } from './sliding-window.js';
import { record as fixture } from './records.fixture.js';

let sequence = 0;

function record(overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  sequence += 1;
  return fixture({ requestId: `req-${sequence}`, ...overrides });
}

/** 1..n in an order that is not sorted, so the percentiles cannot rely on arrival order. */
function shuffled(n: number): number[] {
  const values = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = values.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [values[i], values[j]] = [values[j], values[i]];
  }
  return values;
}

describe('ModelMetrics', () => {
  it('reports exact nearest-rank p50/p90/p99 of latency, queue and compute in milliseconds', () => {
    const metrics = new ModelMetrics();
    for (const ms of shuffled(100)) {
      metrics.record(record({ latencyUs: String(ms * 1000), queueUs: String(ms * 100), computeUs: String(ms * 200) }));
    }
    const [stats] = metrics.stats('iris');
    expect(stats.latencyMs).toEqual({ p50: 50, p90: 90, p99: 99 });
    expect(stats.queueMs).toEqual({ p50: 5, p90: 9, p99: 9.9 });
    expect(stats.computeMs).toEqual({ p50: 10, p90: 18, p99: 19.8 });
  });

  it('counts a non-zero status code as an error, and keeps failures out of queue and compute percentiles', () => {
    const metrics = new ModelMetrics();
    metrics.record(record({ latencyUs: '2000', queueUs: '1000', computeUs: '3000' }));
    metrics.record(record({ statusCode: 14, latencyUs: '9000', queueUs: '0', computeUs: '0' }));
    metrics.record(record({ statusCode: 3, latencyUs: '9000', queueUs: '0', computeUs: '0' }));
    const [stats] = metrics.stats('iris');
    expect(stats.requestCount).toBe(3);
    expect(stats.errorCount).toBe(2);
    expect(stats.latencyMs.p99).toBe(9);
    expect(stats.queueMs).toEqual({ p50: 1, p90: 1, p99: 1 });
    expect(stats.computeMs).toEqual({ p50: 3, p90: 3, p99: 3 });
  });

  it('labels the Prometheus request counter with the gRPC status name', async () => {
    const metrics = new ModelMetrics();
    metrics.record(record());
    metrics.record(record({ statusCode: 14 }));
    const text = await metrics.registry.metrics();
    expect(text).toContain('infermesh_requests_total{model="iris",version="1",code="OK"} 1');
    expect(text).toContain('infermesh_requests_total{model="iris",version="1",code="UNAVAILABLE"} 1');
  });

  it('counts records that share a request id as requests of their own: clients choose ids and reuse them', () => {
    const metrics = new ModelMetrics();
    expect(metrics.record(record({ requestId: 'same', items: 4 }))).toBe('counted');
    expect(metrics.record(record({ requestId: 'same', items: 4 }))).toBe('counted');
    const [stats] = metrics.stats('iris');
    expect(stats.requestCount).toBe(2);
    expect(stats.items).toBe(8);
  });

  it('counts every record without a request id', () => {
    const metrics = new ModelMetrics();
    metrics.record(record({ requestId: '' }));
    metrics.record(record({ requestId: '' }));
    expect(metrics.stats('iris')[0].requestCount).toBe(2);
  });

  it('drops a record without a model', () => {
    const metrics = new ModelMetrics();
    expect(metrics.record(record({ model: '' }))).toBe('invalid');
    expect(metrics.models()).toEqual([]);
  });

  it('keeps versions apart, sums items and remembers the latest request time', () => {
    const metrics = new ModelMetrics();
    metrics.record(record({ version: '2', items: 3, timestampMs: '2000' }));
    metrics.record(record({ version: '1', items: 5, timestampMs: '1000' }));
    metrics.record(record({ version: '2', items: 4, timestampMs: '1500' }));
    metrics.record(record({ model: 'resnet', version: '7' }));
    expect(metrics.models()).toEqual(['iris', 'resnet']);
    expect(metrics.stats('iris').map((s) => [s.version, s.requestCount, s.items, s.lastRequestMs])).toEqual([
      ['1', 1, 5, 1000],
      ['2', 2, 7, 2000],
    ]);
    expect(metrics.stats('iris', '2')).toHaveLength(1);
    expect(metrics.stats('iris', '3')).toEqual([]);
    expect(metrics.stats('unknown')).toEqual([]);
  });

  it('leaves samples older than the window out of the percentiles but keeps counting them', () => {
    let now = 0;
    const metrics = new ModelMetrics({ windowMaxAgeMs: 60_000, now: () => now });
    metrics.record(record({ latencyUs: '100000' }));
    now = 61_000;
    metrics.record(record({ latencyUs: '1000' }));
    const [stats] = metrics.stats('iris');
    expect(stats.requestCount).toBe(2);
    expect(stats.latencyMs).toEqual({ p50: 1, p90: 1, p99: 1 });
  });

  it('feeds the latency Summary with the same observations, in seconds', async () => {
    const metrics = new ModelMetrics();
    for (let i = 0; i < 10; i++) metrics.record(record({ latencyUs: '4000' }));
    const summary = await metrics.latencySummary.get();
    // prom-client adds the quantile label beside ours; its types only know ours.
    const median = summary.values.find((v) => (v.labels as Record<string, string | number>).quantile === 0.5 && v.labels.model === 'iris');
    expect(median?.value).toBeCloseTo(0.004, 6);
  });

  it('observes the batch size of successful requests', async () => {
    const metrics = new ModelMetrics();
    metrics.record(record({ batchSize: 8 }));
    metrics.record(record({ batchSize: 8, statusCode: 13 }));
    const text = await metrics.registry.metrics();
    expect(text).toContain('infermesh_batch_size_bucket{le="8",model="iris",version="1"} 1');
    expect(text).toContain('infermesh_batch_size_count{model="iris",version="1"} 1');
  });
});

describe('SlidingWindow', () => {
  it('keeps only the last `capacity` samples', () => {
    const window = new SlidingWindow(3, Infinity);
    for (const value of [100, 1, 2, 3]) window.add(value, 0);
    expect(window.percentiles(0)).toEqual({ p50: 2, p90: 3, p99: 3 });
  });

  it('answers zeros when empty', () => {
    expect(new SlidingWindow(4, 1000).percentiles(0)).toEqual({ p50: 0, p90: 0, p99: 0 });
  });
});
