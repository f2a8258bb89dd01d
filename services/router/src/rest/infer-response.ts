/**
 * The worker's ModelInferResponse bytes as the KServe v2 REST answer: JSON tensors, or, for
 * the outputs asked as binary (Triton's binary data extension), a JSON header followed by
 * their raw bytes.
 */
import { messageCodec, type InferParameter__Output, type ModelInferResponse__Output } from '@infermesh/contracts';
import { decodeContents, encodeRaw, hasContents, isDatatype, parseShape } from '@infermesh/tensor';
import { decodeToJson } from './tensor-json.js';

export interface RestAnswer {
  body: Buffer;
  headers: Record<string, string>;
}

let codec: ReturnType<typeof messageCodec<unknown, ModelInferResponse__Output>> | undefined;
const responseCodec = () => (codec ??= messageCodec<unknown, ModelInferResponse__Output>('inference.ModelInferResponse'));

/** An InferParameter as its JSON value (int64 as a number). */
export function parameterValue(parameter: InferParameter__Output): string | number | boolean {
  switch (parameter.parameterChoice) {
    case 'boolParam': return parameter.boolParam ?? false;
    case 'int64Param': return Number(parameter.int64Param ?? 0);
    default: return parameter.stringParam ?? '';
  }
}

export function parametersJson(parameters: Record<string, InferParameter__Output> | undefined): Record<string, string | number | boolean> | undefined {
  const entries = Object.entries(parameters ?? {});
  return entries.length ? Object.fromEntries(entries.map(([key, value]) => [key, parameterValue(value)])) : undefined;
}

/** The REST answer to `response` (ModelInferResponse bytes); `binaryOutput` says which outputs go back as binary. */
export function restInferAnswer(response: Uint8Array, binaryOutput: (name: string) => boolean): RestAnswer {
  const decoded = responseCodec().decode(response);
  const binaryParts: Buffer[] = [];
  const outputs = decoded.outputs.map((output, i) => {
    const datatype = isDatatype(output.datatype) ? output.datatype : undefined;
    const shape = parseShape(output.name, output.shape);
    const parameters = parametersJson(output.parameters) ?? {};
    let raw: Buffer | undefined = decoded.rawOutputContents[i];
    if (raw === undefined && datatype && hasContents(output.contents)) raw = encodeRaw(decodeContents(output.name, datatype, shape, output.contents!));
    raw ??= Buffer.alloc(0);
    const base = { name: output.name, datatype: output.datatype, shape };
    if (binaryOutput(output.name) || !datatype) {
      binaryParts.push(raw);
      return { ...base, parameters: { ...parameters, binary_data_size: raw.length } };
    }
    return { ...base, ...(Object.keys(parameters).length ? { parameters } : {}), data: decodeToJson(output.name, datatype, shape, raw) };
  });
  const parameters = parametersJson(decoded.parameters);
  const json = Buffer.from(JSON.stringify({
    model_name: decoded.modelName,
    model_version: decoded.modelVersion,
    id: decoded.id,
    ...(parameters ? { parameters } : {}),
    outputs,
  }));
  if (binaryParts.length === 0) return { body: json, headers: { 'content-type': 'application/json' } };
  return {
    body: Buffer.concat([json, ...binaryParts]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.length) },
  };
}
