/**
 * Labelled evaluation sets (format in models/README.md): rows, a .jsonl file of JSON objects
 * each with a `label` (the rest of the object is the row sent to the model); or images, a folder
 * of PNG/JPEG files with `labels.jsonl` lines `{"file": "...", "label": "..."}`. A model's own set
 * lives in `<repository>/<model>/evaluation/` (rows.jsonl, or the images and labels.jsonl).
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import { EVALUATION_LABELS_FILE, EVALUATION_ROWS_FILE } from '@infermesh/models';
import { readLines } from '../lines.js';

/** Items read at most: an evaluation sends each one through the mesh. */
export const MAX_EVALUATION_ITEMS = 100_000;
/** A line of a rows or labels file longer than this is refused, never held. */
const MAX_LINE_BYTES = 1024 * 1024;
/** An image larger than this is refused before it is read. */
const MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024;
/** A label longer than this cannot be a class name of a served model. */
const MAX_LABEL_LENGTH = 256;
const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

export class EvaluationSetError extends Error {}

export interface EvaluationItem {
  /** Where the item comes from: "rows.jsonl line 3", or the image's file name. */
  id: string;
  /** The true class, an index into the model's classes. */
  label: number;
  /** The raw input element as a client sends it: the row's JSON, or the encoded image. */
  input: Buffer;
}

export interface EvaluationSet {
  kind: 'rows' | 'images';
  /** The file or folder read. */
  path: string;
  items: EvaluationItem[];
}

/** `<repository>/<model>/evaluation/rows.jsonl` when there is one, else that folder (images). */
export async function defaultEvaluationPath(repository: string, model: string): Promise<string> {
  const dir = join(repository, model, 'evaluation');
  const rows = join(dir, EVALUATION_ROWS_FILE);
  if (await isFile(rows)) return rows;
  if (await isFile(join(dir, EVALUATION_LABELS_FILE))) return dir;
  throw new EvaluationSetError(`model '${model}' has no labelled evaluation set (no ${relative(process.cwd(), rows) || rows} or ${join(dir, EVALUATION_LABELS_FILE)}); pass --data`);
}

function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

async function* jsonLines(file: string): AsyncGenerator<{ value: unknown; where: string }> {
  const name = basename(file);
  const input = createReadStream(file);
  try {
    for await (const read of readLines(input, MAX_LINE_BYTES)) {
      if ('tooLong' in read) throw new EvaluationSetError(`${name} line ${read.number}: ${read.tooLong} bytes, over the ${MAX_LINE_BYTES}-byte limit of a line`);
      if ('notUtf8' in read) throw new EvaluationSetError(`${name} line ${read.number}: not valid UTF-8`);
      if (!read.text.trim()) continue;
      const where = `${name} line ${read.number}`;
      try {
        yield { value: JSON.parse(read.text) as unknown, where };
      } catch {
        throw new EvaluationSetError(`${where}: not a JSON object`);
      }
    }
  } finally {
    input.destroy();
  }
}

/** The class index of a line's `label`, or a message naming what is wrong with it. */
function labelIndex(record: Record<string, unknown>, classes: readonly string[], where: string): number {
  const label = record.label;
  if (typeof label !== 'string' || label.length === 0) throw new EvaluationSetError(`${where}: no "label" (the true class, one of ${classes.join(', ')})`);
  const index = classes.indexOf(label);
  if (index < 0) {
    const shown = label.length > MAX_LABEL_LENGTH ? `${label.slice(0, 64)}…` : label;
    throw new EvaluationSetError(`${where}: label '${shown}' is not one of the model's classes (${classes.join(', ')})`);
  }
  return index;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readRows(file: string, classes: readonly string[]): Promise<EvaluationItem[]> {
  const items: EvaluationItem[] = [];
  for await (const { value, where } of jsonLines(file)) {
    if (!isObject(value)) throw new EvaluationSetError(`${where}: not a JSON object`);
    if (items.length >= MAX_EVALUATION_ITEMS) throw new EvaluationSetError(`${basename(file)} holds more than ${MAX_EVALUATION_ITEMS} rows`);
    const { label: _label, ...row } = value;
    items.push({ id: where, label: labelIndex(value, classes, where), input: Buffer.from(JSON.stringify(row)) });
  }
  return items;
}

async function readImages(folder: string, classes: readonly string[]): Promise<EvaluationItem[]> {
  const labels = join(folder, EVALUATION_LABELS_FILE);
  if (!(await isFile(labels))) throw new EvaluationSetError(`${folder} has no ${EVALUATION_LABELS_FILE} (one {"file": "...", "label": "..."} line per image)`);
  const root = resolve(folder);
  const items: EvaluationItem[] = [];
  const seen = new Set<string>();
  for await (const { value, where } of jsonLines(labels)) {
    if (!isObject(value)) throw new EvaluationSetError(`${where}: not a JSON object`);
    if (items.length >= MAX_EVALUATION_ITEMS) throw new EvaluationSetError(`${EVALUATION_LABELS_FILE} lists more than ${MAX_EVALUATION_ITEMS} images`);
    const file = value.file;
    if (typeof file !== 'string' || !IMAGE_EXTENSIONS.has(extname(file).toLowerCase())) throw new EvaluationSetError(`${where}: "file" must name a PNG or JPEG image in ${folder}`);
    // The set names files inside its folder only: a label file is data, not a way to read /etc.
    const path = resolve(root, file);
    if (!path.startsWith(root + sep)) throw new EvaluationSetError(`${where}: "file" ${JSON.stringify(file.slice(0, 200))} is outside ${folder}`);
    if (seen.has(path)) throw new EvaluationSetError(`${where}: ${file} is listed twice`);
    seen.add(path);
    const label = labelIndex(value, classes, where);
    const size = await stat(path).then((s) => (s.isFile() ? s.size : -1), () => -1);
    if (size < 0) throw new EvaluationSetError(`${where}: no image ${file} in ${folder}`);
    if (size > MAX_IMAGE_FILE_BYTES) throw new EvaluationSetError(`${where}: ${file} is ${size} bytes, over the ${MAX_IMAGE_FILE_BYTES}-byte limit of an image here`);
    items.push({ id: file, label, input: await readFile(path) });
  }
  return items;
}

/** Reads a labelled set: `path` is a .jsonl file of rows or a folder of images with labels.jsonl. */
export async function loadEvaluationSet(path: string, classes: readonly string[]): Promise<EvaluationSet> {
  const what = await stat(path).catch(() => {
    throw new EvaluationSetError(`--data ${path}: no such file or folder`);
  });
  const kind = what.isDirectory() ? 'images' : 'rows';
  if (kind === 'rows' && !['.jsonl', '.ndjson'].includes(extname(path).toLowerCase())) throw new EvaluationSetError(`--data ${path}: rows come as a .jsonl file (one JSON object with a "label" per line), images as a folder with ${EVALUATION_LABELS_FILE}`);
  const items = kind === 'images' ? await readImages(path, classes) : await readRows(path, classes);
  if (items.length === 0) throw new EvaluationSetError(`--data ${path} holds no labelled ${kind}`);
  return { kind, path, items };
}
