/** Images of different sizes in one batch: their sizes in the frame, cut to size, padded to the batch's largest. */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '@infermesh/tensor';
import { modelConfigSchema } from './model-config.js';
import { cropFrames, padPixel, paddedFrame, resizedSize, stackPadded, variableDims, widthGroups } from './variable-size.js';
import { servedInputs, imagePipeline } from './model-config.js';

const recognition = modelConfigSchema.parse({
  name: 'rec', max_batch_size: 8,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 48, -1] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 10] }],
  preprocess: { image: { input: 'image', output: 'x', width: 1536, height: 48, resize: 'height-pad-right', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], channel_order: 'BGR', min_width: 320 } },
});
const detection = modelConfigSchema.parse({
  name: 'det', max_batch_size: 4,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [3, -1, -1] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [1, -1, -1] }],
  preprocess: { image: { input: 'image', output: 'x', width: 960, height: 960, resize: 'limit-32', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channel_order: 'BGR' } },
});

function pixels(name: string, n: number, h: number, w: number, value: number): Tensor {
  return { name, datatype: 'UINT8', shape: [n, h, w, 3], data: new Uint8Array(n * h * w * 3).fill(value) };
}

describe('variable sides', () => {
  it('are the ones the graph input leaves -1, and stay -1 in the served pixel tensor', () => {
    expect(variableDims(recognition, imagePipeline(recognition))).toEqual({ height: false, width: true });
    expect(variableDims(detection, imagePipeline(detection))).toEqual({ height: true, width: true });
    expect(servedInputs(recognition)[0].shape).toEqual([48, -1, 3]);
    expect(servedInputs(detection)[0].shape).toEqual([-1, -1, 3]);
  });

  it('size each image as the preprocessor resizes it', () => {
    expect(resizedSize(imagePipeline(recognition)!, 300, 30)).toEqual({ height: 48, width: 480 });
    expect(resizedSize(imagePipeline(recognition)!, 3000, 30)).toEqual({ height: 48, width: 1536 });
    expect(resizedSize(imagePipeline(detection)!, 1240, 1754)).toEqual({ height: 960, width: 672 });
    expect(resizedSize(imagePipeline(detection)!, 100, 50)).toEqual({ height: 64, width: 96 });
  });
});

describe('paddedFrame', () => {
  it('rounds the largest up to a multiple of 32, at least min_width, at most the frame', () => {
    const rec = imagePipeline(recognition)!;
    expect(paddedFrame(rec, { height: false, width: true }, [{ height: 48, width: 100 }, { height: 48, width: 333 }])).toEqual({ height: 48, width: 352 });
    expect(paddedFrame(rec, { height: false, width: true }, [{ height: 48, width: 100 }])).toEqual({ height: 48, width: 320 });
    expect(paddedFrame(rec, { height: false, width: true }, [{ height: 48, width: 1530 }])).toEqual({ height: 48, width: 1536 });
    const det = imagePipeline(detection)!;
    expect(paddedFrame(det, { height: true, width: true }, [{ height: 64, width: 96 }, { height: 960, width: 672 }])).toEqual({ height: 960, width: 672 });
  });
});

describe('cropFrames and stackPadded', () => {
  it('cut each frame to its top-left part', () => {
    // 2 frames of 2 x 3 pixels, value = frame * 10 + row * 3 + column.
    const frames = new Uint8Array(2 * 2 * 3 * 3);
    for (let n = 0; n < 2; n++) for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) frames.fill(n * 10 + y * 3 + x, ((n * 2 + y) * 3 + x) * 3, ((n * 2 + y) * 3 + x + 1) * 3);
    const cut = cropFrames(frames, 2, { height: 2, width: 3 }, 1, 2);
    expect(Array.from(cut).filter((_, i) => i % 3 === 0)).toEqual([0, 1, 10, 11]);
  });

  it('pads every request to the batch\'s size, bottom and right, with the pad pixel', () => {
    const out = stackPadded([pixels('x', 1, 1, 1, 7), pixels('x', 2, 2, 1, 9)], 2, 3, [1, 2, 3]);
    const pixel = (item: number, y: number, x: number) => Array.from(out.subarray(((item * 2 + y) * 3 + x) * 3, ((item * 2 + y) * 3 + x + 1) * 3));
    expect(pixel(0, 0, 0)).toEqual([7, 7, 7]);
    expect(pixel(0, 0, 1)).toEqual([1, 2, 3]);
    expect(pixel(0, 1, 0)).toEqual([1, 2, 3]);
    expect(pixel(1, 0, 0)).toEqual([9, 9, 9]);
    expect(pixel(2, 1, 0)).toEqual([9, 9, 9]);
    expect(pixel(2, 1, 2)).toEqual([1, 2, 3]);
  });

  it('refuses a part larger than the batch frame', () => {
    expect(() => stackPadded([pixels('x', 1, 3, 1, 0)], 2, 2, [0, 0, 0])).toThrow(/3 x 1 pixels do not fit the batch's 2 x 2/);
  });
});

describe('padPixel', () => {
  it('is the pixel that normalizes nearest to 0: 128 for (x/255 - 0.5)/0.5, the ImageNet mean for the detector (RGB)', () => {
    expect(padPixel(imagePipeline(recognition)!)).toEqual([128, 128, 128]);
    // Model channels B, G, R take means 0.485, 0.456, 0.406: R = 0.406 * 255 = 104, B = 0.485 * 255 = 124.
    expect(padPixel(imagePipeline(detection)!)).toEqual([104, 116, 124]);
  });
});

describe('widthGroups', () => {
  it('by default, groups jobs of one padded width: buckets of 32 pixels, one for every width up to min_width', () => {
    expect(widthGroups([640, 100, 330, 320, 700, 352, 610, 10], 320)).toEqual([[7, 1, 3], [2, 5], [6, 0], [4]]);
  });

  it('sorts by width and starts a group where a padded width passes the ratio times the group\'s narrowest (rounded up to 32)', () => {
    // Padded: 100 -> 320 (bound 416: 400, 416); 417 -> 448 (bound 576); 640 (bound 800: 700 -> 704, 800); 801 -> 832 (bound 1040); 1200 -> 1216.
    expect(widthGroups([640, 100, 1200, 400, 700, 416, 417, 800, 801], 320, 1.25)).toEqual([[1, 3, 5], [6], [0, 4, 7], [8], [2]]);
  });

  it('keeps equal widths in the jobs\' order and gives every job exactly once', () => {
    const widths = [96, 96, 64, 96, 1536, 64];
    const groups = widthGroups(widths, 1, 1.25);
    expect(groups).toEqual([[2, 5, 0, 1, 3], [4]]);
    expect(groups.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('puts every width in one group with ratio Infinity, each width alone with ratio 1 (but equal padded widths)', () => {
    expect(widthGroups([500, 40, 900], 32, Infinity)).toEqual([[1, 0, 2]]);
    expect(widthGroups([500, 40, 900, 33, 64, 16], 32, 1)).toEqual([[5], [3, 1, 4], [0], [2]]);
    expect(() => widthGroups([1], 32, 0.5)).toThrow(RangeError);
    expect(widthGroups([], 320)).toEqual([]);
  });
});
