/**
 * The output sample a router asks for to compare a shadow version's answer with the serving
 * version's (BatchedResponse.output_sample): for a model without a classifier output (a
 * classifier is compared by its predicted labels), the first values of the answer's first
 * output, row-major, as FP32. Taken here, where the tensor is already decoded: the router
 * never decodes tensors.
 */
import { OUTPUT_SAMPLE_VALUES } from '@infermesh/contracts';
import type { Tensor } from '@infermesh/tensor';

/**
 * Up to OUTPUT_SAMPLE_VALUES values of `output`, rounded to FP32; empty for an output that is
 * not numbers (BYTES, BOOL, and FP16, whose elements are held as raw bits) or absent.
 */
export function outputSample(output: Tensor | undefined): number[] {
  if (!output || output.datatype === 'BYTES' || output.datatype === 'BOOL' || output.datatype === 'FP16' || Array.isArray(output.data)) return [];
  const data = output.data;
  const count = Math.min(OUTPUT_SAMPLE_VALUES, data.length);
  const sample = new Array<number>(count);
  for (let i = 0; i < count; i++) sample[i] = Math.fround(Number(data[i]));
  return sample;
}
