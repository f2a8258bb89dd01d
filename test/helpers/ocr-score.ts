/**
 * Scores an OCR reading of a generated page (models/src/ocr-pages.ts) against the page's truth:
 * the boxes read are assigned to the true lines they lie on, each true line's reading is the
 * assigned texts left to right, and the character error rate is Levenshtein distance over the
 * truth's length. The same rule serves every reader (the mesh and the reference), so a reader
 * that splits a line into several boxes and one that joins them are scored alike.
 */
import type { OcrPageLine, Point } from '@infermesh/models';

/** A line as a reader returns it: its text and its box's corners in page pixels. */
export interface ReadLine {
  text: string;
  box: readonly (readonly [number, number] | Point)[];
  score?: number;
}

export interface PageReading {
  /** Per true line (the page's order), the text read on it: '' when nothing was. */
  lines: string[];
  /** Boxes that lie on no true line (spurious detections). */
  unmatched: ReadLine[];
}

/** Whitespace runs as one space, trimmed: readers differ in how they space joined boxes. */
export function normalizeText(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Edit distance (insertions, deletions, substitutions) between two strings, by code point. */
export function levenshtein(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[y.length];
}

/** Character error rate of one reading: edits / truth length (text normalized). */
export function characterErrorRate(read: string, truth: string): number {
  const t = normalizeText(truth);
  return levenshtein(normalizeText(read), t) / Math.max(1, [...t].length);
}

const span = (values: number[]) => [Math.min(...values), Math.max(...values)] as const;
const overlap = (a: readonly [number, number], b: readonly [number, number]) => Math.max(0, Math.min(a[1], b[1]) - Math.max(a[0], b[0]));

/**
 * Assigns each box read to the true line it overlaps most in height (at least half of the smaller
 * of the two heights, and overlapping it in width), then joins each line's boxes left to right.
 */
export function readPage(truth: readonly OcrPageLine[], read: readonly ReadLine[]): PageReading {
  const assigned: { x: number; text: string }[][] = truth.map(() => []);
  const unmatched: ReadLine[] = [];
  for (const line of read) {
    const ys = span(line.box.map((p) => p[1]));
    const xs = span(line.box.map((p) => p[0]));
    let best = -1;
    let bestOverlap = 0;
    truth.forEach((t, i) => {
      const ty = span(t.box.map((p) => p[1]));
      const tx = span(t.box.map((p) => p[0]));
      const vertical = overlap(ys, ty) / Math.max(1, Math.min(ys[1] - ys[0], ty[1] - ty[0]));
      if (vertical >= 0.5 && overlap(xs, tx) > 0 && vertical > bestOverlap) {
        best = i;
        bestOverlap = vertical;
      }
    });
    if (best < 0) unmatched.push(line);
    else assigned[best].push({ x: xs[0], text: line.text });
  }
  return {
    lines: assigned.map((boxes) => normalizeText(boxes.sort((a, b) => a.x - b.x).map((b) => b.text).join(' '))),
    unmatched,
  };
}

/** Edits and truth characters summed over lines: their ratio is the CER of the whole set. */
export interface ErrorCount {
  edits: number;
  characters: number;
  lines: number;
}

export function countErrors(pairs: readonly { read: string; truth: string }[]): ErrorCount {
  let edits = 0;
  let characters = 0;
  for (const { read, truth } of pairs) {
    const t = normalizeText(truth);
    edits += levenshtein(normalizeText(read), t);
    characters += [...t].length;
  }
  return { edits, characters, lines: pairs.length };
}

/**
 * For a reader whose boxes cannot be trusted to lie on the ink (@gutenye/ocr-node's come out some
 * 10 px below it): each line read is assigned to the true line its text is nearest to (lowest
 * CER), each true line takes the lines assigned to it in the order they were read.
 */
export function readPageByText(truth: readonly OcrPageLine[], read: readonly ReadLine[]): PageReading {
  const assigned: string[][] = truth.map(() => []);
  const unmatched: ReadLine[] = [];
  for (const line of read) {
    let best = -1;
    let bestRate = 1;
    truth.forEach((t, i) => {
      const r = characterErrorRate(line.text, t.text);
      if (r < bestRate) {
        best = i;
        bestRate = r;
      }
    });
    if (best < 0) unmatched.push(line);
    else assigned[best].push(line.text);
  }
  return { lines: assigned.map((texts) => normalizeText(texts.join(' '))), unmatched };
}

export const rate = (count: ErrorCount) => count.edits / Math.max(1, count.characters);
