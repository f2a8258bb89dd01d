import { describe, expect, it } from 'vitest';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { MonitorState, type MonitorStateOptions } from './monitor-state.js';
import { SlidingWindow } from './sliding-window.js';
import { record as fixture } from './records.fixture.js';

let sequence = 0;

function record(overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  sequence += 1;
  return fixture({ requestId: `req-${sequence}`, timestampMs: String(Date.now()), ...overrides });
}

/** A monitor's state with iris 1 and 2 and resnet 7 announced by a worker. */
function monitorState(options: MonitorStateOptions = {}): MonitorState {
  const state = new MonitorState(options);
  state.known.announce({ models: [model('iris', '1'), model('iris', '2'), model('resnet', '7')] });
  return state;
}

function model(name: string, version: string) {
  return { name, version } as Parameters<MonitorState['known']['announce']>[0]['models'][number];
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
    const state = monitorState();
    for (const ms of shuffled(100)) {
      state.count(record({ latencyUs: String(ms * 1000), queueUs: String(ms * 100), computeUs: String(ms * 200) }));
    }
    const [stats] = state.models.stats('iris');
    expect(stats.latencyMs).toEqual({ p50: 50, p90: 90, p99: 99 });
    expect(stats.queueMs).toEqual({ p50: 5, p90: 9, p99: 9.9 });
    expect(stats.computeMs).toEqual({ p50: 10, p90: 18, p99: 19.8 });
  });

  it('counts a non-zero status code as an error, and keeps failures out of queue and compute percentiles', () => {
    const state = monitorState();
    state.count(record({ latencyUs: '2000', queueUs: '1000', computeUs: '3000' }));
    state.count(record({ statusCode: 14, latencyUs: '9000', queueUs: '0', computeUs: '0' }));
    state.count(record({ statusCode: 3, latencyUs: '9000', queueUs: '0', computeUs: '0' }));
    const [stats] = state.models.stats('iris');
    expect(stats.requestCount).toBe(3);
    expect(stats.errorCount).toBe(2);
    expect(stats.latencyMs.p99).toBe(9);
    expect(stats.queueMs).toEqual({ p50: 1, p90: 1, p99: 1 });
    expect(stats.computeMs).toEqual({ p50: 3, p90: 3, p99: 3 });
  });

  it('labels the Prometheus request counter with the gRPC status name', () => {
    const state = monitorState();
    state.count(record());
    state.count(record({ statusCode: 14 }));
    const text = state.prometheus();
    expect(text).toContain('infermesh_requests_total{model="iris",version="1",code="OK"} 1');
    expect(text).toContain('infermesh_requests_total{model="iris",version="1",code="UNAVAILABLE"} 1');
  });

  it('counts records that share a request id as requests of their own: clients choose ids and reuse them', () => {
    const state = monitorState();
    expect(state.count(record({ requestId: 'same', items: 4 }))).toBe('counted');
    expect(state.count(record({ requestId: 'same', items: 4 }))).toBe('counted');
    const [stats] = state.models.stats('iris');
    expect(stats.requestCount).toBe(2);
    expect(stats.items).toBe(8);
  });

  it('keeps versions apart, sums items and remembers the latest request time', () => {
    const state = monitorState();
    state.count(record({ version: '2', items: 3, timestampMs: '2000' }));
    state.count(record({ version: '1', items: 5, timestampMs: '1000' }));
    state.count(record({ version: '2', items: 4, timestampMs: '1500' }));
    state.count(record({ model: 'resnet', version: '7' }));
    expect(state.models.models()).toEqual(['iris', 'resnet']);
    expect(state.models.stats('iris').map((s) => [s.version, s.requestCount, s.items, s.lastRequestMs])).toEqual([
      ['1', 1, 5, 1000],
      ['2', 2, 7, 2000],
    ]);
    expect(state.models.stats('iris', '2')).toHaveLength(1);
    expect(state.models.stats('iris', '3')).toEqual([]);
    expect(state.models.stats('unknown')).toEqual([]);
  });

  it('leaves samples older than the window out of the percentiles but keeps counting them', () => {
    let now = 100_000;
    const state = monitorState({ windowMaxAgeMs: 60_000, now: () => now });
    state.count(record({ latencyUs: '100000', timestampMs: String(now) }));
    now += 61_000;
    state.count(record({ latencyUs: '1000', timestampMs: String(now) }));
    const [stats] = state.models.stats('iris');
    expect(stats.requestCount).toBe(2);
    expect(stats.latencyMs).toEqual({ p50: 1, p90: 1, p99: 1 });
  });

  it('ages a sample by the time the router answered, so a record read again after a restart ages as the original did', () => {
    const now = 1_000_000;
    const state = monitorState({ windowMaxAgeMs: 60_000, now: () => now });
    state.count(record({ latencyUs: '100000', timestampMs: String(now - 61_000) }));
    state.count(record({ latencyUs: '1000', timestampMs: String(now) }));
    expect(state.models.stats('iris')[0].latencyMs).toEqual({ p50: 1, p90: 1, p99: 1 });
  });

  it('writes the latency Summary from the same window GetModelStats answers from, in seconds', () => {
    const state = monitorState();
    for (let i = 0; i < 10; i++) state.count(record({ latencyUs: '4000' }));
    const text = state.prometheus();
    expect(text).toContain('infermesh_request_latency_seconds{quantile="0.5",model="iris",version="1"} 0.004');
    expect(text).toContain('infermesh_request_latency_seconds_count{model="iris",version="1"} 10');
  });

  it('observes the batch size of successful requests', () => {
    const state = monitorState();
    state.count(record({ batchSize: 8 }));
    state.count(record({ batchSize: 8, statusCode: 13 }));
    const text = state.prometheus();
    expect(text).toContain('infermesh_batch_size_bucket{le="8",model="iris",version="1"} 1');
    expect(text).toContain('infermesh_batch_size_count{model="iris",version="1"} 1');
  });

  it('escapes quotes, backslashes and newlines in label values', () => {
    const state = new MonitorState();
    state.known.add('a"b\\c\nd', '1');
    state.count(record({ model: 'a"b\\c\nd' }));
    expect(state.prometheus()).toContain('infermesh_items_total{model="a\\"b\\\\c\\nd",version="1"} 1');
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
