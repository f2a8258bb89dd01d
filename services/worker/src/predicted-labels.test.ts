/** The predicted class of each input: which output is the classifier, and the label of its highest score per row. */
import { describe, expect, it } from 'vitest';
import { classifierOutput, MAX_CLASS_LABEL_BYTES, MAX_CLASS_LABELS, predictedLabels } from './predicted-labels.js';
import { modelConfigSchema } from './model-config.js';

const config = (outputs: object[]) => modelConfigSchema.parse({ name: 'm', max_batch_size: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }], outputs });

describe('classifierOutput', () => {
  it('is the first output whose config has labels', () => {
    const { classifier } = classifierOutput(config([
      { name: 'label', datatype: 'INT64', shape: [] },
      { name: 'probabilities', datatype: 'FP32', shape: [3], labels: ['a', 'b', 'c'] },
      { name: 'other', datatype: 'FP32', shape: [2], labels: ['x', 'y'] },
    ]));
    expect(classifier).toEqual({ name: 'probabilities', labels: ['a', 'b', 'c'] });
  });

  it('is none for a model without labels', () => {
    expect(classifierOutput(config([{ name: 'y', datatype: 'FP32', shape: [2] }]))).toEqual({});
  });

  it('says why labels cannot serve: not scores, class count, too many or too long', () => {
    expect(classifierOutput(config([{ name: 'y', datatype: 'BYTES', shape: [1], labels: ['a'] }])).problem).toMatch(/output 'y' has labels but is BYTES/);
    expect(classifierOutput(config([{ name: 'y', datatype: 'FP32', shape: [3], labels: ['a', 'b'] }])).problem).toMatch(/output 'y' has 3 classes and 2 labels/);
    const many = Array.from({ length: MAX_CLASS_LABELS + 1 }, (_, i) => `c${i}`);
    expect(classifierOutput(config([{ name: 'y', datatype: 'FP32', shape: [-1], labels: many }])).problem).toMatch(/4097 labels, more than the 4096/);
    expect(classifierOutput(config([{ name: 'y', datatype: 'FP32', shape: [1], labels: ['x'.repeat(MAX_CLASS_LABEL_BYTES + 1)] }])).problem).toMatch(/label 0 is longer than 128 bytes/);
  });
});

describe('classifierOutput of scores with more than one class axis per input', () => {
  it('refuses scores per token or per pixel ([T, C], [H, W, C]): one label per input could not be read from them', () => {
    expect(classifierOutput(config([{ name: 'tags', datatype: 'FP32', shape: [-1, 3], labels: ['a', 'b', 'c'] }])).problem).toBe(
      "output 'tags' has shape [-1, 3]: a classifier output holds one score per class for each input ([3], or 1s before it)",
    );
    expect(classifierOutput(config([{ name: 'mask', datatype: 'FP32', shape: [8, 8, 2], labels: ['bg', 'fg'] }])).problem).toMatch(/^output 'mask' has shape \[8, 8, 2\]/);
  });

  it('takes scores with 1s before the class axis ([1, C])', () => {
    expect(classifierOutput(config([{ name: 'p', datatype: 'FP32', shape: [1, 3], labels: ['a', 'b', 'c'] }]))).toEqual({ classifier: { name: 'p', labels: ['a', 'b', 'c'] } });
  });
});

describe('predictedLabels', () => {
  const classifier = { name: 'p', labels: ['cat', 'dog', 'bird'] };

  it('names the highest score of each row', () => {
    const scores = { name: 'p', datatype: 'FP32' as const, shape: [3, 3], data: Float32Array.from([0.1, 0.7, 0.2, 0.8, 0.1, 0.1, 0, 0.4, 0.6]) };
    expect(predictedLabels(classifier, scores, true)).toEqual(['dog', 'cat', 'bird']);
  });

  it('takes the first class on a tie', () => {
    expect(predictedLabels(classifier, { name: 'p', datatype: 'FP32', shape: [1, 3], data: Float32Array.from([0.2, 0.4, 0.4]) }, true)).toEqual(['dog']);
  });

  it('reads a model that does not batch as one row', () => {
    expect(predictedLabels(classifier, { name: 'p', datatype: 'FP32', shape: [3], data: Float32Array.from([0, 0, 1]) }, false)).toEqual(['bird']);
  });
});
