/**
 * resizeBilinear as OpenCV's cv2.resize(INTER_LINEAR) on uint8 images. The expected pixels are
 * worked by hand from OpenCV's formulas (and agree with cv2 4.6.0): weights in 2^11 units, the
 * horizontal pass `T = p0 * a0 + p1 * a1`, the vertical pass
 * `((b0 * (T0 >> 4)) >> 16) + ((b1 * (T1 >> 4)) >> 16) + 2) >> 2`.
 */
import { describe, expect, it } from 'vitest';
import { resizeBilinear, type PixelBuffer } from './resize.js';

/** A one-channel image from rows of values. */
function gray(rows: readonly (readonly number[])[]): PixelBuffer {
  return { data: Uint8Array.from(rows.flat()), width: rows[0].length, height: rows.length, channels: 1 };
}

function blank(width: number, height: number, channels: number, fill = 0): PixelBuffer {
  return { data: new Uint8Array(width * height * channels).fill(fill), width, height, channels };
}

/** `source` resized into a frame of exactly the output size. */
function resized(source: PixelBuffer, width: number, height: number): PixelBuffer {
  const frame = blank(width, height, source.channels);
  resizeBilinear(source, frame, { left: 0, top: 0, width, height });
  return frame;
}

/** The values of a one-channel image, row by row. */
function rows(image: PixelBuffer): number[][] {
  return Array.from({ length: image.height }, (_, y) => [...image.data.subarray(y * image.width, (y + 1) * image.width)]);
}

describe('resizeBilinear', () => {
  it('copies an image resized to its own size', () => {
    const source: PixelBuffer = { data: Uint8Array.from({ length: 3 * 2 * 3 }, (_, i) => i * 13), width: 3, height: 2, channels: 3 };
    expect(resized(source, 3, 2).data).toEqual(source.data);
  });

  it('upscales 2x2 to 4x4 with half-pixel centres: weights 1/4 and 3/4, edges repeated', () => {
    // Columns and rows sample at -0.25 (the edge), 0.25, 0.75, 1.25 (the edge).
    expect(rows(resized(gray([[0, 100], [200, 40]]), 4, 4))).toEqual([
      [0, 25, 75, 100],
      [50, 59, 76, 85], // 59: 3/4 * 25 + 1/4 * 160 = 58.75
      [150, 126, 79, 55],
      [200, 160, 80, 40],
    ]);
  });

  it("downscales 3x3 to 2x2 with OpenCV's fixed-point rounding, not the nearest integer", () => {
    // Samples at 0.25 and 1.75. Top left: T0 = (1*1536 + 2*512) >> 4 = 160, T1 = (3*1536 + 2*512) >> 4 = 352,
    // (((1536*160) >> 16) + ((512*352) >> 16) + 2) >> 2 = (3 + 2 + 2) >> 2 = 1, where the exact value is 1.625.
    // Bottom left likewise gives 5 for 5.5625.
    expect(rows(resized(gray([[1, 2, 9], [3, 2, 4], [7, 5, 8]]), 2, 2))).toEqual([
      [1, 6],
      [5, 6],
    ]);
  });

  it('repeats the edge columns for samples beyond the first and last pixel centres', () => {
    // Samples at -1/3, 0, 1/3, 2/3, 1, 4/3 of the way from the first pixel to the last.
    expect(rows(resized(gray([[10, 250]]), 6, 1))).toEqual([[10, 10, 90, 170, 250, 250]]);
  });

  it('repeats the edge rows for samples beyond the first and last pixel centres', () => {
    expect(rows(resized(gray([[10], [250]]), 1, 6))).toEqual([[10], [10], [90], [170], [250], [250]]);
  });

  it('fills the output with the pixel of a 1x1 source', () => {
    const source: PixelBuffer = { data: Uint8Array.of(9, 8, 7), width: 1, height: 1, channels: 3 };
    expect([...resized(source, 3, 2).data]).toEqual([9, 8, 7, 9, 8, 7, 9, 8, 7, 9, 8, 7, 9, 8, 7, 9, 8, 7]);
  });

  it('samples only the two pixels around each centre on a large downscale, without antialiasing', () => {
    // 1000 -> 4 samples at 124.5, 374.5, 624.5, 874.5; every other pixel is 255 and must not count.
    const line = new Array<number>(1000).fill(255);
    for (const [at, value] of [[124, 10], [125, 10], [374, 20], [375, 40], [624, 0], [625, 0], [874, 100], [875, 100]]) line[at] = value;
    expect(rows(resized(gray([line]), 4, 1))).toEqual([[10, 30, 0, 100]]);
  });

  it('keeps a uniform image uniform on a large downscale', () => {
    expect(resized(blank(800, 600, 3, 173), 7, 5).data.every((value) => value === 173)).toBe(true);
  });

  it.each([2, 3, 4, 5])('resizes each of %i interleaved channels as it would a one-channel image', (channels) => {
    const planes = Array.from({ length: channels }, (_, c) => gray([[c * 40, 255 - c], [200 - c * 30, 7 * c], [90, c]]));
    const interleaved: PixelBuffer = { data: new Uint8Array(2 * 3 * channels), width: 2, height: 3, channels };
    planes.forEach((plane, c) => plane.data.forEach((value, i) => (interleaved.data[i * channels + c] = value)));

    const out = resized(interleaved, 5, 2);
    planes.forEach((plane, c) => {
      const alone = resized(plane, 5, 2).data;
      expect(out.data.filter((_, i) => i % channels === c)).toEqual(alone);
    });
  });

  describe('an exact 2x shrink, which OpenCV turns into INTER_AREA', () => {
    it('averages each 2x2 block rounding halves up, for 3 channels', () => {
      const source: PixelBuffer = { data: Uint8Array.of(0, 1, 3, 1, 2, 0, 1, 2, 0, 0, 1, 0), width: 2, height: 2, channels: 3 };
      // sums 2, 6, 3 -> (sum + 2) >> 2
      expect([...resized(source, 1, 1).data]).toEqual([1, 2, 1]);
    });

    it('averages each 2x2 block rounding halves to even, for 2 channels', () => {
      const source: PixelBuffer = { data: Uint8Array.of(0, 1, 1, 2, 1, 2, 0, 1), width: 2, height: 2, channels: 2 };
      // sums 2 and 6: 0.5 -> 0 and 1.5 -> 2, where bilinear weights would round both up
      expect([...resized(source, 1, 1).data]).toEqual([0, 2]);
    });
  });

  describe('writing into a frame', () => {
    it('writes the resized image into the region and leaves the rest of the frame untouched', () => {
      const source = gray([[0, 100], [200, 40]]);
      const frame = blank(6, 5, 1, 7);
      resizeBilinear(source, frame, { left: 1, top: 1, width: 4, height: 3 });

      expect(rows(frame)).toEqual([
        [7, 7, 7, 7, 7, 7],
        [7, 0, 25, 75, 100, 7],
        [7, 100, 93, 78, 70, 7],
        [7, 200, 160, 80, 40, 7],
        [7, 7, 7, 7, 7, 7],
      ]);
    });

    it('copies a same-size image into its region', () => {
      const frame = blank(3, 2, 1, 7);
      resizeBilinear(gray([[1, 2]]), frame, { left: 1, top: 1, width: 2, height: 1 });
      expect(rows(frame)).toEqual([[7, 7, 7], [7, 1, 2]]);
    });

    it('refuses a region that does not fit the frame', () => {
      expect(() => resizeBilinear(gray([[1, 2]]), blank(4, 4, 1), { left: 2, top: 0, width: 3, height: 1 })).toThrow(RangeError);
      expect(() => resizeBilinear(gray([[1, 2]]), blank(4, 4, 1), { left: 0, top: -1, width: 2, height: 1 })).toThrow(RangeError);
      expect(() => resizeBilinear(gray([[1, 2]]), blank(4, 4, 1), { left: 0, top: 0, width: 0, height: 1 })).toThrow(RangeError);
    });

    it('refuses buffers whose length does not match their size', () => {
      const short: PixelBuffer = { data: new Uint8Array(5), width: 2, height: 1, channels: 3 };
      expect(() => resizeBilinear(short, blank(4, 4, 3), { left: 0, top: 0, width: 2, height: 2 })).toThrow(/source holds 5 bytes/);
    });

    it('refuses a frame with another channel count', () => {
      expect(() => resizeBilinear(gray([[1, 2]]), blank(4, 4, 3), { left: 0, top: 0, width: 2, height: 2 })).toThrow(/channels/);
    });
  });
});
