import { isDatatype, DATATYPES } from './datatype.js';
import { decodeRaw, type Tensor } from './codec.js';
import { decodeContents, hasContents, type TypedContents } from './contents.js';
import { TensorError } from './errors.js';
import { parseShape } from './shape.js';

/** An input tensor as the loader decodes it from ModelInferRequest.inputs. */
export interface WireInput {
  name: string;
  datatype: string;
  shape: (string | number)[];
  contents?: TypedContents | null;
}

/**
 * Decodes the inputs of a ModelInferRequest (or PreprocessRequest), enforcing the
 * protocol's rules: one encoding per request, one raw entry per input, sizes that
 * match the shapes.
 */
export function decodeInputs(inputs: readonly WireInput[], rawContents: readonly Uint8Array[]): Tensor[] {
  const usesRaw = rawContents.length > 0;
  if (usesRaw && inputs.some((input) => hasContents(input.contents))) {
    throw new TensorError('request sets both raw_input_contents and typed contents; use one encoding per request');
  }
  if (usesRaw && rawContents.length !== inputs.length) {
    throw new TensorError(`request has ${inputs.length} inputs but ${rawContents.length} raw_input_contents entries`);
  }
  const seen = new Set<string>();
  return inputs.map((input, index) => {
    if (!input.name) throw new TensorError(`input ${index} has no name`);
    if (seen.has(input.name)) throw new TensorError(`input '${input.name}' appears twice`);
    seen.add(input.name);
    if (!isDatatype(input.datatype)) {
      // Quoted short: a client chose it, and it can be long.
      const shown = input.datatype.length > 16 ? `${input.datatype.slice(0, 16)}…` : input.datatype;
      throw new TensorError(`input '${input.name}': unknown datatype '${shown}' (one of ${DATATYPES.join(', ')})`);
    }
    const shape = parseShape(input.name, input.shape);
    const data = usesRaw
      ? decodeRaw(input.name, input.datatype, shape, rawContents[index])
      : decodeContents(input.name, input.datatype, shape, input.contents ?? {});
    return { name: input.name, datatype: input.datatype, shape, data };
  });
}
