/**
 * The predicted class of each input, for models with a classifier output: what the monitor
 * compares clients' feedback with (PredictionRecord.predicted_labels), and the labels the
 * heartbeat announces (ModelStatus.class_labels).
 */
import type { NumericArray, Tensor } from '@infermesh/tensor';
import type { ModelConfig } from './model-config.js';

/** Bounds of what a heartbeat and every prediction record carry. */
export const MAX_CLASS_LABELS = 4096;
export const MAX_CLASS_LABEL_BYTES = 128;

/** The output whose scores name the predicted class, and its labels in class order. */
export interface ClassifierOutput {
  name: string;
  labels: readonly string[];
}

/**
 * The model's classifier output: the first output whose config has `labels`. `problem` says
 * why a labelled output cannot serve (no scores, labels over the bounds, scores on more than
 * one axis per input, a class count that differs from the labels): the model is then served
 * without predicted labels.
 */
export function classifierOutput(config: ModelConfig): { classifier?: ClassifierOutput; problem?: string } {
  const output = config.outputs.find((o) => o.labels?.length);
  if (!output?.labels) return {};
  const { name, labels } = output;
  if (output.datatype === 'BYTES' || output.datatype === 'BOOL') return { problem: `output '${name}' has labels but is ${output.datatype}, not class scores` };
  if (labels.length > MAX_CLASS_LABELS) return { problem: `output '${name}' has ${labels.length} labels, more than the ${MAX_CLASS_LABELS} announced` };
  const long = labels.findIndex((l) => Buffer.byteLength(l) > MAX_CLASS_LABEL_BYTES);
  if (long >= 0) return { problem: `output '${name}' label ${long} is longer than ${MAX_CLASS_LABEL_BYTES} bytes` };
  const classes = output.shape.at(-1);
  // Scores per token or per pixel: the argmax over all of an input's scores would name no class.
  if (output.shape.slice(0, -1).some((d) => d !== 1)) {
    return { problem: `output '${name}' has shape [${output.shape.join(', ')}]: a classifier output holds one score per class for each input ([${classes}], or 1s before it)` };
  }
  if (classes !== undefined && classes > 0 && classes !== labels.length) return { problem: `output '${name}' has ${classes} classes and ${labels.length} labels` };
  return { classifier: { name, labels } };
}

/** The label of the highest score in each row of the classifier's output (the first, on a tie). */
export function predictedLabels(classifier: ClassifierOutput, output: Tensor, batched: boolean): string[] {
  const scores = output.data as NumericArray;
  const rows = batched ? output.shape[0] : 1;
  if (!(rows > 0) || scores.length === 0) return [];
  const classes = scores.length / rows;
  const labels = new Array<string>(rows);
  for (let r = 0, start = 0; r < rows; r++, start += classes) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[start + c] > scores[start + best]) best = c;
    labels[r] = classifier.labels[best] ?? String(best);
  }
  return labels;
}
