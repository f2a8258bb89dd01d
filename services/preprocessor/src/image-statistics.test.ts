/** Luma statistics of a resized image: mean and spread of 0.299 R + 0.587 G + 0.114 B over its region of the frame. */
import { describe, expect, it } from 'vitest';
import { lumaStatistics } from './image-statistics.js';

/** A frame of `width` x `height` RGB pixels, every pixel `fill` unless `pixels` places others ([x, y, rgb]). */
function frame(width: number, height: number, fill: readonly number[], pixels: [number, number, readonly number[]][] = []) {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(fill, i * 3);
  for (const [x, y, rgb] of pixels) data.set(rgb, (y * width + x) * 3);
  return { data, width, height, channels: 3 };
}

describe('lumaStatistics', () => {
  it('is the luma of a uniform image, with a contrast of exactly 0', () => {
    expect(lumaStatistics(frame(4, 3, [200, 100, 50]), { left: 0, top: 0, width: 4, height: 3 })).toEqual({
      brightness: 0.299 * 200 + 0.587 * 100 + 0.114 * 50,
      contrast: 0,
    });
  });

  it('weighs the channels as luma does: green most, blue least', () => {
    const whole = { left: 0, top: 0, width: 1, height: 1 };
    expect(lumaStatistics(frame(1, 1, [255, 0, 0]), whole).brightness).toBeCloseTo(76.245, 10);
    expect(lumaStatistics(frame(1, 1, [0, 255, 0]), whole).brightness).toBeCloseTo(149.685, 10);
    expect(lumaStatistics(frame(1, 1, [0, 0, 255]), whole).brightness).toBeCloseTo(29.07, 10);
  });

  it('is the population mean and standard deviation: half black, half white is 127.5 ± 127.5', () => {
    const image = frame(2, 2, [0, 0, 0], [[1, 0, [255, 255, 255]], [1, 1, [255, 255, 255]]]);
    const { brightness, contrast } = lumaStatistics(image, { left: 0, top: 0, width: 2, height: 2 });
    expect(brightness).toBeCloseTo(127.5, 10);
    expect(contrast).toBeCloseTo(127.5, 10);
  });

  it('reads only its region: the padding around the image is excluded', () => {
    // A 2 x 1 image of luma 10 and 30 at (1, 1) in a 4 x 3 frame padded with white.
    const padded = frame(4, 3, [255, 255, 255], [[1, 1, [10, 10, 10]], [2, 1, [30, 30, 30]]]);
    const { brightness, contrast } = lumaStatistics(padded, { left: 1, top: 1, width: 2, height: 1 });
    expect(brightness).toBeCloseTo(20, 10);
    expect(contrast).toBeCloseTo(10, 10);
  });

  it('refuses a frame that is not RGB', () => {
    expect(() => lumaStatistics({ data: new Uint8Array(4), width: 2, height: 2, channels: 1 }, { left: 0, top: 0, width: 2, height: 2 })).toThrow(/RGB/);
  });
});
