/** The reference profile file: what makes one valid, where a model's is found, its id, and how a value finds its bin. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { binIndex, checkProfileFitsModel, DriftProfileError, loadDriftProfile, MAX_PROFILE_BYTES, parseDriftProfile } from './drift-profile.js';
import { modelConfigSchema } from './model-config.js';

const valid = {
  format: 1,
  kind: 'tabular',
  rows: 4,
  source: 'four rows',
  created: '2026-11-27T00:00:00.000Z',
  features: [
    { name: 'a', edges: [1.5, 2.5], expected: [0.25, 0.25, 0.5] },
    { name: 'b', edges: [], expected: [1] },
  ],
};

const bytes = (document: unknown) => Buffer.from(JSON.stringify(document));
const problem = (document: unknown) => {
  try {
    parseDriftProfile(bytes(document), 'm/1/profile.json');
    return '';
  } catch (error) {
    expect(error).toBeInstanceOf(DriftProfileError);
    return (error as Error).message;
  }
};

const tabularModel = modelConfigSchema.parse({
  name: 'm', max_batch_size: 8,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }],
  preprocess: { tabular: { input: 'row', output: 'x', features: [{ name: 'a' }, { name: 'b' }] } },
});
const imageModel = modelConfigSchema.parse({
  name: 'm', max_batch_size: 8,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 2, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }],
  preprocess: { image: { input: 'image', output: 'x', width: 2, height: 2 } },
});

describe('binIndex', () => {
  const edges = [1, 2, 4];

  it('counts the edges at or below the value: a value on an edge is in the bin above it', () => {
    expect([0.5, 1, 1.5, 2, 3.99, 4].map((v) => binIndex(edges, v))).toEqual([0, 1, 1, 2, 2, 3]);
  });

  it('puts everything below the first edge in bin 0 and everything from the last edge on in the last bin', () => {
    expect(binIndex(edges, -1e300)).toBe(0);
    expect(binIndex(edges, 1e300)).toBe(3);
  });

  it('puts every value in bin 0 when there are no edges, and NaN in bin 0', () => {
    expect(binIndex([], 42)).toBe(0);
    expect(binIndex(edges, Number.NaN)).toBe(0);
  });
});

describe('parseDriftProfile', () => {
  it('reads a valid profile, with the first 16 hex digits of its SHA-256 as its id', () => {
    const file = bytes(valid);
    const loaded = parseDriftProfile(file, 'm/1/profile.json');
    expect(loaded.profile).toEqual(valid);
    expect(loaded.profileId).toBe(createHash('sha256').update(file).digest('hex').slice(0, 16));
    expect(loaded.profileId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('names the file and the problem for text that is not JSON', () => {
    expect(() => parseDriftProfile(Buffer.from('{"format": 1,'), 'm/1/profile.json')).toThrow(/^m\/1\/profile.json is not valid JSON/);
  });

  it('refuses a format it does not know', () => {
    expect(problem({ ...valid, format: 2 })).toMatch(/m\/1\/profile.json is not a valid profile: format/);
  });

  it('refuses edges that do not ascend', () => {
    expect(problem({ ...valid, features: [{ name: 'a', edges: [2, 1], expected: [0.5, 0.25, 0.25] }] })).toMatch(/features.0.edges: edges must be strictly ascending/);
  });

  it('refuses a share count that does not match the edges', () => {
    expect(problem({ ...valid, features: [{ name: 'a', edges: [1], expected: [1] }] })).toMatch(/1 edges make 2 bins, expected has 1 shares/);
  });

  it('refuses shares that do not sum to 1', () => {
    expect(problem({ ...valid, features: [{ name: 'a', edges: [1], expected: [0.5, 0.4] }] })).toMatch(/shares sum to 0.9, not 1/);
  });

  it('refuses more than 64 features and more than 32 bins', () => {
    const many = Array.from({ length: 65 }, (_, i) => ({ name: `f${i}`, edges: [], expected: [1] }));
    expect(problem({ ...valid, features: many })).toMatch(/features/);
    const edges = Array.from({ length: 32 }, (_, i) => i);
    expect(problem({ ...valid, features: [{ name: 'a', edges, expected: new Array(33).fill(1 / 33) }] })).toMatch(/edges/);
  });

  it('refuses a feature named twice', () => {
    expect(problem({ ...valid, features: [valid.features[0], valid.features[0]] })).toMatch(/feature 'a' appears twice/);
  });

  it('refuses a file over the size limit before parsing it', () => {
    expect(() => parseDriftProfile(Buffer.alloc(MAX_PROFILE_BYTES + 1, 0x20), 'big.json')).toThrow(/big.json is 1048577 bytes, over the 1048576-byte limit/);
  });
});

describe('checkProfileFitsModel', () => {
  const loaded = (document: object) => parseDriftProfile(bytes(document), 'p.json');

  it('accepts a tabular profile of the model\'s features, and an image profile of image statistics', () => {
    expect(() => checkProfileFitsModel(loaded(valid), tabularModel)).not.toThrow();
    const image = { ...valid, kind: 'image', features: [{ name: 'image.width', edges: [], expected: [1] }, { name: 'image.contrast', edges: [3], expected: [0.5, 0.5] }] };
    expect(() => checkProfileFitsModel(loaded(image), imageModel)).not.toThrow();
  });

  it('refuses a tabular profile naming a feature the model does not have', () => {
    expect(() => checkProfileFitsModel(loaded({ ...valid, features: [{ name: 'c', edges: [], expected: [1] }] }), tabularModel)).toThrow(/p.json names 'c', not features of model 'm' \(features: a, b\)/);
  });

  it('refuses a profile whose kind is not the model\'s pipeline', () => {
    expect(() => checkProfileFitsModel(loaded(valid), imageModel)).toThrow(/tabular profile, but model 'm' has no tabular pipeline/);
    expect(() => checkProfileFitsModel(loaded({ ...valid, kind: 'image' }), tabularModel)).toThrow(/image profile, but model 'm' has no image pipeline/);
  });

  it('refuses an image profile naming something that is not an image statistic', () => {
    expect(() => checkProfileFitsModel(loaded({ ...valid, kind: 'image' }), imageModel)).toThrow(/names 'a', 'b', not image statistics \(image.width, image.height, image.aspect_ratio, image.brightness, image.contrast\)/);
  });
});

describe('loadDriftProfile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'infermesh-profile-'));
    await mkdir(join(dir, '1'));
    await mkdir(join(dir, '2'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is undefined when the model has no profile', async () => {
    expect(await loadDriftProfile(dir, '1', tabularModel)).toBeUndefined();
  });

  it('takes the version\'s own profile before the model\'s', async () => {
    await writeFile(join(dir, 'profile.json'), JSON.stringify({ ...valid, source: 'model' }));
    await writeFile(join(dir, '2', 'profile.json'), JSON.stringify({ ...valid, source: 'version 2' }));
    expect((await loadDriftProfile(dir, '2', tabularModel))?.profile.source).toBe('version 2');
    expect((await loadDriftProfile(dir, '1', tabularModel))?.file).toBe(join(dir, 'profile.json'));
  });

  it('refuses a profile that does not fit the model, naming the file', async () => {
    await writeFile(join(dir, '1', 'profile.json'), JSON.stringify({ ...valid, kind: 'image' }));
    await expect(loadDriftProfile(dir, '1', tabularModel)).rejects.toThrow(new RegExp(`^${join(dir, '1', 'profile.json')} is an image profile`));
  });
});
