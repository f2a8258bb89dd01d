/** The PaddleOCR classifier reference on hand-made images: shape, resized width, padding, normalization, layout. */
import { describe, expect, it } from 'vitest';
import { CLS_HEIGHT, CLS_WIDTH, clsResizedWidth, paddleClsResizeNormImg } from './helpers/paddleocr-reference.js';

const PLANE = CLS_HEIGHT * CLS_WIDTH;

/** A `width` x `height` BGR image with every pixel `bgr`. */
function uniform(width: number, height: number, bgr: readonly [number, number, number]): Uint8Array {
  return Uint8Array.from({ length: width * height * 3 }, (_, i) => bgr[i % 3]);
}

/** Channel `c`, row `y` of the tensor, all 192 columns. */
function row(tensor: Float32Array, c: number, y: number): number[] {
  return [...tensor.subarray(c * PLANE + y * CLS_WIDTH, c * PLANE + (y + 1) * CLS_WIDTH)];
}

const normalized = (value: number) => Math.fround(Math.fround(Math.fround(value / 255) - 0.5) / 0.5);

describe('paddleClsResizeNormImg', () => {
  it('returns a [3, 48, 192] float32 tensor', () => {
    const out = paddleClsResizeNormImg(uniform(100, 48, [1, 2, 3]), 100, 48);
    expect(out).toBeInstanceOf(Float32Array);
    expect(out.length).toBe(3 * 48 * 192);
  });

  it('resizes to height 48 keeping the aspect ratio, rounding the width up', () => {
    expect(clsResizedWidth(100, 48)).toBe(100);
    expect(clsResizedWidth(20, 24)).toBe(40);
    expect(clsResizedWidth(10, 48 * 3)).toBe(4); // 3.33 -> 4
  });

  it('caps the width at 192', () => {
    expect(clsResizedWidth(500, 48)).toBe(192);
    const out = paddleClsResizeNormImg(uniform(500, 48, [255, 255, 255]), 500, 48);
    expect(row(out, 0, 47).every((value) => value === 1)).toBe(true);
  });

  it('pads on the right with 0, not with the normalized value of black', () => {
    const out = paddleClsResizeNormImg(uniform(20, 24, [0, 0, 0]), 20, 24);
    for (let c = 0; c < 3; c++) {
      for (const y of [0, 23, 47]) {
        expect(row(out, c, y).slice(0, 40).every((value) => value === -1)).toBe(true);
        expect(row(out, c, y).slice(40).every((value) => value === 0)).toBe(true);
      }
    }
  });

  it('maps 0..255 to -1..1 in float32 as (v / 255 - 0.5) / 0.5', () => {
    const out = paddleClsResizeNormImg(uniform(48, 48, [0, 51, 255]), 48, 48);
    expect(out[0]).toBe(-1);
    expect(out[PLANE]).toBe(normalized(51));
    expect(out[PLANE]).toBeCloseTo(-0.6, 6);
    expect(out[2 * PLANE]).toBe(1);
  });

  it('lays channels out as planes in the order given, B, G, R', () => {
    const out = paddleClsResizeNormImg(uniform(48, 48, [255, 0, 51]), 48, 48);
    expect([out[5 * CLS_WIDTH + 7], out[PLANE + 5 * CLS_WIDTH + 7], out[2 * PLANE + 5 * CLS_WIDTH + 7]]).toEqual([1, -1, normalized(51)]);
  });

  it('interpolates at half-pixel centres and repeats the edges: 2 columns become 0, 50, 150, 200', () => {
    // 2x24 -> 4x48 samples columns at -0.25, 0.25, 0.75, 1.25 of the source.
    const image = Uint8Array.from({ length: 2 * 24 * 3 }, (_, i) => (Math.floor(i / 3) % 2 === 0 ? 0 : 200));
    const out = paddleClsResizeNormImg(image, 2, 24);
    expect(row(out, 1, 30).slice(0, 5)).toEqual([normalized(0), normalized(50), normalized(150), normalized(200), 0]);
  });

  it('refuses pixels that do not match the size', () => {
    expect(() => paddleClsResizeNormImg(new Uint8Array(10), 2, 2)).toThrow(RangeError);
  });
});
