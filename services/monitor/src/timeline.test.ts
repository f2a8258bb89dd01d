import { describe, expect, it } from 'vitest';
import { Timeline, TIMELINE_BUCKET_MS, TIMELINE_KEEP_MS } from './timeline.js';
import { MonitorState } from './monitor-state.js';
import { record } from './records.fixture.js';

const iris = { model: 'iris', version: '1' };
const T0 = 1_700_000_000_000; // a bucket boundary (divisible by 5000)

function timeline(nowMs = T0 + 60_000) {
  let now = nowMs;
  const t = new Timeline({ now: () => now, maxSeries: 3 });
  return { t, setNow: (ms: number) => (now = ms) };
}

describe('Timeline', () => {
  it('counts requests, errors and items in 5 s buckets by record time', () => {
    const { t } = timeline();
    t.observe(iris, T0 + 100, 1000, true, 2);
    t.observe(iris, T0 + 4999, 1000, false, 1);
    t.observe(iris, T0 + 5000, 1000, true, 3);
    expect(t.points(iris, T0).map(({ atMs, requests, errors, items }) => ({ atMs, requests, errors, items }))).toEqual([
      { atMs: T0, requests: 2, errors: 1, items: 3 },
      { atMs: T0 + TIMELINE_BUCKET_MS, requests: 1, errors: 0, items: 3 },
    ]);
  });

  it('leaves buckets without records out of the points, and starts them at the bucket holding sinceMs', () => {
    const { t } = timeline();
    t.observe(iris, T0 + 1000, 1000, true, 1);
    t.observe(iris, T0 + 20_000, 1000, true, 1);
    expect(t.points(iris, T0 + 4000).map((p) => p.atMs)).toEqual([T0, T0 + 20_000]);
    expect(t.points(iris, T0 + 5000).map((p) => p.atMs)).toEqual([T0 + 20_000]);
  });

  it('sums a window over the buckets from the one holding its start to now, and not before', () => {
    const { t } = timeline(T0 + 60_000);
    t.observe(iris, T0 + 1000, 1000, false, 1); // 59 s before now: outside a 30 s window
    t.observe(iris, T0 + 30_000, 1000, false, 1); // the bucket holding now - 30 s
    t.observe(iris, T0 + 59_000, 1000, true, 1);
    expect(t.window(iris, 30_000)).toMatchObject({ requests: 2, errors: 1 });
    expect(t.window(iris, 60_000)).toMatchObject({ requests: 3, errors: 2 });
  });

  it('reads a window at another time when asked (nowMs)', () => {
    const { t } = timeline(T0 + 600_000);
    t.observe(iris, T0 + 1000, 1000, true, 1);
    expect(t.window(iris, 10_000).requests).toBe(0);
    expect(t.window(iris, 10_000, T0 + 5000).requests).toBe(1);
  });

  it('gives p50 and p99 within 5 % of the exact nearest-rank percentiles', () => {
    const { t } = timeline();
    // 1..1000 ms, shuffled over the minute: p50 = 500 ms, p99 = 990 ms exactly.
    for (let i = 1; i <= 1000; i++) t.observe(iris, T0 + ((i * 7919) % 60_000), i * 1000, true, 1);
    const w = t.window(iris, 60_000);
    expect(w.requests).toBe(1000);
    expect(Math.abs(w.p50Ms! - 500) / 500).toBeLessThan(0.05);
    expect(Math.abs(w.p99Ms! - 990) / 990).toBeLessThan(0.05);
  });

  it('tells a slow tail apart in a window: 1 % of requests at 300 ms moves p99, not p50', () => {
    const { t } = timeline();
    for (let i = 0; i < 980; i++) t.observe(iris, T0 + 1000, 2000, true, 1);
    for (let i = 0; i < 20; i++) t.observe(iris, T0 + 2000, 300_000, true, 1);
    const w = t.window(iris, 60_000);
    expect(w.p50Ms).toBeCloseTo(2, 0);
    expect(Math.abs(w.p99Ms! - 300) / 300).toBeLessThan(0.05);
  });

  it('answers no percentiles for a window without requests, and zeros for a version without records', () => {
    const { t } = timeline();
    t.observe(iris, T0, 1000, true, 1);
    expect(t.window(iris, 5000, T0 + 600_000)).toEqual({ requests: 0, errors: 0 });
    expect(t.window({ model: 'other', version: '1' }, 60_000)).toEqual({ requests: 0, errors: 0 });
    expect(t.points({ model: 'other', version: '1' }, 0)).toEqual([]);
  });

  it('keeps an hour: a bucket reused an hour later holds only the new records', () => {
    const { t, setNow } = timeline(T0 + 1000);
    t.observe(iris, T0 + 1000, 20, false, 5);
    setNow(T0 + TIMELINE_KEEP_MS + 1000);
    t.observe(iris, T0 + TIMELINE_KEEP_MS + 1000, 1000, false, 1);
    expect(t.window(iris, TIMELINE_KEEP_MS * 2)).toMatchObject({ requests: 1, errors: 1 });
    expect(t.points(iris, 0).map((p) => [p.items, Math.round(p.p99Ms!)])).toEqual([[1, 1]]);
  });

  it('takes a late record within the hour, but not one older than the hour beside newer ones', () => {
    const { t, setNow } = timeline(T0);
    t.observe(iris, T0 + TIMELINE_KEEP_MS, 1000, true, 1);
    t.observe(iris, T0 + TIMELINE_KEEP_MS - 10_000, 1000, true, 1); // late, kept
    t.observe(iris, T0, 1000, false, 1); // same slot as the newest, an hour older: dropped
    setNow(T0 + TIMELINE_KEEP_MS + 1000);
    expect(t.window(iris, TIMELINE_KEEP_MS)).toMatchObject({ requests: 2, errors: 0 });
  });

  it('bounds the series: versions past maxSeries count under _unknown', () => {
    const { t } = timeline();
    for (const version of ['1', '2', '3', '4', '5']) t.observe({ model: 'm', version }, T0, 1000, true, 1);
    expect(t.series()).toEqual([
      { model: '_unknown', version: '_unknown' }, { model: 'm', version: '1' }, { model: 'm', version: '2' }, { model: 'm', version: '3' },
    ]);
    expect(t.window({ model: '_unknown', version: '_unknown' }, 60_000).requests).toBe(2);
  });

  it('remembers the latest record time of a version', () => {
    const { t } = timeline();
    t.observe(iris, T0 + 2000, 1000, true, 1);
    t.observe(iris, T0 + 1000, 1000, true, 1);
    expect(t.lastRecordMs(iris)).toBe(T0 + 2000);
    expect(t.lastRecordMs({ model: 'x', version: '1' })).toBe(0);
  });
});

describe('MonitorState feeds the timeline', () => {
  it('with every counted record, at its record time, under its bounded labels', () => {
    const state = new MonitorState({ now: () => T0 + 60_000 });
    state.known.add('iris', '1');
    state.count(record({ timestampMs: String(T0 + 1000), latencyUs: '2000', items: 3 }));
    state.count(record({ timestampMs: String(T0 + 1000), statusCode: 14 }));
    state.count(record({ model: 'never-announced', timestampMs: String(T0 + 1000) }));
    expect(state.timeline.points(iris, T0).map(({ atMs, requests, errors, items }) => ({ atMs, requests, errors, items }))).toEqual([{ atMs: T0, requests: 2, errors: 1, items: 4 }]);
    expect(state.timeline.series()).toEqual([{ model: '_unknown', version: '_unknown' }, iris]);
  });

  it('with the records read again to refill the windows after a restart', () => {
    const state = new MonitorState({ now: () => T0 + 60_000 });
    state.known.add('iris', '1');
    state.recall(record({ timestampMs: String(T0 + 1000) }));
    expect(state.timeline.window(iris, 60_000).requests).toBe(1);
  });
});
