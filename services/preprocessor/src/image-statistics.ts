/**
 * The statistics of a resized image that the worker bins for drift (infermesh.v1.ImageStatistics):
 * the mean and standard deviation of its luma, taken in one pass over the pixels the resize
 * just wrote, so an image is never decoded or read a second time. `infermesh profile` builds a
 * model's reference profile with this same code, so live values and reference values agree.
 */
import type { PixelBuffer, Region } from './resize.js';

export interface LumaStatistics {
  /** Mean luma (0.299 R + 0.587 G + 0.114 B), 0..255. */
  brightness: number;
  /** Population standard deviation of the luma. */
  contrast: number;
}

/**
 * Luma mean and standard deviation of `region` of an RGB `frame` (the resized image, without
 * the padding around it). Luma is summed in integer thousandths (299 R + 587 G + 114 B), so a
 * uniform image has a contrast of exactly 0 and the sums stay exact for frames up to about
 * 130,000 pixels (beyond, they round in the 16th digit).
 */
export function lumaStatistics(frame: PixelBuffer, region: Region): LumaStatistics {
  if (frame.channels !== 3) throw new RangeError(`luma needs RGB pixels, the frame has ${frame.channels} channels`);
  const { data, width: frameWidth } = frame;
  let sum = 0;
  let squares = 0;
  for (let y = region.top; y < region.top + region.height; y++) {
    let at = (y * frameWidth + region.left) * 3;
    const end = at + region.width * 3;
    for (; at < end; at += 3) {
      const luma = 299 * data[at] + 587 * data[at + 1] + 114 * data[at + 2];
      sum += luma;
      squares += luma * luma;
    }
  }
  const pixels = region.width * region.height;
  const mean = sum / pixels;
  // E[l²] - E[l]², clamped: rounding can leave a tiny negative for a near-uniform image.
  const variance = Math.max(0, squares / pixels - mean * mean);
  return { brightness: mean / 1000, contrast: Math.sqrt(variance) / 1000 };
}
