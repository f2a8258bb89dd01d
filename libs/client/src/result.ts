/** The InferResult both protocols answer with. */
import { InferenceError, quote } from './errors.js';
import type { InferResult, Parameters, Tensor } from './types.js';

export function inferResult(fields: { model: string; version: string; id: string; outputs: Tensor[]; parameters: Parameters }): InferResult {
  return {
    ...fields,
    output(name: string): Tensor {
      const found = fields.outputs.find((o) => o.name === name);
      if (found) return found;
      const names = fields.outputs.map((o) => quote(o.name)).join(', ') || 'none';
      throw new InferenceError('NOT_FOUND', `the answer of model ${quote(fields.model)} has no output ${quote(name)} (outputs: ${names})`);
    },
  };
}
