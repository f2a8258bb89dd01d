import { describe, expect, it } from 'vitest';
import { OUTPUT_SAMPLE_VALUES } from '@infermesh/contracts';
import { outputSample } from './output-sample.js';

describe('outputSample', () => {
  it('gives the values row-major, rounded to FP32', () => {
    expect(outputSample({ name: 'y', datatype: 'FP64', shape: [2, 2], data: Float64Array.from([0.1, 2, 3, 4]) })).toEqual([Math.fround(0.1), 2, 3, 4]);
  });

  it('reads 64-bit integers as numbers', () => {
    expect(outputSample({ name: 'y', datatype: 'INT64', shape: [2], data: BigInt64Array.from([-3n, 7n]) })).toEqual([-3, 7]);
  });

  it('keeps at most OUTPUT_SAMPLE_VALUES values', () => {
    const data = new Float32Array(OUTPUT_SAMPLE_VALUES * 3).map((_, i) => i);
    expect(outputSample({ name: 'y', datatype: 'FP32', shape: [3, OUTPUT_SAMPLE_VALUES], data })).toEqual([...data.subarray(0, OUTPUT_SAMPLE_VALUES)]);
  });

  it('gives nothing for an output that is not numbers, or none', () => {
    expect(outputSample({ name: 'y', datatype: 'BYTES', shape: [1], data: [Buffer.from('a')] })).toEqual([]);
    expect(outputSample({ name: 'y', datatype: 'BOOL', shape: [1], data: Uint8Array.from([1]) })).toEqual([]);
    expect(outputSample(undefined)).toEqual([]);
  });
});
