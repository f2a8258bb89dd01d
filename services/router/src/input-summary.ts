import type { InputSummary } from '@infermesh/contracts';
import { decodeRaw, isDatatype } from '@infermesh/tensor';

/** Feature columns beyond this are not summarised (images, embeddings). */
const MAX_FEATURES = 256;

/**
 * What the monitor needs for drift, without the tensor itself: name, type, shape and,
 * for numeric [N, F] inputs with few features, each feature's mean over the rows.
 */
export function summarizeInputs(inputs: { name: string; datatype: string; shape: (string | number)[] }[], raw: readonly Uint8Array[]): InputSummary[] {
  return inputs.map((input, i) => {
    const shape = input.shape.map(Number);
    const summary: InputSummary = { name: input.name, datatype: input.datatype, shape: shape.map(String), featureMeans: [] };
    if ((input.datatype === 'FP32' || input.datatype === 'FP64') && shape.length === 2 && shape[1] <= MAX_FEATURES && raw[i] && isDatatype(input.datatype)) {
      const [rows, features] = shape;
      const data = decodeRaw(input.name, input.datatype, shape, raw[i]) as Float32Array | Float64Array;
      const means = new Array<number>(features).fill(0);
      for (let r = 0; r < rows; r++) for (let f = 0; f < features; f++) means[f] += data[r * features + f];
      summary.featureMeans = rows > 0 ? means.map((m) => m / rows) : means;
    }
    return summary;
  });
}
