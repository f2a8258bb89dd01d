import { describe, expect, it } from 'vitest';
import { percentile, summarize } from '../bench/percentiles.js';
import { classificationFigures } from './metrics.js';

const classes = ['setosa', 'versicolor', 'virginica'];

describe('classificationFigures', () => {
  it('puts each (true, predicted) pair in its cell: rows are true classes, columns predicted ones', () => {
    const figures = classificationFigures(classes, [
      { actual: 0, predicted: 0 },
      { actual: 1, predicted: 2 },
      { actual: 1, predicted: 2 },
      { actual: 2, predicted: 1 },
      { actual: 2, predicted: 2 },
    ]);
    expect(figures.confusion.counts).toEqual([
      [1, 0, 0],
      [0, 0, 2],
      [0, 1, 1],
    ]);
  });

  it('gives accuracy as correct over all items', () => {
    const figures = classificationFigures(classes, [
      { actual: 0, predicted: 0 },
      { actual: 1, predicted: 1 },
      { actual: 2, predicted: 1 },
    ]);
    expect(figures).toMatchObject({ items: 3, correct: 2, accuracy: 2 / 3 });
  });

  it('counts an unanswered item (predicted -1) as wrong without a cell', () => {
    const figures = classificationFigures(classes, [
      { actual: 0, predicted: -1 },
      { actual: 0, predicted: 0 },
    ]);
    expect(figures).toMatchObject({ items: 2, correct: 1, accuracy: 0.5 });
    expect(figures.confusion.counts.flat().reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('gives accuracy 0 for no items rather than NaN', () => {
    expect(classificationFigures(classes, []).accuracy).toBe(0);
  });

  it('refuses a true class outside the classes', () => {
    expect(() => classificationFigures(classes, [{ actual: 3, predicted: 0 }])).toThrow(/true class index 3 is not one of the 3 classes/);
  });
});

describe('latency percentiles (nearest rank)', () => {
  it('p50 and p99 of 1..100 ms are 50 and 99', () => {
    const latencies = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(summarize(latencies)).toMatchObject({ p50: 50, p99: 99 });
  });

  it('p99 of fewer than 100 samples is the largest', () => {
    expect(percentile([1, 2, 3, 40], 99)).toBe(40);
  });
});
