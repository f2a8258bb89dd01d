/**
 * Triton's classification extension: an output requested with the parameter
 * `classification: k` comes back as BYTES "score:index:label" for the top k classes of
 * each row, with labels from the model config.
 */
import { TensorError, type NumericArray, type Tensor } from '@infermesh/tensor';
import type { ModelInferRequest_InferRequestedOutputTensor__Output } from '@infermesh/contracts';
import type { ModelConfig } from './model-config.js';

export function applyClassification(config: ModelConfig, requested: readonly Pick<ModelInferRequest_InferRequestedOutputTensor__Output, 'name' | 'parameters'>[], outputs: Tensor[]): Tensor[] {
  return outputs.map((output) => {
    const parameter = requested.find((r) => r.name === output.name)?.parameters?.classification;
    if (!parameter) return output;
    const k = Number(parameter.int64Param ?? 0);
    if (!Number.isInteger(k) || k < 1) throw new TensorError(`output '${output.name}': classification must be an int64 parameter >= 1`);
    if (output.datatype === 'BYTES' || typeof (output.data as NumericArray)[0] === 'bigint') {
      throw new TensorError(`output '${output.name}' is ${output.datatype}; classification needs a numeric score output`);
    }
    const labels = config.outputs.find((o) => o.name === output.name)?.labels ?? [];
    const rows = config.max_batch_size > 0 ? output.shape[0] : 1;
    const classes = (output.data as NumericArray).length / rows;
    const take = Math.min(k, classes);
    const data: Buffer[] = [];
    for (let r = 0; r < rows; r++) {
      const scores = Array.from((output.data as Float32Array).subarray(r * classes, (r + 1) * classes));
      const order = scores.map((score, index) => ({ score, index })).sort((a, b) => b.score - a.score).slice(0, take);
      for (const { score, index } of order) data.push(Buffer.from(`${score}:${index}${labels[index] !== undefined ? `:${labels[index]}` : ''}`));
    }
    return { name: output.name, datatype: 'BYTES' as const, shape: config.max_batch_size > 0 ? [rows, take] : [take], data };
  });
}
