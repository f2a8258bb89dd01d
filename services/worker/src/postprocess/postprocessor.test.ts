/** Loading a model's post-processing from its config, and what it answers per request. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelConfigSchema } from '../model-config.js';
import { loadPostprocessor } from './postprocessor.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postprocess-'));
  await writeFile(join(dir, 'keys.txt'), 'a\nb\n');
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const base = { name: 'm', max_batch_size: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 48, -1] }], outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 4] }] };
const ctc = (dictionary = 'keys.txt') => modelConfigSchema.parse({ ...base, postprocess: { ctc: { dictionary } } });
const session = (classes: number) => ({ outputNames: ['probs'], outputMetadata: [{ name: 'probs', isTensor: true as const, type: 'float32' as const, shape: ['N', 'T', classes] }] });

describe('config.yaml postprocess', () => {
  it('refuses an unknown setting, naming it', () => {
    const parsed = modelConfigSchema.safeParse({ ...base, postprocess: { db: { thres: 0.3 } } });
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toContain('thres');
  });

  it('refuses a dictionary given with a path', () => {
    expect(modelConfigSchema.safeParse({ ...base, postprocess: { ctc: { dictionary: '../keys.txt' } } }).success).toBe(false);
  });
});

describe('loadPostprocessor', () => {
  it('fails a model whose dictionary is missing, naming it', async () => {
    await expect(loadPostprocessor(ctc('nope.txt'), dir)).rejects.toThrow(/dictionary 'nope.txt' cannot be read/);
  });

  it('fails a model whose classes are not the dictionary\'s characters, the space and the blank', async () => {
    await expect(loadPostprocessor(ctc(), dir, session(5))).rejects.toThrow(/has 5 classes, the dictionary 3 characters \(\+ the blank makes 4\)/);
    expect(await loadPostprocessor(ctc(), dir, session(4))).toBeDefined();
  });

  it('answers text [N] and score [N] for N lines', async () => {
    const post = (await loadPostprocessor(ctc(), dir, session(4)))!;
    // Two lines of 2 steps over blank, a, b, space: "ab" and "" (all blank).
    const probs = Float32Array.from([0.1, 0.8, 0.05, 0.05, 0.1, 0.1, 0.6, 0.2, 1, 0, 0, 0, 1, 0, 0, 0]);
    const [text, score] = post.apply({ name: 'probs', datatype: 'FP32', shape: [2, 2, 4], data: probs }, { frame: { height: 48, width: 16 }, items: [] });
    expect(text).toMatchObject({ name: 'text', datatype: 'BYTES', shape: [2] });
    expect((text.data as Buffer[]).map(String)).toEqual(['ab', '']);
    expect(score.shape).toEqual([2]);
    expect((score.data as Float32Array)[0]).toBeCloseTo(0.7, 6);
  });

  it('answers a db model\'s boxes ragged across a request\'s images, with each box\'s image_index', async () => {
    const config = modelConfigSchema.parse({ ...base, inputs: [{ name: 'x', datatype: 'FP32', shape: [3, -1, -1] }], outputs: [{ name: 'map', datatype: 'FP32', shape: [1, -1, -1] }], postprocess: { db: {} } });
    const post = (await loadPostprocessor(config, dir))!;
    // Image 0 has no text, image 1 one 20 x 10 region: K = 1, of image 1.
    const map = new Float32Array(2 * 32 * 32);
    for (let y = 10; y < 20; y++) for (let x = 5; x < 25; x++) map[32 * 32 + y * 32 + x] = 0.9;
    const geometry = { height: 32, width: 32, sourceHeight: 32, sourceWidth: 32 };
    const [boxes, scores, index] = post.apply({ name: 'map', datatype: 'FP32', shape: [2, 1, 32, 32], data: map }, { frame: { height: 32, width: 32 }, items: [geometry, geometry] });
    expect(boxes.shape).toEqual([1, 4, 2]);
    expect(scores.shape).toEqual([1]);
    expect(Array.from(index.data as Int32Array)).toEqual([1]);
    expect(() => post.apply({ name: 'map', datatype: 'FP32', shape: [2, 1, 32, 32], data: map }, { frame: { height: 32, width: 32 }, items: [geometry] }))
      .toThrow(/2 probability maps for 1 images/);
  });
});
