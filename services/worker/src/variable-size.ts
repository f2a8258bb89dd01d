/**
 * Images of different sizes in one batch, for models whose graph leaves the image's height or
 * width variable (-1 in config.yaml, e.g. PaddleOCR's detector and recognizer): the served
 * pixel tensor keeps that dimension variable (up to the pipeline's frame), a request's images
 * are cut from their frames down to the largest of them, and a batch pads every request's
 * pixels bottom and right to the largest in the batch, rounded up to a multiple of 32 (the
 * detector's stride; PaddleOCR's own sizes), and the width to at least `min_width` (PaddleOCR's
 * recognizer pads a batch's lines to at least 320). Padding is the pipeline's pad pixel: the one
 * that normalizes nearest to `pad_value` (0 for both OCR models, as PaddleOCR pads).
 *
 * Each item keeps where its image is (ImageGeometry), so post-processing reads its own part
 * of the output only and maps it back to the image as sent.
 */
import { TensorError, type Tensor } from '@infermesh/tensor';
import type { ImagePipelineConfig, ModelConfig } from './model-config.js';
import type { ImageGeometry } from './postprocess/geometry.js';
import { roundHalfEven } from './postprocess/geometry.js';

/** Variable sizes are padded up to a multiple of this. */
export const SIZE_STEP = 32;

export interface VariableDims {
  height: boolean;
  width: boolean;
}

/** Which of the image's height and width the model's graph input leaves variable (-1). */
export function variableDims(config: Pick<ModelConfig, 'inputs'>, image: ImagePipelineConfig | undefined): VariableDims | undefined {
  if (!image) return undefined;
  const input = config.inputs.find((i) => i.name === image.output);
  if (!input || input.shape.length !== 3) return undefined;
  const [h, w] = image.layout === 'NCHW' ? [input.shape[1], input.shape[2]] : [input.shape[0], input.shape[1]];
  return h === -1 || w === -1 ? { height: h === -1, width: w === -1 } : undefined;
}

/** The size of an image of `sourceWidth` x `sourceHeight` once resized into the pipeline's frame (the preprocessor's placement). */
export function resizedSize(spec: ImagePipelineConfig, sourceWidth: number, sourceHeight: number): { height: number; width: number } {
  switch (spec.resize) {
    case 'height-pad-right':
      return { height: spec.height, width: Math.max(1, Math.min(spec.width, Math.ceil((spec.height * sourceWidth) / sourceHeight))) };
    case 'limit-32': {
      // services/preprocessor/src/image-pipeline.ts limitMultiple32, the same arithmetic.
      const ratio = Math.min(1, spec.width / sourceWidth, spec.height / sourceHeight);
      const side = (length: number, frame: number): number => {
        const most = Math.max(SIZE_STEP, Math.floor(frame / SIZE_STEP) * SIZE_STEP);
        return Math.min(most, Math.max(SIZE_STEP, roundHalfEven(Math.trunc(length * ratio) / SIZE_STEP) * SIZE_STEP));
      };
      return { height: side(sourceHeight, spec.height), width: side(sourceWidth, spec.width) };
    }
    default:
      // stretch and pad fill the frame (pad centres the image; the frame is its tensor).
      return { height: spec.height, width: spec.width };
  }
}

const roundUp = (n: number): number => Math.ceil(n / SIZE_STEP) * SIZE_STEP;

/** The frame a set of images is padded to: the largest of each variable side, rounded up, within the pipeline's frame. */
export function paddedFrame(spec: ImagePipelineConfig, dims: VariableDims, sizes: readonly { height: number; width: number }[]): { height: number; width: number } {
  const height = dims.height ? Math.min(spec.height, roundUp(Math.max(1, ...sizes.map((s) => s.height)))) : spec.height;
  const widest = Math.max(spec.min_width ?? 1, roundUp(Math.max(1, ...sizes.map((s) => s.width))));
  const width = dims.width ? Math.min(spec.width, widest) : spec.width;
  return { height, width };
}

/** The top-left `height` x `width` of each of `count` frames of UINT8 [count, frameHeight, frameWidth, 3] pixels. */
export function cropFrames(pixels: Uint8Array, count: number, frame: { height: number; width: number }, height: number, width: number): Uint8Array {
  if (height === frame.height && width === frame.width) return pixels;
  const out = new Uint8Array(count * height * width * 3);
  const rowBytes = width * 3;
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < height; y++) {
      const from = ((n * frame.height + y) * frame.width) * 3;
      out.set(pixels.subarray(from, from + rowBytes), ((n * height + y) * width) * 3);
    }
  }
  return out;
}

/**
 * Stacks UINT8 [n_i, h_i, w_i, 3] pixel tensors into one [sum n_i, H, W, 3], each padded bottom
 * and right with `pad` (R, G, B) to H x W, which must hold every part.
 */
export function stackPadded(parts: readonly Tensor[], height: number, width: number, pad: readonly [number, number, number]): Uint8Array {
  const items = parts.reduce((sum, p) => sum + p.shape[0], 0);
  const out = new Uint8Array(items * height * width * 3);
  if (pad[0] === pad[1] && pad[1] === pad[2]) out.fill(pad[0]);
  else for (let i = 0; i < out.length; i += 3) out.set(pad, i);
  let item = 0;
  for (const part of parts) {
    const [n, h, w] = part.shape;
    if (h > height || w > width) throw new TensorError(`input '${part.name}': ${h} x ${w} pixels do not fit the batch's ${height} x ${width}`);
    const data = part.data as Uint8Array;
    const rowBytes = w * 3;
    for (let k = 0; k < n; k++, item++) {
      for (let y = 0; y < h; y++) {
        const from = ((k * h + y) * w) * 3;
        out.set(data.subarray(from, from + rowBytes), ((item * height + y) * width) * 3);
      }
    }
  }
  return out;
}

/** The pixel (R, G, B) that normalizes nearest to the pipeline's pad_value (the preprocessor's padPixel). */
export function padPixel(spec: ImagePipelineConfig): [number, number, number] {
  const order = spec.channel_order === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const pixel: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    const value = spec.datatype === 'UINT8' ? spec.pad_value : (spec.pad_value * spec.std[c] + spec.mean[c]) / spec.scale;
    pixel[order[c]] = Math.min(255, Math.max(0, Math.round(value)));
  }
  return pixel;
}

/** Each image of a pixel tensor sent as it is: the whole tensor is the image, as sent. */
export function wholeTensorGeometry(tensor: Tensor): ImageGeometry[] {
  const [n, height, width] = tensor.shape;
  return Array.from({ length: n }, () => ({ height, width, sourceHeight: height, sourceWidth: width }));
}

/**
 * A padded width is at most this many times the narrowest padded width of its group (rounded up
 * to 32): a batch's jobs of different widths run as several session runs instead of one padded
 * to the widest. 1 makes the groups buckets of 32 pixels (and one bucket for all widths up to
 * `min_width`). Measured on ocr-recognition with bench:ocr (40 pages, 2-core EPYC, c=8, mesh /
 * @gutenye/ocr-node pages/s) and test/ocr-accuracy.e2e.test.ts (CER against the truth): one
 * group per batch (no bound) 0.70x and 0.8 % (spaces dropped on lines padded to a wider one);
 * 1.25: 1.19x and 0.1 %; 1: 1.44x and 0.0 %. On CPU a run of several lines at one width costs
 * about the same per line as runs of one, so small groups lose nothing; measure on a GPU, where
 * larger runs pay, before widening.
 */
export const GROUP_WIDTH_RATIO = 1;

/**
 * The jobs of a batch in groups of similar width, each group one session run padded to its
 * widest: jobs sorted by width (ties in their order), a job joins the current group while its
 * padded width (rounded up to 32, at least `minWidth`) is at most `ratio` times the group's
 * first (narrowest) padded width, rounded up to 32. Returns indexes into `widths`, narrowest
 * group first; every index exactly once.
 */
export function widthGroups(widths: readonly number[], minWidth = 1, ratio = GROUP_WIDTH_RATIO): number[][] {
  if (!(ratio >= 1)) throw new RangeError(`group width ratio ${ratio}: at least 1 expected`);
  const padded = (w: number): number => Math.max(minWidth, roundUp(Math.max(1, w)));
  const order = widths.map((_, i) => i).sort((a, b) => widths[a] - widths[b] || a - b);
  const groups: number[][] = [];
  let bound = 0;
  for (const i of order) {
    const width = padded(widths[i]);
    if (groups.length === 0 || width > bound) {
      groups.push([i]);
      bound = roundUp(width * ratio);
    } else {
      groups[groups.length - 1].push(i);
    }
  }
  return groups;
}
