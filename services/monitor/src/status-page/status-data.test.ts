/** The status page's data: bounded whatever the mesh holds, charts in steps, drift and accuracy with their history. */
import { describe, expect, it } from 'vitest';
import type { Alert__Output } from '@infermesh/contracts';
import { ModelMetrics } from '../model-metrics.js';
import { ReadingHistory } from './reading-history.js';
import { MAX_PAGE_SERIES, PAGE_WINDOW_MS, buildStatusData, chartPoints, driftSample, type AccuracySample, type DriftSample } from './status-data.js';
import type { DriftReading, StatusSources, TimelinePoint } from './sources.js';

const NOW = 1_700_000_000_000;
const SINCE = NOW - PAGE_WINDOW_MS;

function history() {
  const options = { capacity: 200, maxSeries: 100, maxAgeMs: PAGE_WINDOW_MS };
  return { drift: new ReadingHistory<DriftSample>(options), accuracy: new ReadingHistory<AccuracySample>(options) };
}

function countsOf(...versions: [string, string, number][]): ModelMetrics {
  const metrics = new ModelMetrics({ now: () => NOW });
  for (const [model, version, requests] of versions) {
    for (let i = 0; i < requests; i++) metrics.record({ model, version }, { statusCode: 0, items: 1, latencyUs: 2000, queueUs: 0, computeUs: 0, batchSize: 1, atMs: NOW - 1000 });
  }
  return metrics;
}

function drift(model: string, version: string, psi: Record<string, number>): DriftReading {
  const features = Object.entries(psi).map(([feature, value]) => ({ feature, psi: value, observed: [0.5, 0.5], expected: [0.5, 0.5] }));
  return { model, version, windowInputs: 500, windowMs: 600_000, enoughInputs: true, features, maxPsi: Math.max(...features.map((f) => f.psi)), profileId: 'p1' };
}

function alert(overrides: Partial<Alert__Output>): Alert__Output {
  return {
    rule: 'iris-slow', kind: 'latency_p99', state: 'firing', severity: 'warning', model: 'iris', version: '1', feature: '', value: 312, threshold: 250,
    summary: 'p99 latency of iris 1 is 312 ms', startedMs: String(NOW - 60_000), resolvedMs: '0', atMs: String(NOW - 60_000), fingerprint: 'f1', ...overrides,
  };
}

describe('chartPoints', () => {
  it('keeps the timeline\'s 5 s steps over 15 minutes, as requests per second, from the first step with traffic to the last complete one', () => {
    const start = Math.floor((NOW - 60_000) / 5000) * 5000;
    const raw: TimelinePoint[] = [
      { atMs: start, requests: 10, errors: 1, items: 10, p50Ms: 2, p99Ms: 9 },
      { atMs: start + 15_000, requests: 5, errors: 0, items: 5, p50Ms: 3, p99Ms: 4 },
    ];
    const { stepMs, points } = chartPoints(raw, SINCE, NOW, 5000);
    expect(stepMs).toBe(5000);
    expect(points[0]).toEqual({ atMs: start, requestsPerS: 2, errorRate: 0.1, p50Ms: 2, p99Ms: 9 });
    // The steps between had no requests: 0 req/s and no latency, not a line drawn across them.
    expect(points[1]).toEqual({ atMs: start + 5000, requestsPerS: 0, errorRate: null, p50Ms: null, p99Ms: null });
    expect(points[3].requestsPerS).toBe(1);
    expect(points.at(-1)!.atMs).toBe(Math.floor(NOW / 5000) * 5000 - 5000);
    expect(chartPoints([{ atMs: NOW, requests: 4, errors: 0, items: 4 }], SINCE, NOW + 4999, 5000).points).toEqual([]);
  });

  it('merges steps when there would be more than 180 points: requests add up, p50 weighted by requests, p99 the largest', () => {
    const raw: TimelinePoint[] = [
      { atMs: NOW - 4000, requests: 1, errors: 0, items: 1, p50Ms: 10, p99Ms: 10 },
      { atMs: NOW - 3000, requests: 3, errors: 3, items: 3, p50Ms: 2, p99Ms: 50 },
    ];
    const { stepMs, points } = chartPoints(raw, SINCE, NOW, 1000);
    expect(stepMs).toBe(5000);
    const merged = points.find((p) => p.p50Ms !== null)!;
    expect(merged).toMatchObject({ errorRate: 0.75, p50Ms: 4, p99Ms: 50 });
    expect(points.length).toBeLessThanOrEqual(2);
  });

  it('has no points for a version without traffic in the window', () => {
    expect(chartPoints([{ atMs: SINCE - 10_000, requests: 4, errors: 0, items: 4 }], SINCE, NOW, 5000).points).toEqual([]);
  });
});

describe('buildStatusData', () => {
  it('lists every counted version with its totals and recent latency, sorted by model then version', () => {
    const sources: StatusSources = { counts: countsOf(['resnet', '3', 2], ['iris', '2', 1], ['iris', '1', 3]), workers: { workers: () => [] } };
    const data = buildStatusData(sources, history(), NOW);
    expect(data.models.map((m) => `${m.model} ${m.version}`)).toEqual(['iris 1', 'iris 2', 'resnet 3']);
    expect(data.models[0]).toMatchObject({ totals: { requests: 3, errors: 0, items: 3, lastRequestMs: NOW - 1000 }, latencyMs: { p50: 2, p99: 2 }, drift: null, accuracy: null });
    expect(data.measured).toEqual({ timeline: false, drift: false, accuracy: false, alerts: false });
  });

  it('shows at most MAX_PAGE_SERIES versions and says how many it left out', () => {
    const versions = Array.from({ length: MAX_PAGE_SERIES + 5 }, (_, i): [string, string, number] => ['m', String(i).padStart(3, '0'), 1]);
    const data = buildStatusData({ counts: countsOf(...versions), workers: { workers: () => [] } }, history(), NOW);
    expect(data.models).toHaveLength(MAX_PAGE_SERIES);
    expect(data.modelsOmitted).toBe(5);
  });

  it('gives a version\'s drift now with its sampled history, and lists a version measured before its first record', () => {
    const h = history();
    const reading = drift('iris', '1', { sepal_length: 0.02, petal_width: 0.31 });
    h.drift.add(reading, driftSample(drift('iris', '1', { sepal_length: 0.01, petal_width: 0.05 }), NOW - 10_000));
    h.drift.add(reading, driftSample(reading, NOW));
    const data = buildStatusData({ counts: countsOf(), workers: { workers: () => [] }, drift: { readings: () => [reading] } }, h, NOW);
    expect(data.models).toHaveLength(1);
    expect(data.models[0].drift).toMatchObject({
      maxPsi: 0.31, enoughInputs: true, features: [{ feature: 'sepal_length', psi: 0.02 }, { feature: 'petal_width', psi: 0.31 }],
      history: [{ atMs: NOW - 10_000, maxPsi: 0.05, psi: { sepal_length: 0.01, petal_width: 0.05 } }, { atMs: NOW, maxPsi: 0.31 }],
    });
    expect(data.measured.drift).toBe(true);
  });

  it('gives a version\'s accuracy with its history, and the model\'s feedback outcomes with those that joined no version', () => {
    const h = history();
    const feedback = (applied: number, unknown: number) => ({ applied, unknown, expired: 0, mismatched: 0, ambiguous: 0 });
    const readings = [
      { model: 'iris', version: '', labelled: 0, correct: 0, recentAccuracy: 0, recentLabelled: 0, confusion: [], feedback: feedback(0, 4) },
      { model: 'iris', version: '1', labelled: 10, correct: 9, recentAccuracy: 0.9, recentLabelled: 10, confusion: [], feedback: feedback(10, 0) },
    ];
    h.accuracy.add(readings[1], { atMs: NOW - 5000, recentAccuracy: 1, recentLabelled: 5 });
    const data = buildStatusData({ counts: countsOf(['iris', '1', 1]), workers: { workers: () => [] }, accuracy: { readings: () => readings } }, h, NOW);
    expect(data.models.map((m) => m.version)).toEqual(['1']);
    expect(data.models[0].accuracy).toEqual({
      labelled: 10, correct: 9, recentAccuracy: 0.9, recentLabelled: 10, feedback: feedback(10, 0), history: [{ atMs: NOW - 5000, recentAccuracy: 1, recentLabelled: 5 }],
    });
    expect(data.models[0].modelFeedback).toEqual(feedback(10, 4));
  });

  it('lists no version that only has a profile or classes announced, so an idle mesh shows no predictions yet', () => {
    const idle = { ...drift('iris', '1', { sepal_length: 0 }), windowInputs: 0, enoughInputs: false };
    const noFeedback = { model: 'iris', version: '1', labelled: 0, correct: 0, recentAccuracy: 0, recentLabelled: 0, confusion: [], feedback: { applied: 0, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 } };
    const sources: StatusSources = { counts: countsOf(), workers: { workers: () => [] }, drift: { readings: () => [idle] }, accuracy: { readings: () => [noFeedback] } };
    expect(buildStatusData(sources, history(), NOW).models).toEqual([]);
  });

  it('lists the alerts firing, oldest first', () => {
    const firing = [alert({ fingerprint: 'new', startedMs: String(NOW - 1000) }), alert({ fingerprint: 'old', rule: 'iris-errors', kind: 'error_rate' })];
    const data = buildStatusData({ counts: countsOf(), workers: { workers: () => [] }, alerts: { firing: () => firing, onTransition: () => () => undefined } }, history(), NOW);
    expect(data.alerts.map((a) => a.fingerprint)).toEqual(['old', 'new']);
    expect(data.alerts[0]).toEqual({
      fingerprint: 'old', rule: 'iris-errors', kind: 'error_rate', severity: 'warning', model: 'iris', version: '1', feature: '', value: 312, threshold: 250,
      summary: 'p99 latency of iris 1 is 312 ms', startedMs: NOW - 60_000,
    });
  });
});

describe('ReadingHistory', () => {
  it('keeps at most `capacity` samples per version and none older than maxAgeMs', () => {
    const h = new ReadingHistory<{ atMs: number }>({ capacity: 3, maxSeries: 10, maxAgeMs: 10_000 });
    for (let i = 0; i < 5; i++) h.add({ model: 'iris', version: '1' }, { atMs: NOW + i * 1000 });
    expect(h.since({ model: 'iris', version: '1' }, 0).map((s) => s.atMs)).toEqual([NOW + 2000, NOW + 3000, NOW + 4000]);
    h.forgetOld(NOW + 13_500);
    expect(h.since({ model: 'iris', version: '1' }, 0).map((s) => s.atMs)).toEqual([NOW + 4000]);
  });

  it('samples no new version past maxSeries while the others are fresh, and takes one once an old one has aged out', () => {
    const h = new ReadingHistory<{ atMs: number }>({ capacity: 3, maxSeries: 1, maxAgeMs: 10_000 });
    h.add({ model: 'a', version: '1' }, { atMs: NOW });
    h.add({ model: 'b', version: '1' }, { atMs: NOW + 1000 });
    expect(h.since({ model: 'b', version: '1' }, 0)).toEqual([]);
    h.add({ model: 'b', version: '1' }, { atMs: NOW + 20_000 });
    expect(h.since({ model: 'b', version: '1' }, 0)).toEqual([{ atMs: NOW + 20_000 }]);
    expect(h.seriesCount).toBe(1);
  });
});
