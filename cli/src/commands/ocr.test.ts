/** infermesh ocr's reading of an OCR answer: lines per page top to bottom, and what it prints. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InferResult, Tensor } from '@infermesh/client';
import { formatPage, isOcrResult, MAX_OCR_PAGES, ocr, ocrLines } from './ocr.js';

/** An answer of model ocr with these lines: [text, score, [x0, y0, x1, y1], image]. */
function answer(lines: [string, number, [number, number, number, number], number][], extra: Tensor[] = []): InferResult {
  const outputs: Tensor[] = [
    { name: 'text', datatype: 'BYTES', shape: [lines.length], data: lines.map(([t]) => Buffer.from(t)) },
    { name: 'boxes', datatype: 'FP32', shape: [lines.length, 4, 2], data: Float32Array.from(lines.flatMap(([, , [x0, y0, x1, y1]]) => [x0, y0, x1, y0, x1, y1, x0, y1])) },
    { name: 'scores', datatype: 'FP32', shape: [lines.length], data: Float32Array.from(lines.map(([, s]) => s)) },
    { name: 'image_index', datatype: 'INT32', shape: [lines.length], data: Int32Array.from(lines.map(([, , , i]) => i)) },
    ...extra,
  ];
  return { model: 'ocr', version: '1', id: 'a', outputs, parameters: {}, output: (name: string) => outputs.find((o) => o.name === name)! } as InferResult;
}

describe('ocrLines', () => {
  it('groups lines by image and orders each page top to bottom, then left to right', () => {
    const pages = ocrLines(answer([
      ['second', 0.9, [10, 50, 100, 70], 0],
      ['other page', 0.8, [5, 5, 50, 20], 1],
      ['first, right', 0.75, [200, 10, 300, 30], 0],
      ['first, left', 0.5, [10, 10, 100, 30], 0],
    ]), 2);
    expect(pages[0].map((l) => l.text)).toEqual(['first, left', 'first, right', 'second']);
    expect(pages[1]).toEqual([{ text: 'other page', score: expect.closeTo(0.8, 6), box: [[5, 5], [50, 5], [50, 20], [5, 20]] }]);
  });

  it('reads a page with no text as no lines', () => {
    expect(ocrLines(answer([]), 1)).toEqual([[]]);
  });

  it('refuses an answer whose outputs disagree in length, or a line of an image not sent', () => {
    const short = answer([['a', 1, [0, 0, 1, 1], 0]]);
    (short.outputs[2] as { data: Float32Array }).data = new Float32Array(0);
    expect(() => ocrLines(short)).toThrow(/1 texts, 0 scores, 1 boxes and 1 image indexes/);
    expect(() => ocrLines(answer([['a', 1, [0, 0, 1, 1], 1]]), 1)).toThrow(/a line of image 1, but the request held 1 image/);
  });

  it('knows an OCR answer from another model\'s', () => {
    expect(isOcrResult(answer([]))).toBe(true);
    const classifier = { ...answer([]), outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 2], data: new Float32Array(2) }] } as InferResult;
    expect(isOcrResult(classifier)).toBe(false);
  });
});

describe('formatPage', () => {
  it('prints the page, its line count, and per line score, box extent and text', () => {
    const [lines] = ocrLines(answer([['Hello world', 0.98765, [12.4, 20.6, 300, 48], 0]]));
    expect(formatPage('page.png', lines)).toBe('page.png: 1 line\n  0.988  12,21 300,48         Hello world');
    expect(formatPage('blank.png', [])).toBe('blank.png: 0 lines');
  });
});

describe('ocr', () => {
  it('checks every page before calling the mesh: missing files, too many pages', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ocr-cli-'));
    try {
      await writeFile(join(dir, 'a.png'), 'x');
      const options = { address: '127.0.0.1:1', model: 'ocr', version: '', json: false };
      await expect(ocr({ ...options, pages: [join(dir, 'a.png'), join(dir, 'missing.png')] })).rejects.toThrow(/page .*missing\.png does not exist or is not a file/);
      await expect(ocr({ ...options, pages: [dir] })).rejects.toThrow(/is not a file/);
      await expect(ocr({ ...options, pages: Array.from({ length: MAX_OCR_PAGES + 1 }, () => join(dir, 'a.png')) })).rejects.toThrow(/257 pages, over the limit of 256 per command: for a folder of pages use infermesh batch --model ocr/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
