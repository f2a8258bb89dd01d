/** Triton's classification extension: top-k "score:index:label" strings per row. */
import { describe, expect, it } from 'vitest';
import { TensorError, type Tensor } from '@infermesh/tensor';
import type { ModelInferRequest_InferRequestedOutputTensor__Output } from '@infermesh/contracts';
import { applyClassification } from './classification.js';
import { modelConfigSchema } from './model-config.js';

const config = (maxBatchSize: number, labels?: string[]) =>
  modelConfigSchema.parse({
    name: 'iris',
    max_batch_size: maxBatchSize,
    inputs: [{ name: 'features', datatype: 'FP32', shape: [4] }],
    outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [3], ...(labels ? { labels } : {}) }, { name: 'label', datatype: 'INT64', shape: [] }],
  });

const LABELS = ['setosa', 'versicolor', 'virginica'];

function classify(k: string, name = 'probabilities'): ModelInferRequest_InferRequestedOutputTensor__Output[] {
  return [{ name, parameters: { classification: { int64Param: k, parameterChoice: 'int64Param' } } }];
}

// Scores exactly representable in float32, so their strings are exact.
const probabilities = (rows: number[][]): Tensor => ({ name: 'probabilities', datatype: 'FP32', shape: [rows.length, rows[0].length], data: new Float32Array(rows.flat()) });

const strings = (tensor: Tensor) => (tensor.data as Buffer[]).map(String);

describe('applyClassification', () => {
  it('returns the top k classes of each row as "score:index:label", best first', () => {
    const [out] = applyClassification(config(8, LABELS), classify('2'), [probabilities([[0.25, 0.125, 0.625], [0.5, 0.375, 0.125]])]);
    expect(out.datatype).toBe('BYTES');
    expect(out.shape).toEqual([2, 2]);
    expect(strings(out)).toEqual(['0.625:2:virginica', '0.25:0:setosa', '0.5:0:setosa', '0.375:1:versicolor']);
  });

  it('returns every class when k is larger than the number of classes', () => {
    const [out] = applyClassification(config(8, LABELS), classify('10'), [probabilities([[0.25, 0.125, 0.625]])]);
    expect(out.shape).toEqual([1, 3]);
    expect(strings(out)).toEqual(['0.625:2:virginica', '0.25:0:setosa', '0.125:1:versicolor']);
  });

  it('writes "score:index" when the output has no labels', () => {
    const [out] = applyClassification(config(8), classify('1'), [probabilities([[0.25, 0.125, 0.625]])]);
    expect(strings(out)).toEqual(['0.625:2']);
  });

  it('gives shape [k] for a model that does not batch', () => {
    const scores: Tensor = { name: 'probabilities', datatype: 'FP32', shape: [3], data: new Float32Array([0.25, 0.125, 0.625]) };
    const [out] = applyClassification(config(0, LABELS), classify('2'), [scores]);
    expect(out.shape).toEqual([2]);
    expect(strings(out)).toEqual(['0.625:2:virginica', '0.25:0:setosa']);
  });

  it('leaves outputs requested without the classification parameter unchanged', () => {
    const scores = probabilities([[0.25, 0.125, 0.625]]);
    const [out] = applyClassification(config(8, LABELS), [{ name: 'probabilities', parameters: {} }], [scores]);
    expect(out).toBe(scores);
  });

  it.each(['0', '-1'])('refuses k = %s', (k) => {
    expect(() => applyClassification(config(8, LABELS), classify(k), [probabilities([[0.25, 0.125, 0.625]])])).toThrow(TensorError);
  });

  it('refuses classification of an INT64 output', () => {
    const label: Tensor = { name: 'label', datatype: 'INT64', shape: [1], data: new BigInt64Array([2n]) };
    expect(() => applyClassification(config(8, LABELS), classify('1', 'label'), [label])).toThrow(/numeric score output/);
  });
});
