/** Binning a request's inputs with its model's profile: rows of the feature tensor, and image statistics. */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '@infermesh/tensor';
import { DriftBinner, driftReferenceOf, imageFeatureValues, tabularFeatureValues } from './drift-bins.js';
import { parseDriftProfile } from './drift-profile.js';
import { modelConfigSchema, tabularPipeline } from './model-config.js';

const tabularModel = modelConfigSchema.parse({
  name: 'm', max_batch_size: 8,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [5] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }],
  preprocess: { tabular: { input: 'row', output: 'x', features: [{ name: 'a' }, { name: 'color', categories: ['red', 'green', 'blue'] }, { name: 'b' }] } },
});
const imageModel = modelConfigSchema.parse({
  name: 'm', max_batch_size: 8,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 2, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }],
  preprocess: { image: { input: 'image', output: 'x', width: 2, height: 2 } },
});

const profile = (kind: string, features: { name: string; edges: number[] }[]) =>
  parseDriftProfile(Buffer.from(JSON.stringify({
    format: 1, kind, rows: 10, source: 'test', created: '2026-11-27',
    features: features.map((f) => ({ ...f, expected: new Array(f.edges.length + 1).fill(1 / (f.edges.length + 1)) })),
  })), 'profile.json');

/** A feature tensor in the pipeline's columns: a, color one-hot (3), b. */
const features = (rows: number[][]): Tensor => ({ name: 'x', datatype: 'FP32', shape: [rows.length, 5], data: Float32Array.from(rows.flat()) });

describe('DriftBinner on a tabular model', () => {
  // Profile order differs from the pipeline's: b, then a, then color.
  const binner = new DriftBinner(profile('tabular', [{ name: 'b', edges: [0] }, { name: 'a', edges: [1, 2, 3] }, { name: 'color', edges: [0.5, 1.5] }]), tabularModel);

  it('gives one byte per row and feature, row-major, in profile order', () => {
    const bins = binner.binRows(features([
      [2.5, 0, 0, 1, -1], // a bin 2, blue (index 2) bin 2, b bin 0
      [0, 1, 0, 0, 7], // a bin 0, red bin 0, b bin 1
    ]));
    expect(Array.from(bins!)).toEqual([0, 2, 2, 1, 0, 0]);
  });

  it('bins a categorical feature by its category\'s index', () => {
    const bins = binner.binRows(features([[0, 0, 1, 0, 0]]));
    expect(bins![2]).toBe(1); // green
  });

  it('puts a value on an edge in the bin above it', () => {
    expect(Array.from(binner.binRows(features([[3, 1, 0, 0, 0]]))!)).toEqual([1, 3, 0]);
  });

  it('has no image bins', () => {
    expect(binner.binImages([{ width: 1, height: 1, brightness: 0, contrast: 0 }])).toBeUndefined();
  });
});

describe('DriftBinner on an image model', () => {
  const binner = new DriftBinner(profile('image', [
    { name: 'image.aspect_ratio', edges: [1, 4] },
    { name: 'image.brightness', edges: [100, 200] },
    { name: 'image.width', edges: [64] },
  ]), imageModel);

  it('bins each image\'s statistics in profile order, the aspect ratio being width / height', () => {
    const bins = binner.binImages([
      { width: 192, height: 48, brightness: 150, contrast: 10 }, // ratio 4 → 2, 150 → 1, 192 → 1
      { width: 20, height: 40, brightness: 250, contrast: 0 }, // ratio 0.5 → 0, 250 → 2, 20 → 0
    ]);
    expect(Array.from(bins!)).toEqual([2, 1, 1, 0, 2, 0]);
  });

  it('has no row bins', () => {
    expect(binner.binRows(features([[0, 0, 0, 0, 0]]))).toBeUndefined();
  });
});

describe('tabularFeatureValues', () => {
  it('reads each named feature\'s column, a categorical one as its category index', () => {
    const values = tabularFeatureValues(tabularPipeline(tabularModel)!, ['b', 'color'], features([[1, 0, 0, 1, 4], [2, 0, 1, 0, 5]]));
    expect(values.map((v) => Array.from(v))).toEqual([[4, 5], [2, 1]]);
  });
});

describe('imageFeatureValues', () => {
  it('reads each named statistic of each image, the aspect ratio being width / height', () => {
    const values = imageFeatureValues(['image.aspect_ratio', 'image.contrast'], [{ width: 96, height: 48, brightness: 1, contrast: 7 }, { width: 10, height: 40, brightness: 2, contrast: 3 }]);
    expect(values.map((v) => Array.from(v))).toEqual([[2, 0.25], [7, 3]]);
  });
});

describe('driftReferenceOf', () => {
  it('announces the features, the profile id and the rows profiled', () => {
    const loaded = profile('tabular', [{ name: 'a', edges: [1] }]);
    expect(driftReferenceOf(loaded)).toEqual({ features: [{ name: 'a', edges: [1], expected: [0.5, 0.5] }], profileId: loaded.profileId, rows: 10 });
  });
});
