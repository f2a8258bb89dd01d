/**
 * The OCR pipeline's glue (infermesh.v1.Preprocessor/OcrCrop): one page and the text boxes
 * ocr-detection found on it → per box the rectified line, as the tensors of the next steps.
 *
 * It runs here, not in the router, because the page must be decoded again (the worker that ran
 * detection decoded it into a resized frame only) and decoding belongs with the preprocessor's
 * bounded decode slots; the router stays a process that never decodes pixels. It is not in
 * the worker because it needs no model: any preprocessor can do it, next to the page.
 *
 * Each line is PaddleOCR's get_rotate_crop_image: the box's quadrilateral is warped to an
 * upright rectangle of its own width x height (perspective transform, sampled bilinearly with
 * the border replicated), and a line at least 1.5 times taller than wide is turned 90°
 * counter-clockwise (np.rot90). PaddleOCR samples with bicubic interpolation; bilinear differs
 * by a fraction of a pixel step on text edges, which neither classifier nor recognizer reads.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace } from '@opentelemetry/api';
import { TensorError } from '@infermesh/tensor';
import type { OcrCropRequest__Output, OcrCropResponse } from '@infermesh/contracts';
import { resourceExhausted } from '@infermesh/grpc';
import { decodeInSlot, placement } from './image-pipeline.js';
import { resizeBilinear, type PixelBuffer } from './resize.js';
import { checkDeclaredPixels, DEFAULT_PREPROCESS_LIMITS, type PreprocessLimits } from './image-limits.js';

const tracer = trace.getTracer('infermesh-preprocessor');

/** Height of every line tensor (PaddleOCR's rec_image_shape and cls_image_shape). */
export const LINE_HEIGHT = 48;
/** Width of the text-direction frame (cls_image_shape 3, 48, 192). */
export const DIRECTION_WIDTH = 192;
/**
 * Widest recognition tensor by default: ocr-recognition's frame (models/ocr-recognition, an
 * aspect ratio of 32). Wider lines are squeezed into it, as PaddleOCR squeezes a line wider
 * than its batch's imgW.
 */
export const DEFAULT_MAX_RECOGNITION_WIDTH = 1536;
/** Boxes of one page at most: DBPostProcess's max_candidates. */
export const MAX_BOXES_PER_PAGE = 1000;
/**
 * The pixel both tensors pad with: PaddleOCR pads with 0 after its (x / 255 - 0.5) / 0.5
 * normalization, which is pixel 127.5; 128 is the nearest (as text-direction's frame pads).
 */
export const PAD_PIXEL = 128;
/** A line's side at most, in pixels of the page: a box cannot be larger than its page. */
const MAX_LINE_SIDE = 65_535;

/** One rectified line's size (after the 90° turn of tall lines). */
export interface LineSize {
  width: number;
  height: number;
  /** Turned 90° counter-clockwise: the box was at least 1.5 times taller than wide. */
  turned: boolean;
}

type Point = readonly [number, number];

/** The corners of box `k` of a flat [K, 4, 2] list. */
function corners(boxes: readonly number[], k: number): [Point, Point, Point, Point] {
  const at = (i: number): Point => [boxes[k * 8 + i * 2], boxes[k * 8 + i * 2 + 1]];
  return [at(0), at(1), at(2), at(3)];
}

const distance = (a: Point, b: Point) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** get_rotate_crop_image's crop size: int(max of opposite sides), then the turn of tall lines. */
export function lineSize(box: readonly [Point, Point, Point, Point]): LineSize {
  const [p0, p1, p2, p3] = box;
  const width = Math.max(1, Math.min(MAX_LINE_SIDE, Math.trunc(Math.max(distance(p0, p1), distance(p2, p3)))));
  const height = Math.max(1, Math.min(MAX_LINE_SIDE, Math.trunc(Math.max(distance(p0, p3), distance(p1, p2)))));
  return height / width >= 1.5 ? { width: height, height: width, turned: true } : { width, height, turned: false };
}

/** The recognition tensor's width for a line: height 48 keeping the aspect ratio, at most `maxWidth`. */
export function recognitionWidth(line: Pick<LineSize, 'width' | 'height'>, maxWidth: number): number {
  return Math.max(1, Math.min(maxWidth, Math.ceil((LINE_HEIGHT * line.width) / line.height)));
}

/**
 * The homography taking a point of the w x h rectangle (corners (0,0), (w,0), (w,h), (0,h))
 * to the box's corners: the inverse of OpenCV's getPerspectiveTransform(box, rectangle), which
 * is what warpPerspective samples with. Solved as the usual 8 x 8 linear system.
 */
export function rectangleToBox(box: readonly [Point, Point, Point, Point], w: number, h: number): number[] {
  const from: Point[] = [[0, 0], [w, 0], [w, h], [0, h]];
  const a: number[][] = [];
  const b: number[] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = from[i];
    const [u, v] = box[i];
    a.push([x, y, 1, 0, 0, 0, -x * u, -y * u]);
    b.push(u);
    a.push([0, 0, 0, x, y, 1, -x * v, -y * v]);
    b.push(v);
  }
  const solution = solve(a, b);
  if (!solution) throw new TensorError('a box has three corners on one line (no perspective maps a rectangle to it)');
  return [...solution, 1];
}

/** Gaussian elimination with partial pivoting; undefined when the system is singular. */
function solve(a: number[][], b: number[]): number[] | undefined {
  const n = b.length;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    if (Math.abs(a[pivot][col]) < 1e-12) return undefined;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    [b[col], b[pivot]] = [b[pivot], b[col]];
    for (let r = col + 1; r < n; r++) {
      const f = a[r][col] / a[col][col];
      for (let c = col; c < n; c++) a[r][c] -= f * a[col][c];
      b[r] -= f * b[col];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let sum = b[r];
    for (let c = r + 1; c < n; c++) sum -= a[r][c] * x[c];
    x[r] = sum / a[r][r];
  }
  return x;
}

/**
 * The box warped to an upright w x h line (bilinear, border replicated), turned 90° counter-
 * clockwise when `size.turned`.
 */
export function rectifyLine(page: PixelBuffer, box: readonly [Point, Point, Point, Point], size: LineSize): PixelBuffer {
  // The warp's own size is the box's, before any turn.
  const w = size.turned ? size.height : size.width;
  const h = size.turned ? size.width : size.height;
  const m = rectangleToBox(box, w, h);
  const warped = Buffer.allocUnsafe(w * h * 3);
  const { data, width: pw, height: ph } = page;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const z = m[6] * x + m[7] * y + m[8];
      const u = (m[0] * x + m[1] * y + m[2]) / z;
      const v = (m[3] * x + m[4] * y + m[5]) / z;
      const x0 = Math.floor(u);
      const y0 = Math.floor(v);
      const fx = u - x0;
      const fy = v - y0;
      const xa = clamp(x0, pw - 1);
      const xb = clamp(x0 + 1, pw - 1);
      const ya = clamp(y0, ph - 1);
      const yb = clamp(y0 + 1, ph - 1);
      const o = (y * w + x) * 3;
      for (let c = 0; c < 3; c++) {
        const top = data[(ya * pw + xa) * 3 + c] * (1 - fx) + data[(ya * pw + xb) * 3 + c] * fx;
        const bottom = data[(yb * pw + xa) * 3 + c] * (1 - fx) + data[(yb * pw + xb) * 3 + c] * fx;
        warped[o + c] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
  }
  if (!size.turned) return { data: warped, width: w, height: h, channels: 3 };
  // np.rot90: out[i][j] = in[j][w - 1 - i], out is h wide and w high.
  const turned = Buffer.allocUnsafe(w * h * 3);
  for (let i = 0; i < w; i++) {
    for (let j = 0; j < h; j++) {
      const from = (j * w + (w - 1 - i)) * 3;
      const to = (i * h + j) * 3;
      turned[to] = warped[from];
      turned[to + 1] = warped[from + 1];
      turned[to + 2] = warped[from + 2];
    }
  }
  return { data: turned, width: h, height: w, channels: 3 };
}

const clamp = (value: number, most: number) => (value < 0 ? 0 : value > most ? most : value);

/** The bytes of an OcrCropResponse of these lines at most (the tensors, their widths, framing). */
export function ocrCropResponseBytes(widths: readonly number[]): number {
  return widths.reduce((sum, w) => sum + LINE_HEIGHT * (DIRECTION_WIDTH + w) * 3 + 6, 64);
}

/**
 * One page's lines as tensors. Bounds are checked in order of cost, before the page is
 * decoded: the box list's length and values, the answer's size (from the boxes alone), the
 * page's declared pixels. Refusals are TensorErrors naming what was wrong (INVALID_ARGUMENT),
 * an answer over the message limit is RESOURCE_EXHAUSTED.
 */
export async function ocrCrop(request: OcrCropRequest__Output, maxMessageBytes = Number.MAX_SAFE_INTEGER, signal?: AbortSignal, limits: PreprocessLimits = DEFAULT_PREPROCESS_LIMITS): Promise<OcrCropResponse> {
  const parent = request.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: request.traceparent }) : ROOT_CONTEXT;
  const span = tracer.startSpan('ocr-crop', { kind: SpanKind.SERVER }, parent);
  try {
    const boxes = request.boxes;
    if (boxes.length % 8 !== 0) throw new TensorError(`boxes: ${boxes.length} numbers is not a whole number of boxes [K, 4, 2]`);
    const count = boxes.length / 8;
    if (count > MAX_BOXES_PER_PAGE) throw new TensorError(`boxes: ${count} boxes on one page, over the limit of ${MAX_BOXES_PER_PAGE}`);
    const bad = boxes.findIndex((n) => !Number.isFinite(n) || Math.abs(n) > MAX_LINE_SIDE);
    if (bad >= 0) throw new TensorError(`boxes: box ${Math.floor(bad / 8)} has a corner outside any page (${boxes[bad]})`);
    const maxWidth = request.maxRecognitionWidth || DEFAULT_MAX_RECOGNITION_WIDTH;
    if (maxWidth > DEFAULT_MAX_RECOGNITION_WIDTH * 4) throw new TensorError(`max_recognition_width ${maxWidth} is over ${DEFAULT_MAX_RECOGNITION_WIDTH * 4}`);
    span.setAttribute('infermesh.boxes', count);
    const quads = Array.from({ length: count }, (_, k) => corners(boxes, k));
    const sizes = quads.map(lineSize);
    const widths = sizes.map((s) => recognitionWidth(s, maxWidth));
    const answer = ocrCropResponseBytes(widths);
    if (answer > maxMessageBytes) throw resourceExhausted(`the page's ${count} lines would answer ${answer} bytes of tensors, over the ${maxMessageBytes}-byte message limit`);
    // The page, and the lines' pixels warped from it, count against the request's pixel budget.
    const linePixels = sizes.reduce((sum, s) => sum + s.width * s.height, 0);
    await checkDeclaredPixels(limits, 'image', [request.image], Math.ceil(answer / 3) + linePixels);
    signal?.throwIfAborted();
    const page = await decodeInSlot(request.image, limits.maxImagePixels, signal).catch((error: Error) => {
      if (signal?.aborted) throw error;
      throw new TensorError(`input 'image': the page is not an image that can be decoded (PNG or JPEG expected): ${error.message}`);
    });
    const direction = Buffer.alloc(count * LINE_HEIGHT * DIRECTION_WIDTH * 3, PAD_PIXEL);
    const recognition = Buffer.allocUnsafe(widths.reduce((sum, w) => sum + LINE_HEIGHT * w * 3, 0));
    const pixels: PixelBuffer = { ...page, channels: 3 };
    const directionSpec = { width: DIRECTION_WIDTH, height: LINE_HEIGHT, resize: 'height-pad-right' };
    let at = 0;
    for (let k = 0; k < count; k++) {
      if (k % 16 === 0) signal?.throwIfAborted();
      const line = rectifyLine(pixels, quads[k], sizes[k]);
      const frame = direction.subarray(k * LINE_HEIGHT * DIRECTION_WIDTH * 3, (k + 1) * LINE_HEIGHT * DIRECTION_WIDTH * 3);
      resizeBilinear(line, { data: frame, width: DIRECTION_WIDTH, height: LINE_HEIGHT, channels: 3 }, placement(directionSpec, line.width, line.height));
      const bytes = LINE_HEIGHT * widths[k] * 3;
      resizeBilinear(line, { data: recognition.subarray(at, at + bytes), width: widths[k], height: LINE_HEIGHT, channels: 3 }, { left: 0, top: 0, width: widths[k], height: LINE_HEIGHT });
      at += bytes;
    }
    return { direction, recognitionWidths: widths, recognition, width: page.width, height: page.height };
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    throw error;
  } finally {
    span.end();
  }
}
