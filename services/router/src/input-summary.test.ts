/** What the router tells the monitor about each request's inputs: name, type, shape, feature means. */
import { describe, expect, it } from 'vitest';
import { encodeBytesElements } from '@infermesh/tensor';
import { summarizeInputs } from './input-summary.js';

const bytesOf = (array: Float32Array | Float64Array) => new Uint8Array(array.buffer, array.byteOffset, array.byteLength);

describe('summarizeInputs', () => {
  it('gives the mean of each feature over the rows of an FP32 [N, F] input', () => {
    const data = new Float32Array([1, 10, 100, 3, 20, 300]);
    const [summary] = summarizeInputs([{ name: 'features', datatype: 'FP32', shape: ['2', '3'] }], [bytesOf(data)]);
    expect(summary).toEqual({ name: 'features', datatype: 'FP32', shape: ['2', '3'], featureMeans: [2, 15, 200] });
  });

  it('gives feature means for an FP64 [N, F] input too', () => {
    const data = new Float64Array([0.5, 1.5, 2.5, 3.5]);
    const [summary] = summarizeInputs([{ name: 'features', datatype: 'FP64', shape: [2, 2] }], [bytesOf(data)]);
    expect(summary.featureMeans).toEqual([1.5, 2.5]);
  });

  it('gives the shape as strings whatever form it came in', () => {
    const [summary] = summarizeInputs([{ name: 'features', datatype: 'FP32', shape: [1, 2] }], [bytesOf(new Float32Array([1, 2]))]);
    expect(summary.shape).toEqual(['1', '2']);
  });

  it('gives no feature means for an image tensor', () => {
    const [summary] = summarizeInputs([{ name: 'x', datatype: 'FP32', shape: ['1', '3', '2', '2'] }], [bytesOf(new Float32Array(12).fill(1))]);
    expect(summary).toEqual({ name: 'x', datatype: 'FP32', shape: ['1', '3', '2', '2'], featureMeans: [] });
  });

  it('gives no feature means for BYTES inputs', () => {
    const raw = encodeBytesElements([Buffer.from('{"a":1}'), Buffer.from('{"a":2}')]);
    const [summary] = summarizeInputs([{ name: 'rows', datatype: 'BYTES', shape: ['2'] }], [raw]);
    expect(summary).toEqual({ name: 'rows', datatype: 'BYTES', shape: ['2'], featureMeans: [] });
  });

  it('gives no feature means for integer inputs', () => {
    const raw = new Uint8Array(new Int32Array([1, 2, 3, 4]).buffer);
    const [summary] = summarizeInputs([{ name: 'ids', datatype: 'INT32', shape: ['2', '2'] }], [raw]);
    expect(summary.featureMeans).toEqual([]);
  });

  it('gives no feature means for more than 256 features', () => {
    const [summary] = summarizeInputs([{ name: 'embedding', datatype: 'FP32', shape: ['1', '257'] }], [bytesOf(new Float32Array(257))]);
    expect(summary.featureMeans).toEqual([]);
  });

  it('gives no feature means when the input came without raw contents', () => {
    const [summary] = summarizeInputs([{ name: 'features', datatype: 'FP32', shape: ['1', '2'] }], []);
    expect(summary.featureMeans).toEqual([]);
  });

  it('summarises each input in order, pairing it with its raw contents', () => {
    const summaries = summarizeInputs(
      [{ name: 'rows', datatype: 'BYTES', shape: ['1'] }, { name: 'features', datatype: 'FP32', shape: ['1', '2'] }],
      [encodeBytesElements([Buffer.from('{}')]), bytesOf(new Float32Array([4, 5]))],
    );
    expect(summaries.map((s) => [s.name, s.featureMeans])).toEqual([['rows', []], ['features', [4, 5]]]);
  });
});
