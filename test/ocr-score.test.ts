/** The OCR scoring rule: edit distance, CER, and which true line a box read belongs to. */
import { describe, expect, it } from 'vitest';
import type { OcrPageLine } from '@infermesh/models';
import { characterErrorRate, countErrors, levenshtein, rate, readPage, readPageByText } from './helpers/ocr-score.js';

const line = (text: string, x0: number, y0: number, x1: number, y1: number): OcrPageLine =>
  ({ text, box: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], rotated180: false, font: 'DejaVu Sans', size: 20 });

describe('OCR scoring', () => {
  it('counts insertions, deletions and substitutions', () => {
    expect(levenshtein('', '')).toBe(0);
    expect(levenshtein('kitten', 'sitting')).toBe(3);
    expect(levenshtein('abc', '')).toBe(3);
    expect(characterErrorRate('Hel1o  world ', 'Hello world')).toBeCloseTo(1 / 11);
    expect(rate(countErrors([{ read: 'ab', truth: 'ab' }, { read: '', truth: 'cd' }]))).toBe(0.5);
  });

  it('joins the boxes read on one true line left to right and keeps stray boxes apart', () => {
    const truth = [line('alpha beta', 10, 10, 200, 30), line('gamma', 10, 60, 120, 80)];
    const reading = readPage(truth, [
      { text: 'beta', box: [[110, 12], [200, 12], [200, 31], [110, 31]] },
      { text: 'alpha', box: [[10, 9], [100, 9], [100, 30], [10, 30]] },
      { text: 'noise', box: [[400, 200], [450, 200], [450, 220], [400, 220]] },
    ]);
    expect(reading.lines).toEqual(['alpha beta', '']);
    expect(reading.unmatched.map((l) => l.text)).toEqual(['noise']);
  });

  it('assigns by text where a reader\'s boxes are off the ink', () => {
    const truth = [line('alpha beta', 10, 10, 200, 30), line('gamma 42', 10, 60, 120, 80)];
    const far = [[0, 500], [1, 500], [1, 501], [0, 501]] as const;
    expect(readPageByText(truth, [{ text: 'gamma 4Z', box: far }, { text: 'alpha beta', box: far }]).lines).toEqual(['alpha beta', 'gamma 4Z']);
  });
});
