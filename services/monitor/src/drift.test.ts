/**
 * Drift per model version: the PSI of the live window against the reference, references
 * only for announced versions, records whose bins do not fit the reference counted as
 * dropped, a window that ages by record time, and counts that survive a snapshot.
 */
import { describe, expect, it } from 'vitest';
import type { DriftReference__Output, PredictionRecord__Output } from '@infermesh/contracts';
import { DriftTracker, MIN_EXPECTED_SHARE, populationStabilityIndex } from './drift.js';
import { KnownModels } from './known-models.js';
import { PrometheusText } from './prometheus-text.js';
import { record as fixture } from './records.fixture.js';

const T0 = 1_700_000_000_000;

/** Two features of three bins each. */
function reference(profileId = 'p1', expected: number[][] = [[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]): DriftReference__Output {
  return {
    profileId,
    rows: '100',
    features: expected.map((e, i) => ({ name: `f${i}`, edges: e.slice(1).map((_, j) => j), expected: e })),
  };
}

function tracker(options: { windowMs?: number; minInputs?: number } = {}) {
  let now = T0;
  const known = new KnownModels(10);
  known.add('iris', '1');
  const drift = new DriftTracker({ known, windowMs: options.windowMs ?? 60_000, minInputs: options.minInputs ?? 4, now: () => now });
  drift.learn('iris', '1', reference());
  return { drift, known, advance: (ms: number) => (now += ms), now: () => now };
}

/** A record of `rows` inputs, each [bin of f0, bin of f1]. */
function binned(rows: number[][], overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  return fixture({ items: rows.length, driftBins: Buffer.from(rows.flat()), profileId: 'p1', ...overrides });
}

describe('populationStabilityIndex', () => {
  it('is about 0 when the window has the reference distribution', () => {
    expect(populationStabilityIndex([2000, 5000, 3000], [0.2, 0.5, 0.3])).toBeLessThan(1e-4);
  });

  it('is large when the mass moved to other bins', () => {
    expect(populationStabilityIndex([8000, 1000, 1000], [0.2, 0.5, 0.3])).toBeGreaterThan(0.5);
  });

  it('stays finite with empty observed bins and reference bins of share 0', () => {
    const psi = populationStabilityIndex([0, 0, 10], [0.5, 0.5, 0]);
    expect(Number.isFinite(psi)).toBe(true);
    expect(psi).toBeGreaterThan(1);
  });

  it('is never negative', () => {
    for (const counts of [[1, 0, 0], [0, 3, 9], [5, 5, 5], [0, 0, 0]]) expect(populationStabilityIndex(counts, [0.2, 0.5, 0.3])).toBeGreaterThanOrEqual(0);
  });

  it('takes a reference share below the floor as the floor', () => {
    expect(populationStabilityIndex([0, 10], [1, 0])).toBe(populationStabilityIndex([0, 10], [1, MIN_EXPECTED_SHARE]));
  });
});

describe('references', () => {
  it('learns a reference only for a model version the mesh announced', () => {
    const { drift } = tracker();
    expect(drift.learn('resnet', '3', reference())).toBe('not_known');
    expect(drift.readings().map((r) => `${r.model}:${r.version}`)).toEqual(['iris:1']);
  });

  it('keeps the latest profile of a version, and starts its window afresh', () => {
    const { drift } = tracker();
    drift.observe(binned([[0, 0], [1, 1]]), T0);
    expect(drift.learn('iris', '1', reference('p1'))).toBe('same');
    expect(drift.reading('iris', '1')?.windowInputs).toBe(2);
    expect(drift.learn('iris', '1', reference('p2'))).toBe('learned');
    expect(drift.reading('iris', '1')).toMatchObject({ profileId: 'p2', windowInputs: 0 });
  });

  it('keeps each profile\'s window when the workers of a version announce two profiles by turns (a profile rolled out worker by worker)', () => {
    const { drift } = tracker();
    drift.observe(binned([[0, 0], [1, 1]]), T0);
    expect(drift.learn('iris', '1', reference('p2'))).toBe('learned');
    drift.observe(binned([[2, 2]], { profileId: 'p2' }), T0);
    expect(drift.learn('iris', '1', reference('p1'))).toBe('switched');
    expect(drift.reading('iris', '1')).toMatchObject({ profileId: 'p1', windowInputs: 2 });
    expect(drift.learn('iris', '1', reference('p2'))).toBe('switched');
    expect(drift.reading('iris', '1')).toMatchObject({ profileId: 'p2', windowInputs: 1 });
  });

  it('counts a record binned with the profile announced before the current one in that profile\'s window', () => {
    const { drift } = tracker();
    drift.learn('iris', '1', reference('p2'));
    expect(drift.observe(binned([[0, 0]], { profileId: 'p1' }), T0)).toBe('counted');
    expect(drift.reading('iris', '1')).toMatchObject({ profileId: 'p2', windowInputs: 0 });
    drift.learn('iris', '1', reference('p1'));
    expect(drift.reading('iris', '1')).toMatchObject({ profileId: 'p1', windowInputs: 1 });
    expect(drift.droppedCounts().profile_mismatch).toBe(0);
  });

  it('forgets the profile before the previous one', () => {
    const { drift } = tracker();
    drift.observe(binned([[0, 0]]), T0);
    drift.learn('iris', '1', reference('p2'));
    drift.learn('iris', '1', reference('p3'));
    expect(drift.observe(binned([[0, 0]]), T0)).toBe('profile_mismatch');
    expect(drift.learn('iris', '1', reference('p1'))).toBe('learned');
    expect(drift.reading('iris', '1')).toMatchObject({ profileId: 'p1', windowInputs: 0 });
  });

  it('refuses a reference whose expected shares do not match its bins, and says so once', () => {
    const { drift } = tracker();
    const bad: DriftReference__Output = { profileId: 'bad', rows: '1', features: [{ name: 'f0', edges: [1, 2], expected: [0.5, 0.5] }] };
    expect(drift.learn('iris', '1', bad)).toEqual({ rejected: expect.stringContaining('2 expected shares for 3 bins') as unknown });
    expect(drift.learn('iris', '1', bad)).toBe('same');
    expect(drift.reading('iris', '1')?.profileId).toBe('p1');
  });
});

describe('counting bins', () => {
  it('counts each input\'s bin per feature into the window\'s observed shares', () => {
    const { drift } = tracker();
    expect(drift.observe(binned([[0, 0], [1, 0], [1, 2], [2, 0]]), T0)).toBe('counted');
    const reading = drift.reading('iris', '1')!;
    expect(reading.windowInputs).toBe(4);
    expect(reading.features.map((f) => f.observed)).toEqual([[0.25, 0.5, 0.25], [0.75, 0, 0.25]]);
    expect(reading.features.map((f) => f.expected)).toEqual([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]);
    expect(reading.maxPsi).toBe(Math.max(...reading.features.map((f) => f.psi)));
  });

  const dropped: [string, Partial<PredictionRecord__Output>, string][] = [
    ['binned with another profile', { profileId: 'p0' }, 'profile_mismatch'],
    ['with fewer bins than items x features', { items: 3 }, 'malformed'],
    ['with a bin past its feature\'s bins', { driftBins: Buffer.from([0, 0, 3, 0]) }, 'malformed'],
    ['of a version without a reference', { version: '2' }, 'no_reference'],
  ];
  for (const [what, overrides, reason] of dropped) {
    it(`counts nothing of a record ${what}, and counts it as dropped (${reason})`, () => {
      const { drift } = tracker();
      expect(drift.observe(binned([[0, 0], [1, 1]], overrides), T0)).toBe(reason);
      expect(drift.reading('iris', '1')?.windowInputs).toBe(0);
      expect(drift.droppedCounts()[reason as 'malformed']).toBe(1);
    });
  }

  it('leaves failed requests and records without bins alone', () => {
    const { drift } = tracker();
    expect(drift.observe(binned([[0, 0]], { statusCode: 14 }), T0)).toBe('ignored');
    expect(drift.observe(fixture(), T0)).toBe('ignored');
    expect(drift.reading('iris', '1')?.windowInputs).toBe(0);
    expect(drift.droppedCounts()).toEqual({ no_reference: 0, profile_mismatch: 0, malformed: 0 });
  });
});

describe('the window', () => {
  it('drops inputs once their record time is older than the window', () => {
    const { drift, advance } = tracker({ windowMs: 60_000 });
    drift.observe(binned([[0, 0]]), T0 - 30_000);
    drift.observe(binned([[1, 1], [1, 1]]), T0);
    expect(drift.reading('iris', '1')?.windowInputs).toBe(3);
    advance(40_000);
    expect(drift.reading('iris', '1')?.windowInputs).toBe(2);
    advance(30_000);
    expect(drift.reading('iris', '1')?.windowInputs).toBe(0);
  });

  it('keeps a day-long window in at most 121 buckets', () => {
    const { drift } = tracker({ windowMs: 24 * 3600 * 1000 });
    for (let t = T0 - 24 * 3600 * 1000 + 60_000; t <= T0; t += 60_000) drift.observe(binned([[0, 0]]), t);
    expect(drift.reading('iris', '1')?.windowInputs).toBe(24 * 60);
    expect(drift.save().series[0].buckets.length).toBeLessThanOrEqual(121);
  });

  it('does not count a record already older than the window', () => {
    const { drift } = tracker({ windowMs: 60_000 });
    expect(drift.observe(binned([[0, 0]]), T0 - 120_000)).toBe('aged');
    expect(drift.reading('iris', '1')?.windowInputs).toBe(0);
  });

  it('says enough inputs only from MONITOR_DRIFT_MIN_INPUTS on, and shows the PSI gauge only then', () => {
    const { drift } = tracker({ minInputs: 3 });
    drift.observe(binned([[0, 0], [1, 1]]), T0);
    const text = () => {
      const out = new PrometheusText();
      drift.writePrometheus(out);
      return out.toString();
    };
    expect(drift.reading('iris', '1')?.enoughInputs).toBe(false);
    expect(text()).not.toContain('infermesh_model_drift_psi{');
    expect(text()).toContain('infermesh_model_drift_window_inputs{model="iris",version="1"} 2');
    drift.observe(binned([[2, 2]]), T0);
    expect(drift.reading('iris', '1')?.enoughInputs).toBe(true);
    expect(text()).toMatch(/^infermesh_model_drift_psi\{model="iris",version="1",feature="f0"\} \d/m);
  });

  it('reads a shifted window as drift and the reference distribution as none', () => {
    const { drift } = tracker();
    const rows = (n: number, bins: number[]) => Array.from({ length: n }, () => bins);
    drift.observe(binned([...rows(20, [0, 0]), ...rows(50, [1, 0]), ...rows(30, [2, 0])].map(([a], i) => [a, i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2])), T0);
    const [f0, f1] = drift.reading('iris', '1')!.features;
    expect(f0.psi).toBeLessThan(0.02);
    expect(f1.psi).toBeLessThan(0.02);
    const { drift: shifted } = tracker();
    shifted.observe(binned(rows(100, [2, 2])), T0);
    expect(shifted.reading('iris', '1')!.maxPsi).toBeGreaterThan(1);
  });
});

describe('snapshot', () => {
  it('gives back the window counts and references it saved', () => {
    const { drift, now } = tracker();
    drift.observe(binned([[0, 0], [1, 2]]), T0 - 10_000);
    drift.observe(binned([[2, 1]]), T0);
    drift.observe(binned([[0, 0]], { profileId: 'old' }), T0);
    const known = new KnownModels(10);
    known.add('iris', '1');
    const restored = new DriftTracker({ known, windowMs: 60_000, minInputs: 4, now });
    restored.restore(JSON.parse(JSON.stringify(drift.save())) as ReturnType<DriftTracker['save']>);
    expect(restored.readings()).toEqual(drift.readings());
    expect(restored.droppedCounts()).toEqual({ no_reference: 0, profile_mismatch: 1, malformed: 0 });
  });

  it('puts the saved counts into its own buckets when restarted with another window', () => {
    const { drift, now, advance } = tracker({ windowMs: 60_000 });
    drift.observe(binned([[0, 0]]), T0 - 50_000);
    drift.observe(binned([[1, 1]]), T0 - 20_000);
    const known = new KnownModels(10);
    known.add('iris', '1');
    // A one-hour window has 30 s buckets: the saved 5 s buckets land by their times.
    const longer = new DriftTracker({ known, windowMs: 3_600_000, minInputs: 4, now });
    longer.restore(drift.save());
    expect(longer.reading('iris', '1')?.windowInputs).toBe(2);
    advance(3_600_000 - 10_000);
    expect(longer.reading('iris', '1')?.windowInputs).toBe(1);
    advance(-(3_600_000 - 10_000));
    const shorter = new DriftTracker({ known, windowMs: 30_000, minInputs: 4, now });
    shorter.restore(drift.save());
    expect(shorter.reading('iris', '1')?.windowInputs).toBe(1);
  });

  it('keeps a reference announced since the start over an older saved one, and drops the saved counts', () => {
    const { drift, now } = tracker();
    drift.observe(binned([[0, 0]]), T0);
    const known = new KnownModels(10);
    known.add('iris', '1');
    const restored = new DriftTracker({ known, windowMs: 60_000, minInputs: 4, now });
    restored.learn('iris', '1', reference('p2'));
    restored.restore(drift.save());
    expect(restored.reading('iris', '1')).toMatchObject({ profileId: 'p2', windowInputs: 0 });
  });
});
