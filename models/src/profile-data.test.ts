/** Reference values read as live inputs are: rows through the worker's parser, images through the preprocessor. */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { modelConfigSchema } from '@infermesh/worker';
import { ImageValues, ProfileDataError, referenceValuesFor, TabularValues } from './profile-data.js';

const tabularModel = modelConfigSchema.parse({
  name: 'shop', max_batch_size: 8,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }],
  preprocess: { tabular: { input: 'row', output: 'x', features: [{ name: 'price' }, { name: 'size', categories: ['s', 'm', 'l'] }] } },
});
const imageModel = modelConfigSchema.parse({
  name: 'lines', max_batch_size: 8,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 2, 8] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }],
  preprocess: { image: { input: 'image', output: 'x', width: 8, height: 2, resize: 'height-pad-right' } },
});
const row = (value: object) => Buffer.from(JSON.stringify(value));
const created = '2026-11-27';

describe('TabularValues', () => {
  it('reads numbers as the worker does (numeric strings too, rounded to FP32) and categories as their index', () => {
    const values = new TabularValues(tabularModel);
    values.add(row({ price: '5.1', size: 'l' }), 'line 2');
    values.add(row({ price: 2, size: 's' }), 'line 3');
    const { profile, summaries } = values.build({ source: 'test', created, bins: 2 });
    expect(profile.rows).toBe(2);
    expect(summaries.map((s) => [s.name, s.min, s.max])).toEqual([['price', 2, Math.fround(5.1)], ['size', 0, 2]]);
  });

  it('names where a row is wrong, in the worker\'s words', () => {
    const values = new TabularValues(tabularModel);
    expect(() => values.add(row({ price: 1 }), 'data.csv line 7')).toThrow(new ProfileDataError("data.csv line 7: has no value for feature 'size'"));
    expect(() => values.add(row({ price: 'cheap', size: 's' }), 'line 8')).toThrow(/^line 8: feature 'price' is "cheap", expected a number$/);
    expect(() => values.add(row({ price: 1, size: 'xl' }), 'line 9')).toThrow(/^line 9: feature 'size' is "xl", expected one of s, m, l$/);
  });

  it('refuses to build a profile of no rows', () => {
    expect(() => new TabularValues(tabularModel).build({ source: '', created })).toThrow(/no rows to profile/);
  });
});

describe('ImageValues', () => {
  const solid = (width: number, height: number, grey: number) => sharp({ create: { width, height, channels: 3, background: { r: grey, g: grey, b: grey } } }).png().toBuffer();

  it('profiles the five image statistics from the preprocessor\'s measurements', async () => {
    const values = new ImageValues(imageModel);
    const statistics = await values.add(await solid(8, 4, 100), 'a.png');
    expect(statistics).toEqual({ width: 8, height: 4, brightness: expect.closeTo(100, 10), contrast: 0 });
    await values.add(await solid(2, 2, 200), 'b.png');
    const { profile } = values.build({ source: 'test', created });
    expect(profile.features.map((f) => f.name)).toEqual(['image.width', 'image.height', 'image.aspect_ratio', 'image.brightness', 'image.contrast']);
    expect(profile.features[2].edges).toEqual([1.5]);
  });

  it('names the file that is not an image', async () => {
    await expect(new ImageValues(imageModel).add(Buffer.from('not an image'), 'scans/broken.png')).rejects.toThrow(/^scans\/broken.png: is not a known image format/);
  });
});

describe('referenceValuesFor', () => {
  it('gathers rows for a tabular model and images for an image model', () => {
    expect(referenceValuesFor(tabularModel)).toBeInstanceOf(TabularValues);
    expect(referenceValuesFor(imageModel)).toBeInstanceOf(ImageValues);
  });

  it('refuses a model without a pipeline: nothing the worker bins', () => {
    const plain = modelConfigSchema.parse({ name: 'plain', inputs: [{ name: 'x', datatype: 'FP32', shape: [1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }] });
    expect(() => referenceValuesFor(plain)).toThrow(/model 'plain' has no preprocess section/);
  });
});
