/** Checks on an InferRequest before either protocol encodes it. */
import { invalidArgument, quote } from './errors.js';
import { checkTensor } from './tensor.js';
import type { InferRequest, Parameters } from './types.js';

export function checkModelName(model: unknown): asserts model is string {
  if (typeof model !== 'string' || model === '') throw invalidArgument('a model name is required');
}

export function checkParameters(parameters: Parameters | undefined, where: string): void {
  for (const [key, value] of Object.entries(parameters ?? {})) {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw invalidArgument(`${where} ${quote(key)} is ${value}: the protocol's parameters hold whole numbers, booleans and strings only`);
    }
    if (typeof value !== 'number' && typeof value !== 'string' && typeof value !== 'boolean') {
      throw invalidArgument(`${where} ${quote(key)} must be a string, a whole number or a boolean`);
    }
  }
}

export function checkRequest(request: InferRequest): void {
  if (request === null || typeof request !== 'object') throw invalidArgument('the request must be an object');
  checkModelName(request.model);
  if (!Array.isArray(request.inputs)) throw invalidArgument(`the request for model ${quote(request.model)} has no inputs array`);
  const names = new Set<string>();
  request.inputs.forEach((input, i) => {
    checkTensor(input, `inputs[${i}]`);
    if (names.has(input.name)) throw invalidArgument(`inputs[${i}]: input ${quote(input.name)} is given twice`);
    names.add(input.name);
  });
  for (const [i, output] of (request.outputs ?? []).entries()) {
    if (!output || typeof output.name !== 'string' || output.name === '') throw invalidArgument(`outputs[${i}] has no name`);
    if (output.classification !== undefined && !(Number.isSafeInteger(output.classification) && output.classification > 0)) {
      throw invalidArgument(`outputs[${i}] (${quote(output.name)}): classification must be a whole number > 0, not ${output.classification}`);
    }
  }
  checkParameters(request.parameters, 'parameter');
}
