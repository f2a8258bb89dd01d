/** Greedy CTC decoding as PaddleOCR's CTCLabelDecode, and reading its dictionary file. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ctcDecode, readDictionary } from './ctc.js';

const CHARACTERS = ['a', 'b', 'l', ' '];

/** Probabilities of T steps over blank + CHARACTERS, the best class of each step with probability `p`. */
function steps(best: readonly number[], p = 0.9): Float32Array {
  const classes = CHARACTERS.length + 1;
  const out = new Float32Array(best.length * classes).fill((1 - p) / (classes - 1));
  best.forEach((c, t) => { out[t * classes + c] = p; });
  return out;
}

const decode = (best: readonly number[], probs = steps(best)) => ctcDecode(probs, best.length, CHARACTERS.length + 1, CHARACTERS);

describe('ctcDecode', () => {
  it('merges repeated classes and drops blanks', () => {
    expect(decode([0, 1, 1, 0, 2, 2, 2, 0]).text).toBe('ab');
  });

  it('keeps a repeated character that a blank separates', () => {
    expect(decode([3, 3, 0, 3, 1]).text).toBe('lla');
  });

  it('reads the last class as a space', () => {
    expect(decode([1, 4, 2]).text).toBe('a b');
  });

  it('scores the mean of the kept characters\' probabilities, not the blanks\' or repeats\'', () => {
    const probs = steps([1, 1, 0, 2]);
    const classes = CHARACTERS.length + 1;
    probs[0 * classes + 1] = 0.6; // first step of 'a': kept
    probs[1 * classes + 1] = 0.99; // its repeat: merged, not counted
    probs[3 * classes + 2] = 0.8;
    expect(decode([1, 1, 0, 2], probs).score).toBeCloseTo(0.7, 6);
  });

  it('answers no text and score 0 for all blanks', () => {
    expect(decode([0, 0, 0])).toEqual({ text: '', score: 0 });
  });
});

describe('readDictionary', () => {
  const dirs: string[] = [];
  afterAll(async () => { for (const dir of dirs) await rm(dir, { recursive: true, force: true }); });

  async function file(text: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'ctc-'));
    dirs.push(dir);
    await writeFile(join(dir, 'keys.txt'), text);
    return join(dir, 'keys.txt');
  }

  it('reads one character a line, CR LF or LF, a trailing newline ending the last, and appends the space', async () => {
    expect(await readDictionary(await file('a\r\nb\nc\n'), { space_char: true })).toEqual(['a', 'b', 'c', ' ']);
    expect(await readDictionary(await file('a\nb'), { space_char: false })).toEqual(['a', 'b']);
  });
});
