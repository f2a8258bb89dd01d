/**
 * What the preprocessor takes before it decodes anything: the image formats it was
 * configured for (told by their magic bytes, not by what a decoder would try), the images
 * of one request, and the pixels they declare in their headers (read without decoding:
 * PNG's IHDR and JPEG's frame header here, other formats by sharp). Each refusal names the
 * input, the element and the limit.
 */
import sharp from 'sharp';
import { TensorError } from '@infermesh/tensor';

/** Formats sharp can decode, by the names PREPROCESSOR_IMAGE_FORMATS takes. */
export const IMAGE_FORMATS = ['png', 'jpeg', 'webp', 'gif', 'tiff', 'heif', 'svg'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export interface PreprocessLimits {
  /** Formats decoded; the docs name PNG and JPEG, the rest only when configured. */
  formats: readonly ImageFormat[];
  /** Images in one request (one item of a call). */
  maxImages: number;
  /** Pixels of one image, as its header declares them. */
  maxImagePixels: number;
  /**
   * One request's work and memory: the pixels its images declare plus the pixels of the
   * frames it would answer. A request over it is refused before any image is decoded.
   */
  maxRequestPixels: number;
}

/**
 * 25 megapixels is a 6000 x 4000 photograph (75 MB decoded); 1024 images is more than any
 * served model's max_batch_size; 100 megapixels a request (300 MB were it all decoded at
 * once, about a second of decoding) fits 4 such photographs or thousands of text lines.
 */
export const DEFAULT_PREPROCESS_LIMITS: PreprocessLimits = {
  formats: ['png', 'jpeg'],
  maxImages: 1024,
  maxImagePixels: 25_000_000,
  maxRequestPixels: 100_000_000,
};

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The format an encoded image's first bytes announce, or undefined when they announce none sharp decodes. */
export function sniffFormat(bytes: Buffer): ImageFormat | undefined {
  if (bytes.subarray(0, 8).equals(PNG)) return 'png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  const ascii = bytes.toString('latin1', 0, 12);
  if (ascii.startsWith('RIFF') && ascii.slice(8, 12) === 'WEBP') return 'webp';
  if (ascii.startsWith('GIF87a') || ascii.startsWith('GIF89a')) return 'gif';
  if (ascii.startsWith('II*\0') || ascii.startsWith('MM\0*')) return 'tiff';
  if (ascii.slice(4, 8) === 'ftyp') return 'heif';
  // SVG is text: libvips' loader looks for '<svg' near the start (after any XML prologue).
  if (/<svg[\s>]/i.test(bytes.toString('latin1', 0, 1024))) return 'svg';
  return undefined;
}

/**
 * Width and height as a PNG's IHDR or a JPEG's frame header (SOFn) declares them, or
 * undefined where the header is not there to read. Read here because asking sharp costs a
 * libvips image per request image (about a third of the preprocessor's time on a text line),
 * and these two headers are fixed fields; the decoder reads the same fields afterwards.
 */
export function declaredSize(format: ImageFormat, bytes: Buffer): { width: number; height: number } | undefined {
  if (format === 'png') {
    // Signature (8), then the IHDR chunk first: length (4), "IHDR", width (4), height (4).
    if (bytes.length < 24 || bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined;
    return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
  }
  if (format === 'jpeg') {
    // Segments after SOI: 0xFF, a marker, a 2-byte length (which counts itself). A thumbnail
    // inside APP1 (EXIF) is skipped with its segment, so only the image's own frame is read.
    // Anything a decoder would read differently (a byte that is no marker, FF 00, a marker
    // without a length here) leaves the size to sharp: libjpeg resynchronizes on such bytes,
    // and a walk that skipped them otherwise could read a frame header the decoder never does.
    let at = 2;
    while (at + 4 <= bytes.length) {
      if (bytes[at] !== 0xff) return undefined;
      const marker = bytes[at + 1]!;
      if (marker === 0xff) {
        at += 1; // fill byte
        continue;
      }
      if (marker < 0xc0 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) return undefined;
      const length = bytes.readUInt16BE(at + 2);
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision (1), height (2), width (2).
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        if (at + 9 > bytes.length) return undefined;
        return { width: bytes.readUInt16BE(at + 7), height: bytes.readUInt16BE(at + 5) };
      }
      if (marker === 0xda || length < 2) return undefined; // scan data before any frame header: malformed
      at += 2 + length;
    }
    return undefined;
  }
  return undefined;
}

/** Refuses an image whose magic bytes are not one of the configured formats, naming what was found. */
export function checkFormat(limits: PreprocessLimits, name: string, index: number, bytes: Buffer): ImageFormat {
  const format = sniffFormat(bytes);
  if (format && limits.formats.includes(format)) return format;
  const found = format ? format.toUpperCase() : 'not a known image format';
  throw new TensorError(`input '${name}': element ${index} is ${found}; this preprocessor decodes ${limits.formats.map((f) => f.toUpperCase()).join(', ')} (PREPROCESSOR_IMAGE_FORMATS)`);
}

/** Refuses a request with more images than the limit, before anything of them is read. */
export function checkImageCount(limits: PreprocessLimits, name: string, count: number): void {
  if (count > limits.maxImages) throw new TensorError(`input '${name}': ${count} images in one request, over the preprocessor's limit of ${limits.maxImages} (PREPROCESSOR_MAX_IMAGES)`);
}

/**
 * The pixels each image declares in its header, each within the per-image limit, and with
 * the request's frames (`framePixels` each) within the per-request limit. Reads headers
 * only: nothing is decoded here.
 */
export async function checkDeclaredPixels(limits: PreprocessLimits, name: string, images: readonly Buffer[], framePixels: number): Promise<void> {
  let total = images.length * framePixels;
  if (total > limits.maxRequestPixels) throw overRequest(limits, name, images.length, total);
  for (const [index, bytes] of images.entries()) {
    const format = checkFormat(limits, name, index, bytes);
    let size = declaredSize(format, bytes);
    try {
      // Unlimited here, so a header over the limit is reported by its own size below.
      size ??= await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch (error) {
      throw new TensorError(`input '${name}': element ${index} has no readable image header: ${(error as Error).message.slice(0, 200)}`);
    }
    const { width, height } = size;
    const pixels = width * height;
    if (!(pixels <= limits.maxImagePixels)) {
      throw new TensorError(`input '${name}': element ${index} declares ${width} x ${height} pixels, over the limit of ${limits.maxImagePixels} per image (PREPROCESSOR_MAX_IMAGE_PIXELS)`);
    }
    total += pixels;
    if (total > limits.maxRequestPixels) throw overRequest(limits, name, images.length, total);
  }
}

function overRequest(limits: PreprocessLimits, name: string, count: number, total: number): TensorError {
  return new TensorError(`input '${name}': the request's ${count} images and their frames come to at least ${total} pixels, over the limit of ${limits.maxRequestPixels} per request (PREPROCESSOR_MAX_REQUEST_PIXELS)`);
}
