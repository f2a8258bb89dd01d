/**
 * The tensors a pipeline step sends and reads: ModelInferRequests built here (raw contents,
 * as clients send them) and ModelInferResponses decoded here. The router decodes tensors only
 * for pipelines; a plain request is still forwarded as its bytes.
 */
import { messageCodec, type InferParameter, type ModelInferRequest, type ModelInferRequest__Output, type ModelInferResponse, type ModelInferResponse__Output } from '@infermesh/contracts';
import { decodeInputs, encodeRaw, encodeBytesElements, TensorError, type NumericArray, type Tensor } from '@infermesh/tensor';

export const requestCodec = messageCodec<ModelInferRequest, ModelInferRequest__Output>('inference.ModelInferRequest');
export const responseCodec = messageCodec<ModelInferResponse, ModelInferResponse__Output>('inference.ModelInferResponse');

/** An output a request asks for, with its parameters (Triton's `classification`). */
export interface RequestedOutput {
  name: string;
  parameters?: Record<string, InferParameter>;
}

/** A request for `model` with these tensors, as raw contents (BYTES elements length-prefixed); `outputs` narrows the answer. */
export function inferRequest(model: string, id: string, tensors: readonly Tensor[], outputs: readonly RequestedOutput[] = []): Buffer {
  return Buffer.from(requestCodec.encode({
    modelName: model,
    id,
    inputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) })),
    outputs: outputs.map((o) => ({ name: o.name, parameters: o.parameters ?? {} })),
    rawInputContents: tensors.map(raw),
  }));
}

/** A response with these outputs, as raw contents. */
export function inferResponse(model: string, version: string, id: string, tensors: readonly Tensor[]): Buffer {
  return Buffer.from(responseCodec.encode({
    modelName: model,
    modelVersion: version,
    id,
    outputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) })),
    rawOutputContents: tensors.map(raw),
  }));
}

function raw(tensor: Tensor): Buffer {
  return tensor.datatype === 'BYTES' ? encodeBytesElements(tensor.data as Buffer[]) : encodeRaw(tensor.data as NumericArray);
}

/** A client's request decoded: its id, its inputs (checked as a worker checks them), the outputs it asks for (with their parameters). */
export function decodeRequest(bytes: Buffer): { id: string; inputs: Tensor[]; requested: string[]; outputs: RequestedOutput[] } {
  const request = requestCodec.decode(bytes);
  return {
    id: request.id,
    inputs: decodeInputs(request.inputs, request.rawInputContents),
    requested: request.outputs.map((o) => o.name),
    outputs: request.outputs.map((o) => ({ name: o.name, parameters: o.parameters })),
  };
}

/** A step's answer decoded, by output name. */
export function decodeOutputs(bytes: Buffer): Map<string, Tensor> {
  const response = responseCodec.decode(bytes);
  return new Map(decodeInputs(response.outputs, response.rawOutputContents).map((t) => [t.name, t]));
}

/** The output `name` of a step's answer, of the datatype the pipeline reads; a TensorError names what is missing. */
export function output(outputs: Map<string, Tensor>, name: string, datatype: Tensor['datatype']): Tensor {
  const tensor = outputs.get(name);
  if (!tensor) throw new TensorError(`the answer has no output '${name}' (outputs: ${[...outputs.keys()].join(', ') || 'none'})`);
  if (tensor.datatype !== datatype) throw new TensorError(`output '${name}' is ${tensor.datatype}, ${datatype} expected`);
  return tensor;
}
