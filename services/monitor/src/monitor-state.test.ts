/**
 * What the monitor accepts from a record, whatever arrives: labels only for model versions
 * the mesh announced, bounded series and client ids, absurd values counted as invalid;
 * and a snapshot that gives back the same counts.
 */
import { describe, expect, it } from 'vitest';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { MonitorState, type MonitorStateOptions } from './monitor-state.js';
import { record as fixture } from './records.fixture.js';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { ModelStatus__Output } from '@infermesh/contracts';

/** A model as a worker's heartbeat announces it: with a two-feature drift profile `p1` and iris's classes. */
function heartbeatModel(name: string, version: string): ModelStatus__Output {
  return {
    name, version, ready: true, state: 'READY', platform: 'onnxruntime', inputs: [], outputs: [], maxBatchSize: 0, reason: '', dynamicBatching: null, instances: 1,
    driftReference: { profileId: 'p1', rows: '150', features: [0, 1].map((i) => ({ name: `f${i}`, edges: [0.5], expected: [0.5, 0.5] })) },
    classLabels: ['setosa', 'versicolor', 'virginica'],
    pipelineSteps: [],
    placement: null,
  };
}

function record(overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  return fixture({ timestampMs: String(Date.now()), ...overrides });
}

function monitorState(options: MonitorStateOptions = {}): MonitorState {
  const state = new MonitorState(options);
  state.known.add('iris', '1');
  return state;
}

const seriesLines = (text: string) => text.split('\n').filter((line) => line.startsWith('infermesh_requests_total{'));

describe('labels', () => {
  it('counts records of models no worker announced under _unknown, whatever their names', () => {
    const state = monitorState();
    for (let i = 0; i < 5000; i++) state.count(record({ model: `made-up-${i}`, version: String(i) }));
    expect(state.models.models()).toEqual(['_unknown']);
    expect(state.models.stats('_unknown')[0].requestCount).toBe(5000);
    expect(state.prometheus()).not.toContain('made-up');
  });

  it('counts a version no worker announced under the model with version _unknown', () => {
    const state = monitorState();
    state.count(record({ version: '42' }));
    expect(state.models.stats('iris').map((s) => s.version)).toEqual(['_unknown']);
  });

  it('takes a model as a label once a heartbeat announces it', () => {
    const state = monitorState();
    state.known.announce({ models: [{ name: 'resnet', version: '3' }] as never });
    state.count(record({ model: 'resnet', version: '3' }));
    expect(state.models.stats('resnet')[0].requestCount).toBe(1);
  });

  it('learns a version\'s drift reference and class labels from the heartbeat that announces it', () => {
    const state = new MonitorState();
    const { added, references } = state.announce({ models: [heartbeatModel('iris', '1')] });
    expect(added).toBe(1);
    expect(references).toEqual([{ model: 'iris', version: '1', profileId: 'p1', outcome: 'learned' }]);
    expect(state.announce({ models: [heartbeatModel('iris', '1')] })).toEqual({ added: 0, references: [] });
    state.accuracy.apply({ model: 'iris', version: '1', predictedLabels: ['virginica'] }, ['virginica']);
    expect(state.accuracy.readings()[0].confusion).toEqual([{ actual: 'virginica', predicted: 'virginica', count: 1 }]);
  });

  it('counts the drift bins of a counted record', () => {
    const state = new MonitorState();
    state.announce({ models: [heartbeatModel('iris', '1')] });
    state.count(record({ items: 3, driftBins: Buffer.from([0, 1, 1, 1, 0, 0]), profileId: 'p1' }));
    expect(state.drift.reading('iris', '1')?.features.map((f) => f.observed)).toEqual([[2 / 3, 1 / 3], [1 / 3, 2 / 3]]);
  });

  it('keeps at most maxSeries model versions, also when heartbeats announce more; the rest count under _unknown', () => {
    const state = new MonitorState({ maxSeries: 10 });
    for (let i = 0; i < 100; i++) state.known.add(`model-${i}`, '1');
    for (let i = 0; i < 100; i++) state.count(record({ model: `model-${i}`, version: '1' }));
    expect(state.known.size).toBe(10);
    expect(state.models.seriesCount).toBe(11);
    expect(seriesLines(state.prometheus())).toHaveLength(11);
    expect(state.models.stats('_unknown')[0].requestCount).toBe(90);
  });

  it('does not take a name longer than 128 characters as a label, even when announced', () => {
    const state = new MonitorState();
    expect(state.known.add('m'.repeat(129), '1')).toBe(false);
    state.count(record({ model: 'm'.repeat(129) }));
    expect(state.models.models()).toEqual(['_unknown']);
  });
});

describe('invalid records', () => {
  const absurd: [string, Partial<PredictionRecord__Output>][] = [
    ['a negative latency', { latencyUs: '-1' }],
    ['a latency over an hour', { latencyUs: String(3600e6 + 1) }],
    ['a negative queue time', { queueUs: '-5' }],
    ['a compute time over an hour', { computeUs: '9000000000000' }],
    ['a status code that is no gRPC status', { statusCode: 99 }],
    ['no model', { model: '' }],
  ];
  for (const [what, overrides] of absurd) {
    it(`counts a record with ${what} as invalid, not as a request`, () => {
      const state = monitorState();
      state.count(record({ latencyUs: '1000' }));
      expect(state.count(record(overrides))).toBe('invalid');
      const [stats] = state.models.stats('iris');
      expect(stats.requestCount).toBe(1);
      expect(stats.latencyMs.p99).toBe(1);
      expect(state.droppedCounts().invalid).toBe(1);
      expect(state.prometheus()).toContain('infermesh_monitor_records_dropped_total{reason="invalid"} 1');
    });
  }

  it('keeps a record stamped in the future from becoming the last request time', () => {
    const state = monitorState({ now: () => 5000 });
    state.count(record({ timestampMs: String(Number.MAX_SAFE_INTEGER) }));
    expect(state.models.stats('iris')[0].lastRequestMs).toBe(5000);
  });
});

describe('usage per client', () => {
  it('counts requests, errors and items per client id and model; no id is anonymous', () => {
    const state = monitorState();
    state.count(record({ clientId: 'key-a', items: 3 }));
    state.count(record({ clientId: 'key-a', items: 2, statusCode: 8 }));
    state.count(record({ clientId: '', items: 1 }));
    state.count(record({ clientId: 'key-a', model: 'not-served', items: 1 }));
    expect(state.clients.rows()).toEqual([
      { clientId: 'anonymous', model: 'iris', requests: 1, errors: 0, items: 1 },
      { clientId: 'key-a', model: '_unknown', requests: 1, errors: 0, items: 1 },
      { clientId: 'key-a', model: 'iris', requests: 2, errors: 1, items: 5 },
    ]);
    const text = state.prometheus();
    expect(text).toContain('infermesh_client_requests_total{client="key-a",model="iris"} 2');
    expect(text).toContain('infermesh_client_errors_total{client="key-a",model="iris"} 1');
    expect(text).toContain('infermesh_client_items_total{client="key-a",model="iris"} 5');
    expect(text).toContain('infermesh_client_requests_total{client="anonymous",model="iris"} 1');
  });

  it('counts clients past maxClients under _other', () => {
    const state = monitorState({ maxClients: 3 });
    for (let i = 0; i < 10; i++) state.count(record({ clientId: `key-${i}` }));
    expect(state.clients.rows().map((r) => [r.clientId, r.requests])).toEqual([['_other', 7], ['key-0', 1], ['key-1', 1], ['key-2', 1]]);
  });

  it('counts (client, model) pairs past maxClientSeries under _other for the model', () => {
    const state = new MonitorState({ maxClientSeries: 2 });
    for (const m of ['a', 'b', 'c']) state.known.add(m, '1');
    for (const m of ['a', 'b', 'c']) state.count(record({ model: m, clientId: 'key-1' }));
    expect(state.clients.rows().map((r) => `${r.clientId}/${r.model}`)).toEqual(['_other/c', 'key-1/a', 'key-1/b']);
  });

  it('counts a client id longer than 128 characters under _other', () => {
    const state = monitorState();
    state.count(record({ clientId: 'k'.repeat(1000) }));
    expect(state.clients.rows()[0].clientId).toBe('_other');
  });
});

describe('snapshot', () => {
  it('restores the counts, known models, client usage and stream mark it was taken with', () => {
    const state = monitorState();
    state.known.add('resnet', '3');
    for (let i = 1; i <= 50; i++) state.count(record({ latencyUs: String(i * 1000), statusCode: i % 10 === 0 ? 14 : 0, clientId: i % 2 ? 'key-a' : '', items: 2, batchSize: 4 }));
    state.count(record({ model: 'resnet', version: '3' }));
    state.count(record({ latencyUs: '-1' }));
    state.undecodable();
    state.mark = { sequence: 77, streamCreated: '2026-01-01T00:00:00Z' };

    const restored = new MonitorState();
    restored.restore(state.encode());
    const countsOf = (text: string) => text.split('\n').filter((l) => !l.startsWith('infermesh_request_latency_seconds{')).join('\n');
    expect(countsOf(restored.prometheus())).toBe(countsOf(state.prometheus()));
    expect(restored.mark).toEqual({ sequence: 77, streamCreated: '2026-01-01T00:00:00Z' });
    expect(restored.known.entries()).toEqual(state.known.entries());
    expect(restored.clients.rows()).toEqual(state.clients.rows());
    expect(restored.models.stats('iris')[0]).toMatchObject({ requestCount: 50, errorCount: 5, items: 100 });
  });

  it('restores the percentile windows it was saved with, samples aged as they were', () => {
    let now = 1_000_000;
    const state = monitorState({ now: () => now, windowMaxAgeMs: 60_000 });
    state.count(record({ latencyUs: '900000', timestampMs: String(now - 50_000) }));
    for (let i = 1; i <= 100; i++) state.count(record({ latencyUs: String(i * 1000), queueUs: String(i * 100), timestampMs: String(now) }));
    const restored = new MonitorState({ now: () => now, windowMaxAgeMs: 60_000 });
    expect(restored.restore(state.encode())).toEqual({ windows: true });
    expect(restored.models.stats('iris')).toEqual(state.models.stats('iris'));
    // The old sample leaves both windows at the same time.
    now += 15_000;
    expect(restored.models.stats('iris')).toEqual(state.models.stats('iris'));
    expect(restored.models.stats('iris')[0].latencyMs.p99).toBe(99);
  });

  it('leaves the windows out when they would not fit one message, and says so', () => {
    // A fixed clock: the samples' ages, and so the encoded size, do not change between two encodings.
    const state = monitorState({ now: () => 1_000_000 });
    for (let i = 1; i <= 2000; i++) state.count(record({ latencyUs: String(i * 997), timestampMs: '1000000' }));
    const full = state.encodeWithin(undefined);
    const small = state.encodeWithin(full.bytes.length - 1);
    expect(full.windows).toBe(true);
    expect(small.windows).toBe(false);
    expect(small.bytes.length).toBeLessThan(full.bytes.length);
    expect(new MonitorState().restore(small.bytes)).toEqual({ windows: false });
  });

  it('leaves the drift windows and recent accuracy out too when even that would not fit one message, keeping every count and mark', () => {
    const now = 10_000_000;
    const state = monitorState({ now: () => now, driftWindowMs: 3600_000 });
    state.announce({ models: [heartbeatModel('iris', '1')] });
    // Drift counts in many buckets, and recent outcomes: what grows a snapshot beside the counts.
    for (let i = 0; i < 120; i++) state.count(record({ items: 2, driftBins: Buffer.from([i % 2, 1, 0, i % 3 ? 1 : 0]), profileId: 'p1', timestampMs: String(now - i * 30_000) }));
    for (let i = 0; i < 500; i++) state.accuracy.apply({ model: 'iris', version: '1', predictedLabels: ['setosa'] }, [i % 3 ? 'setosa' : 'virginica']);
    state.feedbackMark = { sequence: 7, streamCreated: 'f' };
    state.mark = { sequence: 9, streamCreated: 'p' };
    const withoutWindows = state.encode({ windows: false });

    const fitted = state.encodeWithin(withoutWindows.length - 1);
    expect(fitted.bytes.length).toBeLessThanOrEqual(withoutWindows.length - 1);
    expect(fitted).toMatchObject({ windows: false, compact: true });
    const restored = new MonitorState({ now: () => now, driftWindowMs: 3600_000 });
    restored.restore(fitted.bytes);
    expect(restored.mark).toEqual(state.mark);
    expect(restored.feedbackMark).toEqual(state.feedbackMark);
    expect(restored.models.stats('iris')[0].requestCount).toBe(120);
    expect(restored.accuracy.readings()[0]).toMatchObject({ labelled: 500, correct: state.accuracy.readings()[0].correct, recentLabelled: 0 });
    expect(restored.drift.reading('iris', '1')).toMatchObject({ profileId: 'p1', windowInputs: 0 });
  });

  it('refills the percentile windows from records recalled after a restore without them, counting nothing', () => {
    const state = monitorState();
    const records = Array.from({ length: 100 }, (_, i) => record({ latencyUs: String((i + 1) * 1000) }));
    for (const r of records) state.count(r);
    const restored = new MonitorState();
    restored.restore(state.encode({ windows: false }));
    expect(restored.models.stats('iris')[0].latencyMs).toEqual({ p50: 0, p90: 0, p99: 0 });
    for (const r of records) restored.recall(r);
    expect(restored.models.stats('iris')).toEqual(state.models.stats('iris'));
  });

  it('restores a state at its bound on series with every count, _unknown included', () => {
    const state = new MonitorState({ maxSeries: 2 });
    for (const m of ['a', 'b', 'c']) state.known.add(m, '1');
    for (const m of ['a', 'b', 'c', 'd']) state.count(record({ model: m }));
    expect(state.models.models()).toEqual(['_unknown', 'a', 'b']);
    const restored = new MonitorState({ maxSeries: 2 });
    restored.restore(state.encode());
    expect(restored.prometheus()).toBe(state.prometheus());
    expect(restored.models.stats('_unknown')[0].requestCount).toBe(2);
  });

  it('restores the drift windows, the accuracy and the FEEDBACK mark it was taken with', () => {
    const now = Date.now();
    const state = monitorState({ now: () => now });
    state.announce({ models: [heartbeatModel('iris', '1')] });
    state.count(record({ items: 2, driftBins: Buffer.from([0, 1, 1, 1]), profileId: 'p1', timestampMs: String(now) }));
    state.accuracy.apply({ model: 'iris', version: '1', predictedLabels: ['setosa', 'virginica'] }, ['setosa', 'setosa']);
    state.accuracy.unjoined('iris', 'unknown');
    state.feedbackMark = { sequence: 12, streamCreated: '2026-01-02T00:00:00Z' };

    const restored = new MonitorState({ now: () => now });
    restored.restore(state.encode());
    expect(restored.drift.readings()).toEqual(state.drift.readings());
    expect(restored.drift.reading('iris', '1')?.windowInputs).toBe(2);
    expect(restored.accuracy.readings()).toEqual(state.accuracy.readings());
    expect(restored.feedbackMark).toEqual({ sequence: 12, streamCreated: '2026-01-02T00:00:00Z' });
    expect(restored.prometheus()).toBe(state.prometheus());
  });

  it('loads a snapshot saved before drift and feedback, with none of either', () => {
    const state = monitorState();
    state.count(record());
    const saved = JSON.parse(gunzipSync(state.encode()).toString('utf8')) as Record<string, unknown>;
    delete saved.drift;
    delete saved.accuracy;
    delete saved.feedbackMark;
    const restored = new MonitorState();
    restored.restore(gzipSync(JSON.stringify(saved)));
    expect(restored.models.stats('iris')[0].requestCount).toBe(1);
    expect(restored.accuracy.readings()).toEqual([]);
    expect(restored.feedbackMark).toEqual({ sequence: 0, streamCreated: '' });
  });

  it('loads a snapshot saved before the ambiguous feedback outcome, with its other outcomes', () => {
    const state = monitorState();
    state.accuracy.apply({ model: 'iris', version: '1', predictedLabels: ['setosa'] }, ['setosa']);
    state.accuracy.unjoined('iris', 'unknown');
    const saved = JSON.parse(gunzipSync(state.encode()).toString('utf8')) as { accuracy: { series: { feedback: Record<string, number> }[] } };
    for (const series of saved.accuracy.series) delete series.feedback.ambiguous;
    const restored = new MonitorState();
    restored.restore(gzipSync(JSON.stringify(saved)));
    expect(restored.accuracy.readings().map((r) => r.feedback)).toEqual([
      { applied: 0, unknown: 1, expired: 0, mismatched: 0, ambiguous: 0 },
      { applied: 1, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 },
    ]);
  });

  it('refuses bytes that are not a snapshot and keeps its state', () => {
    const state = monitorState();
    state.count(record());
    expect(() => state.restore(new TextEncoder().encode('{"format":1}'))).toThrow();
    expect(state.models.stats('iris')[0].requestCount).toBe(1);
  });
});
