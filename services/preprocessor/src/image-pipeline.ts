/** Encoded images → one model tensor: decode, resize/pad, normalize, layout, dtype. */
import sharp from 'sharp';
import { TensorError, type Tensor } from '@infermesh/tensor';
import type { ImagePipeline__Output } from '@infermesh/contracts';

/** Decompression-bomb guard: refuse images over this many pixels before decoding them. */
const MAX_INPUT_PIXELS = 50_000_000;

interface Placement {
  /** Size the image is resized to. */
  width: number;
  height: number;
  /** Where it sits in the output canvas. */
  left: number;
  top: number;
}

function placement(spec: ImagePipeline__Output, sourceWidth: number, sourceHeight: number): Placement {
  const { width, height } = spec;
  switch (spec.resize) {
    case 'pad': {
      const ratio = Math.min(width / sourceWidth, height / sourceHeight);
      const w = Math.max(1, Math.round(sourceWidth * ratio));
      const h = Math.max(1, Math.round(sourceHeight * ratio));
      return { width: w, height: h, left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2) };
    }
    case 'height-pad-right': {
      // PaddleOCR's text classifier: keep the aspect ratio at the target height, pad on the right.
      const w = Math.max(1, Math.min(width, Math.ceil((height * sourceWidth) / sourceHeight)));
      return { width: w, height, left: 0, top: 0 };
    }
    default:
      return { width, height, left: 0, top: 0 };
  }
}

async function decode(spec: ImagePipeline__Output, name: string, index: number, bytes: Buffer): Promise<{ pixels: Buffer; place: Placement }> {
  try {
    const image = sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' });
    const meta = await image.metadata();
    if (!meta.width || !meta.height) throw new Error('no dimensions');
    // Place the image as it is displayed: EXIF orientations 5-8 swap width and height.
    const upright = meta.autoOrient ?? { width: meta.width, height: meta.height };
    const place = placement(spec, upright.width, upright.height);
    const pixels = await image
      .rotate() // honour EXIF orientation, as viewers do
      .removeAlpha()
      .toColourspace('srgb')
      .resize(place.width, place.height, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    return { pixels, place };
  } catch (error) {
    throw new TensorError(`input '${name}': element ${index} is not an image that can be decoded (PNG or JPEG expected): ${(error as Error).message}`);
  }
}

export async function runImagePipeline(spec: ImagePipeline__Output, input: Tensor): Promise<Tensor> {
  if (input.datatype !== 'BYTES') throw new TensorError(`input '${input.name}': datatype ${input.datatype}, expected BYTES (one encoded image per element)`);
  const images = input.data as Buffer[];
  if (images.length === 0) throw new TensorError(`input '${input.name}': no images`);
  const decoded = await Promise.all(images.map((bytes, i) => decode(spec, input.name, i, bytes)));
  const { width, height } = spec;
  const plane = width * height;
  const perImage = 3 * plane;
  const fp32 = spec.datatype !== 'UINT8';
  const out = fp32 ? new Float32Array(perImage * images.length) : new Uint8Array(perImage * images.length);
  const order = spec.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const scale = spec.scale || 1 / 255;
  const mean = spec.mean.length === 3 ? spec.mean : [0, 0, 0];
  const std = spec.std.length === 3 ? spec.std : [1, 1, 1];
  const nchw = spec.layout !== 'NHWC';
  if (spec.padValue !== 0) out.fill(spec.padValue);
  decoded.forEach(({ pixels, place }, n) => {
    const base = n * perImage;
    for (let y = 0; y < place.height; y++) {
      for (let x = 0; x < place.width; x++) {
        const source = (y * place.width + x) * 3;
        const pixel = (y + place.top) * width + (x + place.left);
        for (let c = 0; c < 3; c++) {
          const value = pixels[source + order[c]];
          const target = nchw ? base + c * plane + pixel : base + pixel * 3 + c;
          out[target] = fp32 ? (value * scale - mean[c]) / std[c] : value;
        }
      }
    }
  });
  const shape = nchw ? [images.length, 3, height, width] : [images.length, height, width, 3];
  return { name: spec.output, datatype: fp32 ? 'FP32' : 'UINT8', shape, data: out };
}
