import { describe, expect, it } from 'vitest';
import { fp16, tensor } from './tensor.js';

describe('tensor builders', () => {
  it('pick the datatype and keep the caller\'s typed array without a copy', () => {
    const data = new Float32Array([1, 2, 3, 4]);
    const t = tensor.fp32('x', [2, 2], data);
    expect(t).toEqual({ name: 'x', datatype: 'FP32', shape: [2, 2], data });
    expect(t.data).toBe(data);
    expect(tensor.int32('i', [2], [1, 2]).data).toEqual(new Int32Array([1, 2]));
    expect(tensor.uint64('u', [1], [5]).data).toEqual(new BigUint64Array([5n]));
  });

  it('refuse a shape that does not hold the data, or is not a shape', () => {
    expect(() => tensor.fp32('x', [2, 3], [1, 2, 3])).toThrow('tensor ("x"): shape [2, 3] holds 6 elements but the data has 3');
    expect(() => tensor.fp32('x', [-1], [])).toThrow(/not a whole number >= 0/);
    expect(() => tensor.fp32('x', [1.5], [1])).toThrow(/not a whole number >= 0/);
    expect(() => tensor.fp32('x', Array(65).fill(1), [1])).toThrow(/65 dimensions, more than 64/);
  });

  it('refuse 64-bit integers a number cannot hold exactly, and values outside the datatype', () => {
    expect(() => tensor.int64('n', [1], [2 ** 53])).toThrow(/pass a bigint/);
    expect(() => tensor.uint64('n', [1], [-1n])).toThrow(/outside UINT64/);
    expect(() => tensor.int64('n', [1], [2n ** 63n])).toThrow(/outside INT64/);
  });
});

describe('fp16', () => {
  it('converts numbers to the nearest half and back exactly', () => {
    const values = [0, -0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8, Infinity, -Infinity];
    expect(Array.from(fp16.toNumbers(fp16.fromNumbers(values)))).toEqual(values);
    expect(Array.from(fp16.fromNumbers([1, -2, 65504, 1e6, 1e-9]))).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0]);
    expect(Number.isNaN(fp16.toNumbers(fp16.fromNumbers([NaN]))[0])).toBe(true);
  });

  it('rounds half to even', () => {
    // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): even is 1.
    expect(fp16.fromNumbers([1 + 2 ** -11])[0]).toBe(0x3c00);
    // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9: even is the latter.
    expect(fp16.fromNumbers([1 + 3 * 2 ** -11])[0]).toBe(0x3c02);
    expect(fp16.fromNumbers([0.1])[0]).toBe(0x2e66);
  });
});
