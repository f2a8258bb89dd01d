/**
 * The image pipeline on small synthetic images encoded by real sharp: decoding, the three
 * resize modes with exact pixel placement, normalization, layout, channel order, dtype.
 */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { TensorError, type Tensor } from '@infermesh/tensor';
import type { ImagePipeline__Output } from '@infermesh/contracts';
import { runImagePipeline } from './image-pipeline.js';

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

function images(...elements: Buffer[]): Tensor {
  return { name: 'image', datatype: 'BYTES', shape: [elements.length], data: elements };
}

/** A UINT8 NHWC RGB output read back as rows of legend letters ('?' for anything else). */
function grid(tensor: Tensor, item = 0): string[] {
  const [, height, width] = tensor.shape;
  const data = tensor.data as Uint8Array;
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
    const data = Array.from(out.data as Uint8Array);
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
    const second = Array.from((out.data as Uint8Array).subarray(12, 15));
    second.forEach((v, c) => expect(Math.abs(v - A[c])).toBeLessThanOrEqual(3));
  });

  it('turns a greyscale image into three equal channels', async () => {
    const grey = await sharp(Buffer.from([77, 77, 77, 77]), { raw: { width: 2, height: 2, channels: 1 } }).png().toBuffer();
    const out = await runImagePipeline(spec(), images(grey));
    expect(Array.from(out.data as Uint8Array)).toEqual(new Array(12).fill(77));
  });

  it('honours the EXIF orientation before resizing', async () => {
    // Stored 4 x 2 with A on the left and B on the right; orientation 6 shows it turned 90° clockwise.
    const stored = await image(['AABB', 'AABB']).withMetadata({ orientation: 6 }).jpeg({ quality: 100 }).toBuffer();
    const out = await runImagePipeline(spec({ width: 2, height: 4 }), images(stored));
    const rows = Array.from({ length: 4 }, (_, y) => Array.from((out.data as Uint8Array).subarray(y * 6, y * 6 + 3)));
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

  it('refuses an input whose datatype is not BYTES', async () => {
    const input: Tensor = { name: 'image', datatype: 'FP32', shape: [1], data: new Float32Array(1) };
    const error = await runImagePipeline(spec(), input).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TensorError);
    expect((error as Error).message).toMatch(/input 'image'.*FP32.*BYTES/);
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

  it('fills FP32 padding with pad_value as given, without normalizing it', async () => {
    const out = await runImagePipeline(
      spec({ resize: 'pad', width: 1, height: 3, datatype: 'FP32', layout: 'NCHW', scale: 1, padValue: -7, mean: [1, 1, 1], std: [2, 2, 2] }),
      images(await png(['A'])),
    );
    // Channel planes of one column: pad, image, pad.
    expect(Array.from(out.data as Float32Array)).toEqual([-7, (A[0] - 1) / 2, -7, -7, (A[1] - 1) / 2, -7, -7, (A[2] - 1) / 2, -7]);
  });
});

describe('normalization and layout', () => {
  it('computes (value * scale - mean) / std per channel in FP32', async () => {
    const out = await runImagePipeline(
      spec({ width: 1, height: 1, datatype: 'FP32', layout: 'NCHW', scale: 0.01, mean: [0.5, 1, 1.5], std: [0.5, 0.25, 2] }),
      images(await sharp(Buffer.from([100, 150, 200]), { raw: { width: 1, height: 1, channels: 3 } }).png().toBuffer()),
    );
    expect(out.datatype).toBe('FP32');
    const [r, g, b] = Array.from(out.data as Float32Array);
    expect(r).toBeCloseTo(1, 5);
    expect(g).toBeCloseTo(2, 5);
    expect(b).toBeCloseTo(0.25, 5);
  });

  it('uses scale 1/255 when the scale is unset (0 on the wire)', async () => {
    const out = await runImagePipeline(spec({ width: 1, height: 1, datatype: 'FP32', scale: 0 }), images(await png(['A'])));
    Array.from(out.data as Float32Array).forEach((v, c) => expect(v).toBeCloseTo(A[c] / 255, 6));
  });

  it('lays NCHW out as one plane per channel with shape [N, 3, H, W]', async () => {
    const out = await runImagePipeline(spec({ layout: 'NCHW' }), images(await png(['AB', 'CD'])));
    expect(out.shape).toEqual([1, 3, 2, 2]);
    expect(Array.from(out.data as Uint8Array)).toEqual([A[0], B[0], C[0], D[0], A[1], B[1], C[1], D[1], A[2], B[2], C[2], D[2]]);
  });

  it('lays NHWC out as interleaved pixels with shape [N, H, W, 3]', async () => {
    const out = await runImagePipeline(spec({ layout: 'NHWC' }), images(await png(['AB', 'CD'])));
    expect(out.shape).toEqual([1, 2, 2, 3]);
    expect(Array.from(out.data as Uint8Array)).toEqual([...A, ...B, ...C, ...D]);
  });

  it('writes channels in BGR order when asked', async () => {
    const out = await runImagePipeline(spec({ width: 1, height: 1, channelOrder: 'BGR' }), images(await png(['A'])));
    expect(Array.from(out.data as Uint8Array)).toEqual([A[2], A[1], A[0]]);
  });

  it('writes UINT8 output as raw pixel values, ignoring scale, mean and std', async () => {
    const out = await runImagePipeline(spec({ width: 1, height: 1, datatype: 'UINT8', scale: 0.5, mean: [9, 9, 9], std: [3, 3, 3] }), images(await png(['B'])));
    expect(out.datatype).toBe('UINT8');
    expect(out.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(out.data as Uint8Array)).toEqual([...B]);
  });

  it('names the output tensor after the pipeline output', async () => {
    const out = await runImagePipeline(spec({ output: 'pixel_values' }), images(await png(['AB', 'CD'])));
    expect(out.name).toBe('pixel_values');
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
    const data = out.data as Uint8Array;
    // Columns 0 and 3 are padding, 1 and 2 the image.
    expect(Array.from(data.subarray(0, 3))).toEqual([114, 114, 114]);
    expect(Array.from(data.subarray(3, 6))).toEqual([...A]);
    expect(Array.from(data.subarray(9, 12))).toEqual([114, 114, 114]);
  });
});
