/**
 * Bilinear resize of interleaved 8-bit images, bit-exact with OpenCV's
 * `cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)` on `uint8` images.
 *
 * The models we serve were trained on OpenCV's resize, and sharp's `linear` kernel is not it:
 * sharp antialiases when it shrinks, OpenCV does not, and long text lines come out different.
 * So this reproduces OpenCV's own arithmetic rather than "bilinear" in general
 * (modules/imgproc/src/resize.cpp: `cv::resize`, `cv::hal::resize`, `resizeGeneric_`,
 * `HResizeLinear`, `VResizeLinear<uchar, int, short, ...>`, `resizeAreaFast_`; read in 4.6.0, the
 * same in this logic as an older 3.4-era snapshot; checked pixel for pixel against Debian's 4.6.0):
 *
 * - geometry: half-pixel centres, `fx = (float)((dx + 0.5) * scale - 0.5)` with
 *   `scale = 1 / (dstWidth / srcWidth)`, computed in double and stored as float;
 * - weights: `saturate_cast<short>((1 - fx) * 2048)` and `saturate_cast<short>(fx * 2048)`,
 *   i.e. INTER_RESIZE_COEF_BITS = 11, rounded half to even in float arithmetic;
 * - columns left of the image or at or right of its last pixel take that pixel alone; rows are
 *   clamped to the image but keep their weights;
 * - the horizontal pass sums into int (`S[x] * a0 + S[x + cn] * a1`); the vertical pass is the
 *   8-bit specialisation `(((b0 * (T0 >> 4)) >> 16) + ((b1 * (T1 >> 4)) >> 16) + 2) >> 2`, which its
 *   SIMD and scalar code share — not the `(T0 * b0 + T1 * b1 + 2^21) >> 22` one might expect;
 * - an exact 2x shrink in both directions becomes INTER_AREA (`cv::hal::resize` switches), which
 *   for 1, 3 and 4 channels is `(a + b + c + d + 2) >> 2` and for others `cvRound(sum * 0.25f)`;
 * - the same size copies.
 *
 * OpenCV builds that hand resize to IPP or a custom HAL (none on Debian's x86-64 build) may differ.
 */

/** Interleaved 8-bit pixels, row after row, `channels` bytes per pixel, rows not padded. */
export interface PixelBuffer {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

/** A rectangle of a frame, in pixels. */
export interface Region {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

const COEF_BITS = 11;
const COEF_ONE = 1 << COEF_BITS;

/**
 * Resizes `source` to `region.width` x `region.height` and writes it into that region of `frame`
 * (`frame.width` is its row length in pixels), leaving the rest of the frame untouched; the
 * batch frame is written in place so an image is never copied a second time.
 */
export function resizeBilinear(source: PixelBuffer, frame: PixelBuffer, region: Region): void {
  check(source, frame, region);
  const { width: sw, height: sh } = source;
  const { width: dw, height: dh } = region;
  // OpenCV's derivation; `sw / dw` differs from it in the last bit for some sizes.
  const scaleX = 1 / (dw / sw);
  const scaleY = 1 / (dh / sh);
  if (sw === dw && sh === dh) copy(source, frame, region);
  else if (scaleX === 2 && scaleY === 2) halve(source, frame, region);
  else interpolate(source, frame, region, scaleX, scaleY);
}

function check(source: PixelBuffer, frame: PixelBuffer, region: Region): void {
  if (!isCount(source.channels)) throw new RangeError(`channels must be a positive integer, got ${source.channels}`);
  if (frame.channels !== source.channels) throw new RangeError(`frame has ${frame.channels} channels, source has ${source.channels}`);
  checkBuffer('source', source);
  checkBuffer('frame', frame);
  const { left, top, width, height } = region;
  if (!isCount(width) || !isCount(height) || !Number.isInteger(left) || !Number.isInteger(top) || left < 0 || top < 0 || left + width > frame.width || top + height > frame.height) {
    throw new RangeError(`region ${width}x${height} at (${left}, ${top}) does not fit a ${frame.width}x${frame.height} frame`);
  }
}

function checkBuffer(what: string, { data, width, height, channels }: PixelBuffer): void {
  if (!isCount(width) || !isCount(height)) throw new RangeError(`${what} size ${width}x${height} is not positive integers`);
  const bytes = width * height * channels;
  if (data.length !== bytes) throw new RangeError(`${what} holds ${data.length} bytes, ${width}x${height}x${channels} needs ${bytes}`);
}

const isCount = (n: number): boolean => Number.isInteger(n) && n > 0;

/** `saturate_cast<short>(float)` for the weights: cvRound, which rounds half to even. */
function roundHalfEven(value: number): number {
  const rounded = Math.round(value);
  return rounded - value === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

function copy(source: PixelBuffer, frame: PixelBuffer, region: Region): void {
  const rowBytes = source.width * source.channels;
  for (let y = 0; y < source.height; y++) {
    const row = source.data.subarray(y * rowBytes, (y + 1) * rowBytes);
    frame.data.set(row, ((region.top + y) * frame.width + region.left) * source.channels);
  }
}

/** OpenCV's INTER_AREA fast path for an exact 2x shrink, which it uses for INTER_LINEAR too. */
function halve(source: PixelBuffer, frame: PixelBuffer, region: Region): void {
  const { data: src, channels: cn } = source;
  const dst = frame.data;
  const srcRow = source.width * cn;
  // Only 1, 3 and 4 channels take the rounding-shift path (`ResizeAreaFastVec::fast_mode`); the
  // generic loop multiplies by 0.25f and rounds half to even instead.
  const shift = cn === 1 || cn === 3 || cn === 4;
  for (let dy = 0; dy < region.height; dy++) {
    let upper = 2 * dy * srcRow;
    let out = ((region.top + dy) * frame.width + region.left) * cn;
    for (let dx = 0; dx < region.width; dx++, upper += 2 * cn) {
      for (let c = 0, s = upper; c < cn; c++, s++, out++) {
        const sum = src[s] + src[s + cn] + src[s + srcRow] + src[s + srcRow + cn];
        dst[out] = shift ? (sum + 2) >> 2 : roundHalfEven(sum / 4);
      }
    }
  }
}

/** Where each output row (or column) samples, as OpenCV computes it before clamping. */
interface Taps {
  /** The first source pixel of the pair; may lie outside the image. */
  readonly first: Int32Array;
  /** Fixed-point weights of the first and second pixel, in 2^11 units. */
  readonly weight0: Int32Array;
  readonly weight1: Int32Array;
}

function taps(dstLength: number, scale: number): Taps {
  const first = new Int32Array(dstLength);
  const weight0 = new Int32Array(dstLength);
  const weight1 = new Int32Array(dstLength);
  for (let d = 0; d < dstLength; d++) {
    // float, as OpenCV stores them: their rounding shows in the weights
    const position = Math.fround((d + 0.5) * scale - 0.5);
    const s = Math.floor(position);
    const fraction = Math.fround(position - s);
    first[d] = s;
    weight0[d] = roundHalfEven(Math.fround(1 - fraction) * COEF_ONE);
    weight1[d] = roundHalfEven(fraction * COEF_ONE);
  }
  return { first, weight0, weight1 };
}

/** Column taps clamped as OpenCV clamps them, with the first tap as a byte offset in a row. */
interface ColumnTaps {
  readonly offset: Int32Array;
  readonly weight0: Int32Array;
  readonly weight1: Int32Array;
  /** Columns from here on sample the last source pixel alone: it has no right neighbour to read. */
  readonly inside: number;
}

function columnTaps(srcWidth: number, dstWidth: number, channels: number, scale: number): ColumnTaps {
  const { first: offset, weight0, weight1 } = taps(dstWidth, scale);
  let inside = dstWidth;
  for (let dx = 0; dx < dstWidth; dx++) {
    let sx = offset[dx];
    // Unlike rows, a column that falls off either side drops its fraction and takes the edge pixel.
    if (sx < 0) {
      sx = 0;
      weight0[dx] = COEF_ONE;
      weight1[dx] = 0;
    }
    if (sx >= srcWidth - 1) {
      inside = Math.min(inside, dx);
      sx = srcWidth - 1;
      weight0[dx] = COEF_ONE;
      weight1[dx] = 0;
    }
    offset[dx] = sx * channels;
  }
  return { offset, weight0, weight1, inside };
}

function interpolate(source: PixelBuffer, frame: PixelBuffer, region: Region, scaleX: number, scaleY: number): void {
  const { data: src, width: sw, height: sh, channels: cn } = source;
  const { width: dw, height: dh } = region;
  const dst = frame.data;
  const rowElements = dw * cn;
  const columns = columnTaps(sw, dw, cn, scaleX);
  // Rows off the image are clamped to it but keep their weights (`clip` in resizeGeneric_Invoker).
  const rows = taps(dh, scaleY);
  const srcRow = sw * cn;
  // The horizontal pass of the two source rows an output row needs; consecutive output rows
  // mostly share them, so each source row is filtered once.
  let upper = new Int32Array(rowElements);
  let lower = new Int32Array(rowElements);
  let upperRow = -1;
  let lowerRow = -1;

  for (let dy = 0; dy < dh; dy++) {
    const sy = rows.first[dy];
    const row0 = sy < 0 ? 0 : sy >= sh ? sh - 1 : sy;
    const row1 = sy + 1 < 0 ? 0 : sy + 1 >= sh ? sh - 1 : sy + 1;
    if (row0 === lowerRow) {
      const buffer = upper;
      upper = lower;
      lower = buffer;
      lowerRow = upperRow;
      upperRow = row0;
    } else if (row0 !== upperRow) {
      filterRow(src, row0 * srcRow, cn, dw, columns, upper);
      upperRow = row0;
    }
    let second = upper;
    if (row1 !== row0) {
      if (row1 !== lowerRow) {
        filterRow(src, row1 * srcRow, cn, dw, columns, lower);
        lowerRow = row1;
      }
      second = lower;
    }

    const b0 = rows.weight0[dy];
    const b1 = rows.weight1[dy];
    const out = ((region.top + dy) * frame.width + region.left) * cn;
    // Math.imul: the products fit in int32, and it keeps V8 on integer arithmetic.
    for (let x = 0; x < rowElements; x++) {
      dst[out + x] = ((Math.imul(b0, upper[x]) >> 16) + (Math.imul(b1, second[x]) >> 16) + 2) >> 2;
    }
  }
}

/**
 * OpenCV's horizontal pass, each output element `src * a0 + right neighbour * a1` in 2^11 units,
 * stored `>> 4` as the vertical pass reads it: shifted once per source row, not per output row.
 */
function filterRow(src: Uint8Array, rowStart: number, cn: number, dw: number, columns: ColumnTaps, out: Int32Array): void {
  const { offset, weight0: a0, weight1: a1, inside } = columns;
  if (cn === 3) {
    // The shape every served model uses, unrolled: 1.3 to 2 times faster than the loop below.
    for (let dx = 0, o = 0; dx < inside; dx++, o += 3) {
      const s = rowStart + offset[dx];
      const w0 = a0[dx];
      const w1 = a1[dx];
      out[o] = (src[s] * w0 + src[s + 3] * w1) >> 4;
      out[o + 1] = (src[s + 1] * w0 + src[s + 4] * w1) >> 4;
      out[o + 2] = (src[s + 2] * w0 + src[s + 5] * w1) >> 4;
    }
  } else {
    for (let dx = 0; dx < inside; dx++) {
      const s = rowStart + offset[dx];
      const w0 = a0[dx];
      const w1 = a1[dx];
      for (let c = 0, o = dx * cn; c < cn; c++, o++) out[o] = (src[s + c] * w0 + src[s + c + cn] * w1) >> 4;
    }
  }
  for (let dx = inside; dx < dw; dx++) {
    const s = rowStart + offset[dx];
    for (let c = 0, o = dx * cn; c < cn; c++, o++) out[o] = (src[s + c] * COEF_ONE) >> 4;
  }
}
