/**
 * `npm run samples -w @infermesh/models`: regenerates the committed text-direction example images
 * (deterministic; text-direction.test.ts checks the model classifies them correctly).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { MODEL_REPOSITORY_DIR, TEXT_DIRECTION_SAMPLES } from './paths.js';
import { renderTextImage } from './text-image.js';

/** Paths are printed relative to the workspace root, wherever npm runs the script from. */
const REPO_ROOT = dirname(MODEL_REPOSITORY_DIR);

export const SAMPLE_TEXT = 'Hello World 2026';

const images = [
  [TEXT_DIRECTION_SAMPLES.upright, await renderTextImage(SAMPLE_TEXT)],
  [TEXT_DIRECTION_SAMPLES.upsideDown, await renderTextImage(SAMPLE_TEXT, { rotate180: true })],
] as const;
for (const [path, png] of images) {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, png);
  console.log(`text-direction: wrote ${relative(REPO_ROOT, path)} (${png.length} bytes)`);
}
