import { describe, expect, it } from 'vitest';
import { TensorError, elementCount, formatShape, parseShape, shapeMatches } from './index.js';

describe('parseShape', () => {
  it('converts int64 strings, as the loader decodes them, to numbers', () => {
    expect(parseShape('x', ['1', '3', '224', '224'])).toEqual([1, 3, 224, 224]);
  });

  it('accepts numbers and zero dimensions', () => {
    expect(parseShape('x', [2, 0, '5'])).toEqual([2, 0, 5]);
  });

  it('accepts an empty shape (a scalar)', () => {
    expect(parseShape('x', [])).toEqual([]);
  });

  it('refuses a negative dimension, naming the tensor, the shape and the dimension', () => {
    expect(() => parseShape('image', ['1', '-1', '3'])).toThrow(TensorError);
    expect(() => parseShape('image', ['1', '-1', '3'])).toThrow("input 'image': shape [1, -1, 3] has an invalid dimension '-1'");
  });

  it('refuses a dimension that is not an integer', () => {
    expect(() => parseShape('x', ['2.5'])).toThrow("input 'x': shape [2.5] has an invalid dimension '2.5'");
    expect(() => parseShape('x', ['abc'])).toThrow("input 'x': shape [abc] has an invalid dimension 'abc'");
  });

  it('refuses a dimension beyond 2^53 - 1, which a number cannot hold exactly', () => {
    expect(() => parseShape('x', ['9007199254740993'])).toThrow(TensorError);
  });
});

describe('elementCount', () => {
  it('multiplies the dimensions, 1 for a scalar, 0 with a zero dimension', () => {
    expect(elementCount([2, 3, 4])).toBe(24);
    expect(elementCount([])).toBe(1);
    expect(elementCount([5, 0, 3])).toBe(0);
  });
});

describe('shapeMatches', () => {
  it('matches equal shapes and -1 as any size', () => {
    expect(shapeMatches([8, 3, 224, 224], [-1, 3, 224, 224])).toBe(true);
    expect(shapeMatches([1, 4], [1, 4])).toBe(true);
  });

  it('does not match another size or another rank', () => {
    expect(shapeMatches([8, 4], [-1, 3])).toBe(false);
    expect(shapeMatches([8, 3, 1], [-1, 3])).toBe(false);
    expect(shapeMatches([3], [-1, 3])).toBe(false);
  });
});

describe('formatShape', () => {
  it('writes a shape as [a, b, c]', () => {
    expect(formatShape([1, -1, 3])).toBe('[1, -1, 3]');
    expect(formatShape([])).toBe('[]');
  });

  it('summarizes a shape of more than 8 dimensions (clients choose shapes)', () => {
    expect(formatShape(Array.from({ length: 100_000 }, () => 1))).toBe('[1, 1, 1, 1, 1, 1, 1, 1, … 100000 dimensions]');
  });

  it('is what parseShape\'s refusal quotes', () => {
    expect(() => parseShape('x', [...Array.from({ length: 20 }, () => '1'), '-5'])).toThrow("input 'x': shape [1, 1, 1, 1, 1, 1, 1, 1, … 21 dimensions] has an invalid dimension '-5'");
  });
});
