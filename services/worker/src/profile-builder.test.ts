/** Building a reference profile from reference values: quantile edges, shares per bin, the file's text. */
import { describe, expect, it } from 'vitest';
import { binIndex, parseDriftProfile } from './drift-profile.js';
import { buildDriftProfile, featureReference, ProfileBuildError, quantileEdges, serializeDriftProfile } from './profile-builder.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const created = '2026-11-27T00:00:00.000Z';

describe('quantileEdges', () => {
  it('cuts 1..100 into deciles, each edge halfway between the last value of a bin and the first of the next', () => {
    expect(quantileEdges(Float64Array.from(range(1, 100)), 10)).toEqual([10.5, 20.5, 30.5, 40.5, 50.5, 60.5, 70.5, 80.5, 90.5]);
  });

  it('gives a feature with few distinct values fewer bins: repeated quantiles make one edge', () => {
    // 3 distinct values: at most 2 edges, between them.
    const values = Float64Array.from([...new Array(50).fill(1), ...new Array(30).fill(2), ...new Array(20).fill(7)]);
    expect(quantileEdges(values, 10)).toEqual([1.5, 4.5]);
  });

  it('writes an edge between FP32 values with few digits', () => {
    const values = Float64Array.from([4.9, 5, 5, 5.1].map(Math.fround));
    expect(quantileEdges(values, 4)).toEqual([4.95, 5.05]);
  });

  it('gives a constant feature no edges: one bin', () => {
    expect(quantileEdges(Float64Array.from(new Array(20).fill(3)), 10)).toEqual([]);
  });

  it('keeps values rounded to FP32 in the bin of their reference value', () => {
    // 5.1 reaches the worker as FP32 5.0999999; an edge on 5.1 itself would put it in the bin below.
    const values = Float64Array.from([4.9, 5.0, 5.1, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7]).sort();
    const edges = quantileEdges(values, 5);
    for (const value of values) expect(binIndex(edges, Math.fround(value)), `${value}`).toBe(binIndex(edges, value));
  });
});

describe('featureReference', () => {
  it('gives the share of reference values in each bin, summing to 1', () => {
    const { reference } = featureReference({ name: 'x', values: range(1, 100) });
    expect(reference.expected).toEqual(new Array(10).fill(0.1));
  });

  it('counts a reference value in the bin binIndex gives it', () => {
    const values = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4];
    const { reference } = featureReference({ name: 'pi', values }, 4);
    const counts = new Array(reference.expected.length).fill(0);
    for (const v of values) counts[binIndex(reference.edges, v)]++;
    expect(reference.expected).toEqual(counts.map((c) => c / values.length));
    expect(reference.expected.every((share) => share > 0)).toBe(true);
  });

  it('summarizes the feature: bins, min, median and max', () => {
    expect(featureReference({ name: 'x', values: [5, 1, 3, 2, 4] }, 2).summary).toEqual({ name: 'x', bins: 2, min: 1, median: 3, max: 5 });
  });

  it('refuses no values, a value that is not finite, and a bin count out of 2..32', () => {
    expect(() => featureReference({ name: 'x', values: [] })).toThrow(/feature 'x' has no values/);
    expect(() => featureReference({ name: 'x', values: [1, Number.NaN] })).toThrow(/feature 'x': value 1 is NaN/);
    expect(() => featureReference({ name: 'x', values: [1] }, 33)).toThrow(ProfileBuildError);
    expect(() => featureReference({ name: 'x', values: [1] }, 1)).toThrow(/bins must be a whole number from 2 to 32, got 1/);
  });
});

describe('buildDriftProfile', () => {
  it('builds a profile the worker loads, features in the order given', () => {
    const { profile } = buildDriftProfile({ kind: 'tabular', source: 'test', created, features: [{ name: 'b', values: range(1, 10) }, { name: 'a', values: range(11, 20) }], bins: 5 });
    expect(profile).toMatchObject({ format: 1, kind: 'tabular', rows: 10, source: 'test', created });
    expect(profile.features.map((f) => f.name)).toEqual(['b', 'a']);
    expect(profile.features[0].edges).toEqual([2.5, 4.5, 6.5, 8.5]);
    expect(parseDriftProfile(Buffer.from(serializeDriftProfile(profile)), 'p.json').profile).toEqual(profile);
  });

  it('refuses features with different numbers of values, none at all, and more than 64', () => {
    expect(() => buildDriftProfile({ kind: 'tabular', source: '', created, features: [{ name: 'a', values: [1, 2] }, { name: 'b', values: [1] }] })).toThrow(/feature 'b' has 1 values, 'a' has 2/);
    expect(() => buildDriftProfile({ kind: 'tabular', source: '', created, features: [] })).toThrow(/no features/);
    const many = Array.from({ length: 65 }, (_, i) => ({ name: `f${i}`, values: [1] }));
    expect(() => buildDriftProfile({ kind: 'tabular', source: '', created, features: many })).toThrow(/65 features, a profile holds at most 64/);
  });
});

describe('serializeDriftProfile', () => {
  it('writes the same bytes for the same profile, one feature per line', () => {
    const build = () => buildDriftProfile({ kind: 'image', source: 'lines', created, features: [{ name: 'image.width', values: [10, 20, 30] }, { name: 'image.height', values: [5, 5, 6] }] }).profile;
    const text = serializeDriftProfile(build());
    expect(serializeDriftProfile(build())).toBe(text);
    expect(text.split('\n').filter((line) => line.includes('"edges"'))).toHaveLength(2);
    expect(text.endsWith('}\n')).toBe(true);
  });
});
