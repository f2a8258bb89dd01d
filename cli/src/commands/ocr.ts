/**
 * infermesh ocr: the text lines of page images, read by the mesh's `ocr` pipeline (detection,
 * crop, direction, recognition). One request per page, a few in flight, printed in the order the
 * pages were given: per page its lines top to bottom with their scores and boxes.
 */
import { stat, readFile } from 'node:fs/promises';
import { connect, InferenceError, tensor, type InferResult, type Tensor } from '@infermesh/client';
import { routerClientOptions, valuesOf } from './predict.js';

export interface OcrOptions {
  /** The router: HOST:PORT or grpc://HOST:PORT (gRPC), http(s)://HOST:PORT (REST). */
  address: string;
  model: string;
  version: string;
  pages: string[];
  json: boolean;
  /** Pages in flight at once. */
  concurrency?: number;
}

/** One line read: its text, the recognizer's score, its box's corners clockwise from top-left. */
export interface OcrLine {
  text: string;
  score: number;
  box: [number, number][];
}

/** Pages per command at most: a folder of pages is `infermesh batch --model ocr`'s work. */
export const MAX_OCR_PAGES = 256;
/** A page file larger than this is refused before it is read (the router takes 64 MiB messages). */
export const MAX_OCR_PAGE_BYTES = 32 * 1024 * 1024;
const DEFAULT_CONCURRENCY = 4;

/** The outputs an OCR model answers with: text [K], scores [K], boxes [K, 4, 2], image_index [K]. */
const OCR_OUTPUTS = ['text', 'scores', 'boxes'] as const;

/** Whether `result` has an OCR model's outputs (text, scores and boxes). */
export function isOcrResult(result: InferResult): boolean {
  return OCR_OUTPUTS.every((name) => result.outputs.some((o) => o.name === name));
}

/**
 * The lines of each of the request's `images` images, top to bottom (then left to right), from an
 * OCR model's outputs; a box of an image index out of range, or outputs of unequal lengths, are
 * an error naming what was wrong.
 */
export function ocrLines(result: InferResult, images = 1): OcrLine[][] {
  const output = (name: string): Tensor => result.output(name);
  const texts = valuesOf(output('text')).map(String);
  const scores = valuesOf(output('scores')).map(Number);
  const boxes = valuesOf(output('boxes')).map(Number);
  const index = result.outputs.some((o) => o.name === 'image_index') ? valuesOf(output('image_index')).map(Number) : texts.map(() => 0);
  const k = texts.length;
  if (scores.length !== k || boxes.length !== k * 8 || index.length !== k) {
    throw new InferenceError('INTERNAL', `model '${result.model}' answered ${k} texts, ${scores.length} scores, ${boxes.length / 8} boxes and ${index.length} image indexes: an OCR answer has one of each per line`);
  }
  const pages: OcrLine[][] = Array.from({ length: images }, () => []);
  for (let i = 0; i < k; i++) {
    if (!Number.isInteger(index[i]) || index[i] < 0 || index[i] >= images) {
      throw new InferenceError('INTERNAL', `model '${result.model}' answered a line of image ${index[i]}, but the request held ${images} image(s)`);
    }
    const box = Array.from({ length: 4 }, (_, c) => [boxes[i * 8 + 2 * c], boxes[i * 8 + 2 * c + 1]] as [number, number]);
    pages[index[i]].push({ text: texts[i], score: scores[i], box });
  }
  const top = (line: OcrLine) => Math.min(...line.box.map((p) => p[1]));
  const left = (line: OcrLine) => Math.min(...line.box.map((p) => p[0]));
  for (const lines of pages) lines.sort((a, b) => top(a) - top(b) || left(a) - left(b));
  return pages;
}

/** A page's lines as the command prints them: score, box extent, text. */
export function formatPage(page: string, lines: readonly OcrLine[]): string {
  const out = [`${page}: ${lines.length} line${lines.length === 1 ? '' : 's'}`];
  for (const line of lines) {
    const xs = line.box.map((p) => Math.round(p[0]));
    const ys = line.box.map((p) => Math.round(p[1]));
    const extent = `${Math.min(...xs)},${Math.min(...ys)} ${Math.max(...xs)},${Math.max(...ys)}`;
    out.push(`  ${line.score.toFixed(3)}  ${extent.padEnd(19)}  ${line.text}`);
  }
  return out.join('\n');
}

type PageOutcome = { page: string; lines: OcrLine[] } | { page: string; error: string };

/** Reads every page (bounded, one request each); prints them in order; returns how many failed. */
export async function ocr(options: OcrOptions): Promise<number> {
  if (options.pages.length === 0) throw new Error('give at least one page image (PNG or JPEG)');
  if (options.pages.length > MAX_OCR_PAGES) throw new Error(`${options.pages.length} pages, over the limit of ${MAX_OCR_PAGES} per command: for a folder of pages use infermesh batch --model ${options.model} --input DIR --output FILE.jsonl`);
  // Every file is checked before the first call: a typo fails at once, not after minutes of work.
  for (const page of options.pages) {
    const info = await stat(page).catch(() => undefined);
    if (!info || !info.isFile()) throw new Error(`page ${page} does not exist or is not a file`);
    if (info.size > MAX_OCR_PAGE_BYTES) throw new Error(`page ${page} is ${info.size} bytes, over the limit of ${MAX_OCR_PAGE_BYTES} bytes per page`);
  }

  const client = connect(options.address, routerClientOptions());
  const version = options.version || undefined;
  const outcomes: PageOutcome[] = new Array(options.pages.length);
  let next = 0;
  let model = options.model;
  let served = '';
  const work = async () => {
    for (let i = next++; i < options.pages.length; i = next++) {
      const page = options.pages[i];
      try {
        const result = await client.infer({ model: options.model, version, inputs: [tensor.bytes('image', [1], [await readFile(page)])] });
        if (!isOcrResult(result)) throw new InferenceError('INVALID_ARGUMENT', `model '${result.model}' answered outputs ${result.outputs.map((o) => `'${o.name}'`).join(', ')}: infermesh ocr needs an OCR model's text, scores and boxes`);
        model = result.model;
        served = result.version;
        outcomes[i] = { page, lines: ocrLines(result, 1)[0] };
      } catch (error) {
        // Unreachable router, unknown model: no other page would fare better.
        if (error instanceof InferenceError && (error.code === 'UNAVAILABLE' || error.code === 'NOT_FOUND' || error.code === 'UNAUTHENTICATED')) throw error;
        outcomes[i] = { page, error: error instanceof InferenceError ? `${error.code}: ${error.message}` : (error as Error).message };
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? DEFAULT_CONCURRENCY, options.pages.length) }, work));
  } finally {
    client.close();
  }

  const failed = outcomes.filter((o) => 'error' in o).length;
  if (options.json) {
    // Indented, with each corner [x, y] kept on one line: a page of lines stays readable.
    console.log(JSON.stringify({ model, version: served, pages: outcomes }, null, 2).replace(/\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]/g, '[$1, $2]'));
  } else {
    for (const outcome of outcomes) {
      if ('error' in outcome) process.stderr.write(`${outcome.page}: failed: ${outcome.error}\n`);
      else console.log(formatPage(outcome.page, outcome.lines));
    }
  }
  return failed;
}
