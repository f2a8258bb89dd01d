import { describe, expect, it } from 'vitest';
import { packWithin } from './pack.js';

describe('packWithin', () => {
  it('keeps items that fit together in one group', () => {
    expect(packWithin([1, 2, 3], 10, (n) => [n])).toEqual([[1, 2, 3]]);
  });

  it('starts a new group where the next item would pass the budget, keeping the order', () => {
    expect(packWithin([4, 4, 4, 1, 6], 10, (n) => [n])).toEqual([[4, 4], [4, 1], [6]]);
  });

  it('fills a group up to the budget exactly', () => {
    expect(packWithin([5, 5, 5], 10, (n) => [n])).toEqual([[5, 5], [5]]);
  });

  it('keeps every measure within the budget', () => {
    // Few bytes out, many back: the second measure splits them.
    const items = [{ out: 1, back: 6 }, { out: 1, back: 6 }, { out: 1, back: 3 }];
    expect(packWithin(items, 10, (i) => [i.out, i.back])).toEqual([[items[0]], [items[1], items[2]]]);
  });

  it('gives an item over the budget a group of its own', () => {
    expect(packWithin([2, 20, 2], 10, (n) => [n])).toEqual([[2], [20], [2]]);
  });

  it('returns no groups for no items', () => {
    expect(packWithin([], 10, (n: number) => [n])).toEqual([]);
  });
});
