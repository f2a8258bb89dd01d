/**
 * Encoded images → UINT8 pixels in the model's frame: decode (sharp: PNG, JPEG, EXIF
 * orientation), resize with OpenCV's bilinear interpolation (resize.ts, what the models
 * were trained with), place and pad; and each image's statistics for drift, read from the
 * pixels the resize wrote (image-statistics.ts). Normalization, channel order, layout and dtype are not
 * done here: the worker prepends them to the model graph, so a quarter of the bytes cross
 * between processes and onnxruntime does the arithmetic.
 */
import sharp from 'sharp';
import { TensorError } from '@infermesh/tensor';
import type { ImagePipeline__Output, ImageStatistics__Output } from '@infermesh/contracts';
import { resizeBilinear } from './resize.js';
import { lumaStatistics } from './image-statistics.js';
import { Slots } from './slots.js';
import { checkDeclaredPixels, checkImageCount, DEFAULT_PREPROCESS_LIMITS, type PreprocessLimits } from './image-limits.js';
/**
 * Images decoded at once, in the whole process: a decoded 50-megapixel image is 150 MB,
 * so memory stays bounded however many images a call (or many calls) bring. sharp decodes
 * on libuv's pool of 4 threads; more at once would only wait there.
 */
export const DECODES_AT_ONCE = 4;

const decodes = new Slots(DECODES_AT_ONCE);

/** The largest frame side a pipeline may ask for. */
export const MAX_FRAME_SIDE = 4096;

interface Placement {
  /** Size the image is resized to. */
  width: number;
  height: number;
  /** Where it sits in the output frame. */
  left: number;
  top: number;
}

export function placement(spec: Pick<ImagePipeline__Output, 'width' | 'height' | 'resize'>, sourceWidth: number, sourceHeight: number): Placement {
  const { width, height } = spec;
  switch (spec.resize) {
    case 'pad': {
      const ratio = Math.min(width / sourceWidth, height / sourceHeight);
      const w = Math.max(1, Math.round(sourceWidth * ratio));
      const h = Math.max(1, Math.round(sourceHeight * ratio));
      return { width: w, height: h, left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2) };
    }
    case 'height-pad-right': {
      // PaddleOCR's resize_norm_img: keep the aspect ratio at the target height, pad on the right.
      const w = Math.max(1, Math.min(width, Math.ceil((height * sourceWidth) / sourceHeight)));
      return { width: w, height, left: 0, top: 0 };
    }
    case 'limit-32': {
      // PaddleOCR's DetResizeForTest (limit_type 'max'): shrink to fit the frame, never enlarge,
      // then round each side to a multiple of 32; placed top left, padded bottom and right.
      const { width: w, height: h } = limitMultiple32(width, height, sourceWidth, sourceHeight);
      return { width: w, height: h, left: 0, top: 0 };
    }
    default:
      return { width, height, left: 0, top: 0 };
  }
}

/**
 * The size `limit-32` resizes an image to, as PaddleOCR's DetResizeForTest with limit_type
 * 'max' computes it for a square frame (limit_side_len = the side): ratio = min(1, frame /
 * side) so the image fits the frame, `int(side * ratio)` rounded half to even (Python's round)
 * to a multiple of 32, at least 32 and at most the frame's side in multiples of 32. The
 * worker computes the same (services/worker/src/variable-size.ts) to find each image in its frame.
 */
export function limitMultiple32(frameWidth: number, frameHeight: number, sourceWidth: number, sourceHeight: number): { width: number; height: number } {
  const ratio = Math.min(1, frameWidth / sourceWidth, frameHeight / sourceHeight);
  const side = (length: number, frame: number): number => {
    const most = Math.max(32, Math.floor(frame / 32) * 32);
    return Math.min(most, Math.max(32, roundHalfEven(Math.trunc(length * ratio) / 32) * 32));
  };
  return { width: side(sourceWidth, frameWidth), height: side(sourceHeight, frameHeight) };
}

/** Python 3's round(): halves go to the even neighbour. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The pixel (R, G, B) that pads the frame. `pad_value` is given in the model's input (after
 * normalization, as PaddleOCR pads with 0); the pixel is the one that normalizes nearest to
 * it in each channel. For (x/255 - 0.5)/0.5 and 0 that is 128, which normalizes to
 * 0.0039: half a pixel step from the reference's exact 0.
 */
export function padPixel(spec: ImagePipeline__Output): [number, number, number] {
  const order = spec.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const pixel: [number, number, number] = [0, 0, 0];
  const scale = spec.scale || 1 / 255;
  for (let c = 0; c < 3; c++) {
    const value = spec.datatype === 'UINT8' ? spec.padValue : (spec.padValue * (spec.std[c] ?? 1) + (spec.mean[c] ?? 0)) / scale;
    // Model channel c reads source channel order[c].
    pixel[order[c]] = Math.min(255, Math.max(0, Math.round(value)));
  }
  return pixel;
}

/**
 * Checks a pipeline before any work: a bad or oversized frame is refused, never allocated.
 * A frame over a request's pixel budget could never be answered, so it is refused too.
 */
export function checkPipeline(spec: ImagePipeline__Output | null | undefined, model: string, limits: PreprocessLimits = DEFAULT_PREPROCESS_LIMITS): ImagePipeline__Output {
  const named = model.length > 128 ? `${model.slice(0, 128)}…` : model;
  if (!spec) throw new TensorError(`no image pipeline given for model '${named}'`);
  for (const side of ['width', 'height'] as const) {
    if (!Number.isInteger(spec[side]) || spec[side] < 1 || spec[side] > MAX_FRAME_SIDE) {
      throw new TensorError(`model '${named}': pipeline ${side} ${spec[side]} is outside 1 to ${MAX_FRAME_SIDE}`);
    }
  }
  if (spec.resize === 'limit-32' && (spec.width < 32 || spec.height < 32)) {
    throw new TensorError(`model '${named}': resize 'limit-32' needs a frame of at least 32 x 32, got ${spec.width} x ${spec.height}`);
  }
  if (spec.width * spec.height > limits.maxRequestPixels) {
    throw new TensorError(`model '${named}': a pipeline frame of ${spec.width} x ${spec.height} pixels is over the limit of ${limits.maxRequestPixels} per request (PREPROCESSOR_MAX_REQUEST_PIXELS)`);
  }
  return spec;
}

async function decode(bytes: Buffer, maxPixels: number): Promise<{ data: Buffer; width: number; height: number }> {
  // The header was checked; the limit stays as a second guard for a header that lies.
  const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' })
    .rotate() // honour EXIF orientation, as viewers do
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
  return { data, width: info.width, height: info.height };
}

/**
 * One image decoded (RGB, EXIF orientation applied) in the process's decode slots, so a page
 * decoded for OcrCrop shares the memory bound with the images of Preprocess.
 */
export function decodeInSlot(bytes: Buffer, maxPixels: number, signal?: AbortSignal): Promise<{ data: Buffer; width: number; height: number }> {
  return decodes.run(() => decode(bytes, maxPixels), signal);
}

/** The images of one request in their frames, and the statistics of each (infermesh.v1.PreprocessResult). */
export interface PreprocessedImages {
  /** UINT8 [count, height, width, 3], RGB. */
  pixels: Buffer;
  /** Per image, in order: its size as sent (after EXIF orientation), its resized luma mean and spread. */
  statistics: ImageStatistics__Output[];
}

/**
 * The images of one request as UINT8 [count, height, width, 3] RGB, with each image's
 * statistics. Throws a TensorError naming the input and the element when an image cannot be
 * read, or when the request is over `limits` (checked from the count and the images' headers
 * before anything is decoded or allocated). Each image is resized into its frame as soon as it
 * is decoded, its statistics are read from the pixels just written (padding excluded), and its
 * decoded pixels are let go. When `signal` aborts, images not yet decoding are not decoded and
 * the call rejects with its reason.
 */
export async function preprocessImages(spec: ImagePipeline__Output, name: string, images: readonly Buffer[], signal?: AbortSignal, limits: PreprocessLimits = DEFAULT_PREPROCESS_LIMITS): Promise<PreprocessedImages> {
  if (images.length === 0) throw new TensorError(`input '${name}': no images`);
  const { width, height } = spec;
  checkImageCount(limits, name, images.length);
  await checkDeclaredPixels(limits, name, images, width * height);
  signal?.throwIfAborted();
  const frame = width * height * 3;
  const out = Buffer.allocUnsafe(frame * images.length);
  const statistics = new Array<ImageStatistics__Output>(images.length);
  const pad = padPixel(spec);
  if (spec.resize !== 'stretch') {
    if (pad[0] === pad[1] && pad[1] === pad[2]) out.fill(pad[0]);
    else out.fill(Buffer.from(pad));
  }
  await Promise.all(images.map(async (bytes, n) => {
    // A call that ended (cancelled, past its deadline) gives up its place in the decode queue.
    const image = await decodes.run(() => decode(bytes, limits.maxImagePixels).catch((error: Error) => {
      throw new TensorError(`input '${name}': element ${n} is not an image that can be decoded (PNG or JPEG expected): ${error.message}`);
    }), signal);
    const place = placement(spec, image.width, image.height);
    const target = { data: out.subarray(n * frame, (n + 1) * frame), width, height, channels: 3 };
    resizeBilinear({ data: image.data, width: image.width, height: image.height, channels: 3 }, target, place);
    statistics[n] = { width: image.width, height: image.height, ...lumaStatistics(target, place) };
  }));
  return { pixels: out, statistics };
}

/** The pixels of `preprocessImages` alone (tests, benchmarks). */
export async function imagesToPixels(spec: ImagePipeline__Output, name: string, images: readonly Buffer[], signal?: AbortSignal, limits: PreprocessLimits = DEFAULT_PREPROCESS_LIMITS): Promise<Buffer> {
  return (await preprocessImages(spec, name, images, signal, limits)).pixels;
}
