/**
 * PaddleOCR's text-line classifier preprocessing, rewritten from its Python as an independent
 * check on the preprocessor: it shares no code with services/preprocessor (in particular not
 * its OpenCV-exact resize), so a mistake there does not reappear here.
 *
 * It mirrors `TextClassifier.resize_norm_img` in PaddlePaddle/PaddleOCR
 * tools/infer/predict_cls.py (lines 52-72 at commit 86b90aa; the same body in earlier versions),
 * with `cls_image_shape` 3,48,192:
 *
 * ```python
 * imgC, imgH, imgW = self.cls_image_shape
 * h = img.shape[0]
 * w = img.shape[1]
 * ratio = w / float(h)
 * if math.ceil(imgH * ratio) > imgW:
 *     resized_w = imgW
 * else:
 *     resized_w = int(math.ceil(imgH * ratio))
 * resized_image = cv2.resize(img, (resized_w, imgH))
 * resized_image = resized_image.astype('float32')
 * ...
 *     resized_image = resized_image.transpose((2, 0, 1)) / 255
 * resized_image -= 0.5
 * resized_image /= 0.5
 * padding_im = np.zeros((imgC, imgH, imgW), dtype=np.float32)
 * padding_im[:, :, 0:resized_w] = resized_image
 * return padding_im
 * ```
 *
 * `cv2.resize` (INTER_LINEAR) is done here in float64 with OpenCV's documented geometry — pixel
 * centres at half-integers, samples beyond the first or last centre taking the edge pixel — and
 * rounded to the nearest integer (halves up) as the uint8 image cv2 returns. OpenCV itself works
 * in fixed point and truncates on the way, so a resized pixel here can differ from cv2's by 1,
 * nearly always above it: on 300 random text lines against cv2 4.6.0, 11% of the tensor values
 * differed, none by more than one uint8 step (2/255 after normalization). Compare with that
 * tolerance, not bit for bit.
 */

export const CLS_CHANNELS = 3;
export const CLS_HEIGHT = 48;
export const CLS_WIDTH = 192;

/** The width a `width` x `height` image is resized to before padding: `resized_w`. */
export function clsResizedWidth(width: number, height: number): number {
  // The same float expression as the Python (`imgH * (w / h)`), so the ceiling agrees with it.
  const wanted = Math.ceil(CLS_HEIGHT * (width / height));
  return wanted > CLS_WIDTH ? CLS_WIDTH : wanted;
}

/**
 * `resize_norm_img` for one image: `bgr` is `height` rows of `width` pixels, 3 bytes each in
 * OpenCV's B, G, R order (as `cv2.imread` gives). Returns the CHW tensor [3, 48, 192], channels
 * still B, G, R, right padding 0.
 */
export function paddleClsResizeNormImg(bgr: Uint8Array, width: number, height: number): Float32Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || bgr.length !== width * height * CLS_CHANNELS) {
    throw new RangeError(`expected ${width}x${height}x${CLS_CHANNELS} bytes, got ${bgr.length}`);
  }
  const resizedWidth = clsResizedWidth(width, height);
  const resized = resizeLinearFloat(bgr, width, height, resizedWidth, CLS_HEIGHT);

  const plane = CLS_HEIGHT * CLS_WIDTH;
  const out = new Float32Array(CLS_CHANNELS * plane); // np.zeros: the padding
  for (let y = 0; y < CLS_HEIGHT; y++) {
    for (let x = 0; x < resizedWidth; x++) {
      for (let c = 0; c < CLS_CHANNELS; c++) {
        const value = resized[(y * resizedWidth + x) * CLS_CHANNELS + c];
        // float32 at each step, as numpy does on the float32 array
        const scaled = Math.fround(value / 255);
        const centred = Math.fround(scaled - 0.5);
        out[c * plane + y * CLS_WIDTH + x] = Math.fround(centred / 0.5);
      }
    }
  }
  return out;
}

/** Bilinear resize of an interleaved 3-channel image in float64, rounded to uint8 at the end. */
function resizeLinearFloat(src: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  const out = new Uint8Array(outWidth * outHeight * CLS_CHANNELS);
  const pixel = (x: number, y: number, c: number) => src[(y * width + x) * CLS_CHANNELS + c];
  for (let oy = 0; oy < outHeight; oy++) {
    const [y0, y1, ty] = sample(oy, height, outHeight);
    for (let ox = 0; ox < outWidth; ox++) {
      const [x0, x1, tx] = sample(ox, width, outWidth);
      for (let c = 0; c < CLS_CHANNELS; c++) {
        const top = (1 - tx) * pixel(x0, y0, c) + tx * pixel(x1, y0, c);
        const bottom = (1 - tx) * pixel(x0, y1, c) + tx * pixel(x1, y1, c);
        const value = (1 - ty) * top + ty * bottom;
        out[(oy * outWidth + ox) * CLS_CHANNELS + c] = Math.min(255, Math.max(0, Math.floor(value + 0.5)));
      }
    }
  }
  return out;
}

/**
 * The two source pixels output pixel `o` lies between and its fraction of the way to the second:
 * its centre `o + 0.5` maps to `(o + 0.5) * in / out` in the source, whose pixel centres are at `i + 0.5`.
 */
function sample(o: number, inLength: number, outLength: number): [number, number, number] {
  const position = ((o + 0.5) * inLength) / outLength - 0.5;
  const first = Math.floor(position);
  const clamp = (i: number) => Math.min(inLength - 1, Math.max(0, i));
  return [clamp(first), clamp(first + 1), position - first];
}
