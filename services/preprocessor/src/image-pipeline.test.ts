/**
 * The image pipeline on small synthetic images encoded by real sharp: decoding, EXIF
 * orientation, the three resize modes with exact pixel placement, padding, and frames of
 * UINT8 RGB pixels [N, H, W, 3] (normalization, layout and channel order are the model
 * graph's work: services/worker/src/graph-prelude.test.ts), and each image's statistics.
 */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { TensorError } from '@infermesh/tensor';
import type { ImagePipeline__Output } from '@infermesh/contracts';
import { MAX_FRAME_SIDE, checkPipeline, imagesToPixels, limitMultiple32, padPixel, preprocessImages } from './image-pipeline.js';

type Rgb = readonly [number, number, number];

const A: Rgb = [200, 10, 20];
const B: Rgb = [30, 40, 250];
const C: Rgb = [60, 170, 90];
const D: Rgb = [120, 220, 5];
const LEGEND: Record<string, Rgb> = { A, B, C, D, '.': [0, 0, 0] };

function spec(overrides: Partial<ImagePipeline__Output> = {}): ImagePipeline__Output {
  return {
    input: 'image', output: 'x', width: 2, height: 2, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1],
    layout: 'NHWC', datatype: 'UINT8', channelOrder: 'RGB', scale: 1 / 255, padValue: 0,
    ...overrides,
  };
}

/** An image from rows of legend letters, e.g. ['AB', 'CD']. */
function image(rows: readonly string[]): sharp.Sharp {
  const width = rows[0].length;
  const pixels = rows.flatMap((row) => [...row].flatMap((letter) => [...LEGEND[letter]]));
  return sharp(Buffer.from(pixels), { raw: { width, height: rows.length, channels: 3 } });
}

const png = (rows: readonly string[]) => image(rows).png().toBuffer();

interface Frames {
  shape: number[];
  data: Uint8Array;
}

function images(...elements: Buffer[]): Buffer[] {
  return elements;
}

/** The pipeline on these images: UINT8 [N, H, W, 3]. */
async function runImagePipeline(pipeline: ImagePipeline__Output, elements: Buffer[]): Promise<Frames> {
  const data = await imagesToPixels(pipeline, 'image', elements);
  return { shape: [elements.length, pipeline.height, pipeline.width, 3], data };
}

/** UINT8 NHWC RGB frames read back as rows of legend letters ('?' for anything else). */
function grid(tensor: Frames, item = 0): string[] {
  const [, height, width] = tensor.shape;
  const data = tensor.data;
  const rows: string[] = [];
  for (let y = 0; y < height; y++) {
    let row = '';
    for (let x = 0; x < width; x++) {
      const at = ((item * height + y) * width + x) * 3;
      const pixel = [data[at], data[at + 1], data[at + 2]];
      const letter = Object.entries(LEGEND).find(([, rgb]) => rgb.every((v, c) => v === pixel[c]))?.[0];
      row += letter ?? '?';
    }
    rows.push(row);
  }
  return rows;
}

describe('decoding', () => {
  it('decodes a PNG to its exact pixels', async () => {
    const out = await runImagePipeline(spec(), images(await png(['AB', 'CD'])));
    expect(grid(out)).toEqual(['AB', 'CD']);
  });

  it('decodes a JPEG to its pixels within JPEG loss', async () => {
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 100, b: 50 } } }).jpeg({ quality: 95 }).toBuffer();
    const out = await runImagePipeline(spec(), images(jpeg));
    const data = Array.from(out.data);
    expect(data).toHaveLength(2 * 2 * 3);
    for (let i = 0; i < data.length; i += 3) {
      expect(Math.abs(data[i] - 200)).toBeLessThanOrEqual(3);
      expect(Math.abs(data[i + 1] - 100)).toBeLessThanOrEqual(3);
      expect(Math.abs(data[i + 2] - 50)).toBeLessThanOrEqual(3);
    }
  });

  it('stacks several images, PNG and JPEG mixed, along the batch dimension in order', async () => {
    const jpeg = await image(['AA', 'AA']).jpeg({ quality: 100 }).toBuffer();
    const out = await runImagePipeline(spec(), images(await png(['BB', 'BB']), jpeg));
    expect(out.shape).toEqual([2, 2, 2, 3]);
    expect(grid(out, 0)).toEqual(['BB', 'BB']);
    const second = Array.from(out.data.subarray(12, 15));
    second.forEach((v, c) => expect(Math.abs(v - A[c])).toBeLessThanOrEqual(3));
  });

  it('turns a greyscale image into three equal channels', async () => {
    const grey = await sharp(Buffer.from([77, 77, 77, 77]), { raw: { width: 2, height: 2, channels: 1 } }).png().toBuffer();
    const out = await runImagePipeline(spec(), images(grey));
    expect(Array.from(out.data)).toEqual(new Array(12).fill(77));
  });

  it('honours the EXIF orientation before resizing', async () => {
    // Stored 4 x 2 with A on the left and B on the right; orientation 6 shows it turned 90° clockwise.
    const stored = await image(['AABB', 'AABB']).withMetadata({ orientation: 6 }).jpeg({ quality: 100 }).toBuffer();
    const out = await runImagePipeline(spec({ width: 2, height: 4 }), images(stored));
    const rows = Array.from({ length: 4 }, (_, y) => Array.from(out.data.subarray(y * 6, y * 6 + 3)));
    for (const y of [0, 1]) rows[y].forEach((v, c) => expect(Math.abs(v - A[c])).toBeLessThanOrEqual(3));
    for (const y of [2, 3]) rows[y].forEach((v, c) => expect(Math.abs(v - B[c])).toBeLessThanOrEqual(3));
  });

  it('refuses an element that is not an image with a TensorError naming the input and the element index', async () => {
    const good = await png(['AB', 'CD']);
    const error = await runImagePipeline(spec(), images(good, Buffer.from('not an image'))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TensorError);
    expect((error as Error).message).toContain("input 'image'");
    expect((error as Error).message).toContain('element 1');
  });

  it('refuses an input with no images', async () => {
    await expect(runImagePipeline(spec(), images())).rejects.toThrow(TensorError);
  });
});

describe('resize modes', () => {
  it('stretch fills the whole canvas, ignoring the aspect ratio', async () => {
    // A 1 x 2 image in a 4 x 2 canvas: 'pad' would leave columns of padding, 'stretch' leaves none.
    const out = await runImagePipeline(spec({ resize: 'stretch', width: 4, height: 2 }), images(await png(['A', 'A'])));
    expect(grid(out)).toEqual(['AAAA', 'AAAA']);
  });

  it('pad centres a wide image vertically and pads above and below', async () => {
    const out = await runImagePipeline(spec({ resize: 'pad', width: 2, height: 4 }), images(await png(['AB'])));
    expect(grid(out)).toEqual(['..', 'AB', '..', '..']);
  });

  it('pad centres a tall image horizontally and pads left and right', async () => {
    const out = await runImagePipeline(spec({ resize: 'pad', width: 4, height: 2 }), images(await png(['A', 'B'])));
    expect(grid(out)).toEqual(['.A..', '.B..']);
  });

  it('pad scales the image up to fit, keeping its aspect ratio', async () => {
    const out = await runImagePipeline(spec({ resize: 'pad', width: 3, height: 6 }), images(await png(['C'])));
    expect(grid(out)).toEqual(['...', 'CCC', 'CCC', 'CCC', '...', '...']);
  });

  it('height-pad-right keeps the aspect ratio at the target height and pads on the right', async () => {
    const out = await runImagePipeline(spec({ resize: 'height-pad-right', width: 6, height: 1 }), images(await png(['AB'])));
    expect(grid(out)).toEqual(['AB....']);
  });

  it('height-pad-right rounds the scaled width up', async () => {
    // 3 x 2 scaled to height 3 is 4.5 wide: 5 columns of image, then padding.
    const out = await runImagePipeline(spec({ resize: 'height-pad-right', width: 7, height: 3 }), images(await png(['DDD', 'DDD'])));
    expect(grid(out)).toEqual(['DDDDD..', 'DDDDD..', 'DDDDD..']);
  });

  it('height-pad-right caps the width at the target width', async () => {
    const out = await runImagePipeline(spec({ resize: 'height-pad-right', width: 3, height: 1 }), images(await png(['AAAAAA'])));
    expect(grid(out)).toEqual(['AAA']);
  });

  it('limit-32 keeps a small image at its size rounded to multiples of 32, top left, padded bottom and right', async () => {
    const out = await runImagePipeline(spec({ resize: 'limit-32', width: 64, height: 64 }), images(await image(Array(32).fill('C'.repeat(32))).png().toBuffer()));
    const rows = grid(out);
    expect(rows.slice(0, 32).every((row) => row === 'C'.repeat(32) + '.'.repeat(32))).toBe(true);
    expect(rows.slice(32).every((row) => row === '.'.repeat(64))).toBe(true);
  });

  it('pads an FP32 model\'s frame with the pixel that normalizes nearest to pad_value', async () => {
    // (p / 255 - 0.5) / 0.5 = 0 at p = 127.5: PaddleOCR's padding is pixel 128 here.
    const out = await runImagePipeline(
      spec({ resize: 'height-pad-right', width: 3, height: 1, datatype: 'FP32', scale: 1 / 255, padValue: 0, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }),
      images(await png(['A'])),
    );
    expect(Array.from(out.data)).toEqual([...A, 128, 128, 128, 128, 128, 128]);
  });

  it('writes each image in its own frame, one after the other', async () => {
    const out = await runImagePipeline(spec({ resize: 'height-pad-right', width: 3, height: 1 }), images(await png(['A']), await png(['BB'])));
    expect(grid(out, 0)).toEqual(['A..']);
    expect(grid(out, 1)).toEqual(['BB.']);
  });

  it('resizes as OpenCV does, without antialiasing: shrinking 8 columns to 2 samples two of each four', async () => {
    // Bilinear reads columns 1-2 and 5-6 (all A); an antialiasing kernel would blend in the D columns.
    const out = await runImagePipeline(spec({ width: 2, height: 1 }), images(await png(['AAADAAAD'])));
    expect(grid(out)).toEqual(['AA']);
  });
});

describe('limitMultiple32 (PaddleOCR DetResizeForTest, limit_type max)', () => {
  it('keeps an image that fits, rounding each side to the nearest multiple of 32 (halves to even, as Python)', () => {
    expect(limitMultiple32(960, 960, 100, 50)).toEqual({ width: 96, height: 64 }); // 3.125 -> 3, 1.5625 -> 2
    expect(limitMultiple32(960, 960, 80, 48)).toEqual({ width: 64, height: 64 }); // 2.5 -> 2, 1.5 -> 2
    expect(limitMultiple32(960, 960, 10, 5)).toEqual({ width: 32, height: 32 }); // at least 32
  });

  it('shrinks the long side to the frame, never enlarging', () => {
    expect(limitMultiple32(960, 960, 1240, 1754)).toEqual({ width: 672, height: 960 }); // int(1240 * 960 / 1754) = 678 -> 21.19 -> 672
    expect(limitMultiple32(960, 960, 2000, 100)).toEqual({ width: 960, height: 64 }); // int(100 * 0.48) = 48: 1.5 -> 2
  });
});

describe('padPixel', () => {
  const paddle = spec({ datatype: 'FP32', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], padValue: 0 });

  it('is 128 for PaddleOCR\'s normalization and 0 padding (it normalizes to 0.0039)', () => {
    expect(padPixel(paddle)).toEqual([128, 128, 128]);
  });

  it('maps each model channel\'s mean and std back to its pixel channel when the model takes BGR', () => {
    // Model channel 0 is blue: its mean 0.2 → pixel 51 lands in the blue (third) pixel channel.
    expect(padPixel({ ...paddle, channelOrder: 'BGR', mean: [0.2, 0.4, 0.6], std: [1, 1, 1] })).toEqual([153, 102, 51]);
  });

  it('is pad_value itself for a model that takes UINT8', () => {
    expect(padPixel(spec({ datatype: 'UINT8', padValue: 114 }))).toEqual([114, 114, 114]);
  });

  it('clamps to 0..255', () => {
    expect(padPixel({ ...paddle, padValue: 5 })).toEqual([255, 255, 255]);
    expect(padPixel({ ...paddle, padValue: -5 })).toEqual([0, 0, 0]);
  });
});

describe('checkPipeline', () => {
  it('refuses a frame side larger than MAX_FRAME_SIDE, naming it', () => {
    expect(() => checkPipeline(spec({ width: 8192, height: 8192 }), 'm')).toThrow(new RegExp(`width 8192 is outside 1 to ${MAX_FRAME_SIDE}`));
  });

  it('refuses a frame side of 0 and a missing pipeline', () => {
    expect(() => checkPipeline(spec({ height: 0 }), 'm')).toThrow(TensorError);
    expect(() => checkPipeline(null, 'm')).toThrow(/no image pipeline given for model 'm'/);
  });
});

describe('padding after EXIF orientation and in UINT8', () => {
  it('places an EXIF-rotated image by its displayed size when padding', async () => {
    // Stored 4 x 2 (wide), orientation 6: displayed 2 x 4 (tall). Padded into 4 x 4 it fills the middle two columns.
    const stored = await image(['AAAA', 'AAAA']).withMetadata({ orientation: 6 }).png().toBuffer();
    const out = await runImagePipeline(spec({ width: 4, height: 4, resize: 'pad' }), images(stored));
    expect(grid(out)).toEqual(['.AA.', '.AA.', '.AA.', '.AA.']);
  });

  it('fills UINT8 padding with pad_value', async () => {
    const out = await runImagePipeline(spec({ width: 4, height: 2, resize: 'pad', padValue: 114 }), images(await png(['AA', 'AA'])));
    const data = out.data;
    // Columns 0 and 3 are padding, 1 and 2 the image.
    expect(Array.from(data.subarray(0, 3))).toEqual([114, 114, 114]);
    expect(Array.from(data.subarray(3, 6))).toEqual([...A]);
    expect(Array.from(data.subarray(9, 12))).toEqual([114, 114, 114]);
  });
});

describe('statistics of each image', () => {
  const luma = ([r, g, b]: Rgb) => 0.299 * r + 0.587 * g + 0.114 * b;

  it('gives one per image, in order, with the size each image was sent at', async () => {
    const { statistics } = await preprocessImages(spec({ width: 2, height: 2 }), 'image', [await png(['AAA']), await png(['B', 'B'])]);
    expect(statistics.map((s) => [s.width, s.height])).toEqual([[3, 1], [1, 2]]);
  });

  it('takes the size after EXIF orientation, as the image is shown', async () => {
    // Stored 4 x 2, orientation 6: shown 2 x 4.
    const stored = await image(['AABB', 'AABB']).withMetadata({ orientation: 6 }).png().toBuffer();
    const { statistics } = await preprocessImages(spec({ width: 4, height: 4, resize: 'pad' }), 'image', [stored]);
    expect([statistics[0].width, statistics[0].height]).toEqual([2, 4]);
  });

  it('reads brightness and contrast from the resized image, leaving the padding out', async () => {
    // A uniform image padded with 114s on both sides: the padding would add contrast and pull the mean.
    const { pixels, statistics } = await preprocessImages(spec({ width: 4, height: 2, resize: 'pad', padValue: 114 }), 'image', [await png(['AA', 'AA'])]);
    expect(Array.from(pixels.subarray(0, 3))).toEqual([114, 114, 114]);
    expect(statistics[0].brightness).toBeCloseTo(luma(A), 10);
    expect(statistics[0].contrast).toBe(0);
  });

  it('measures the spread of the pixels the model sees', async () => {
    const { statistics } = await preprocessImages(spec({ width: 2, height: 1 }), 'image', [await png(['AB'])]);
    expect(statistics[0].brightness).toBeCloseTo((luma(A) + luma(B)) / 2, 10);
    expect(statistics[0].contrast).toBeCloseTo(Math.abs(luma(A) - luma(B)) / 2, 10);
  });
});
