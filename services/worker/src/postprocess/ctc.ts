/**
 * Greedy CTC decoding of a text-line recognizer's class probabilities, as PaddleOCR's
 * CTCLabelDecode: per time step the most probable class; a class equal to the previous step's
 * is merged into it; the blank (class 0) is dropped; class i + 1 is the dictionary's character i.
 * The score is the mean probability of the characters kept (0 when none is), as PaddleOCR's.
 *
 * A line padded to its batch's width has more time steps than its own pixels need; the padded
 * columns decode to blanks (they normalize to ~0), which are dropped like any other blank.
 */
import { readFile } from 'node:fs/promises';
import type { CtcOptions } from './schema.js';

/** A dictionary at most this large is read: ppocr_keys_v1.txt is 26 kB, the largest PaddleOCR ships under 100 kB. */
export const MAX_DICTIONARY_BYTES = 4 * 1024 * 1024;

export interface DecodedLine {
  text: string;
  score: number;
}

/**
 * Decodes one line: `probs` holds `steps` rows of `classes` probabilities (class 0 the blank),
 * `characters[c - 1]` is class c's text.
 */
export function ctcDecode(probs: Float32Array, steps: number, classes: number, characters: readonly string[]): DecodedLine {
  let text = '';
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let t = 0; t < steps; t++) {
    const row = t * classes;
    let best = 0;
    let bestScore = probs[row];
    for (let c = 1; c < classes; c++) {
      if (probs[row + c] > bestScore) {
        bestScore = probs[row + c];
        best = c;
      }
    }
    if (best !== 0 && best !== previous) {
      text += characters[best - 1] ?? '';
      sum += bestScore;
      kept++;
    }
    previous = best;
  }
  return { text, score: kept === 0 ? 0 : sum / kept };
}

/**
 * The characters of a dictionary file, one per line (a trailing newline or CR LF is not a
 * character), with ' ' appended when `space_char`. An empty line is a character too: PaddleOCR
 * counts it, and skipping it would shift every class after it.
 */
export async function readDictionary(path: string, options: Pick<CtcOptions, 'space_char'>): Promise<string[]> {
  const bytes = await readFile(path);
  if (bytes.length > MAX_DICTIONARY_BYTES) throw new Error(`dictionary ${path} is ${bytes.length} bytes; at most ${MAX_DICTIONARY_BYTES}`);
  const text = bytes.toString('utf8');
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  if (lines.length > 0 && lines[lines.length - 1] === '' && text.endsWith('\n')) lines.pop();
  if (lines.length === 0) throw new Error(`dictionary ${path} holds no characters`);
  return options.space_char ? [...lines, ' '] : lines;
}
