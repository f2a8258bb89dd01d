/**
 * InferRequest / InferResult <-> the proto's messages. Inputs always travel as
 * raw_input_contents (no per-element protobuf encoding); outputs are read from
 * raw_output_contents or, for servers that answer that way, from typed `contents`.
 */
import { isDatatype } from '../datatype.js';
import { badAnswer, quote } from '../errors.js';
import { decodeRaw, encodeRaw } from '../raw.js';
import { checkRequest } from '../request.js';
import { elementCount } from '../tensor.js';
import { inferResult } from '../result.js';
import type { Datatype, InferRequest, InferResult, Parameters, Tensor } from '../types.js';
import type { InferParameterWire, InferTensorWire, Long, ModelInferRequestWire, ModelInferResponseWire, TensorContentsWire } from './proto.js';

function parameterWire(value: string | number | boolean): InferParameterWire {
  if (typeof value === 'boolean') return { bool_param: value };
  if (typeof value === 'number') return { int64_param: value };
  return { string_param: value };
}

export function parametersWire(parameters: Parameters | undefined): Record<string, InferParameterWire> {
  return Object.fromEntries(Object.entries(parameters ?? {}).map(([k, v]) => [k, parameterWire(v)]));
}

export function parametersOf(wire: Record<string, InferParameterWire> | undefined): Parameters {
  const out: Parameters = {};
  for (const [key, p] of Object.entries(wire ?? {})) {
    if (p.parameter_choice === 'bool_param') out[key] = Boolean(p.bool_param);
    else if (p.parameter_choice === 'int64_param') out[key] = Number(p.int64_param);
    else if (p.parameter_choice === 'string_param') out[key] = p.string_param ?? '';
  }
  return out;
}

/** The request as a ModelInferRequest; `id` overrides the request's (streams number their items). */
export function inferRequestWire(request: InferRequest, id = request.id ?? ''): ModelInferRequestWire {
  checkRequest(request);
  return {
    model_name: request.model,
    model_version: request.version ?? '',
    id,
    parameters: parametersWire(request.parameters),
    inputs: request.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: {} })),
    outputs: (request.outputs ?? []).map((o) => ({
      name: o.name,
      parameters: parametersWire(o.classification === undefined ? {} : { classification: o.classification }),
    })),
    raw_input_contents: request.inputs.map(encodeRaw),
  };
}

function shapeOf(shape: Long[], what: string): number[] {
  return shape.map((d) => {
    const n = Number(d);
    if (!Number.isSafeInteger(n)) throw badAnswer(`${what}: shape dimension ${d} is not a whole number`);
    return n;
  });
}

function bigints(values: Long[], type: typeof BigInt64Array | typeof BigUint64Array) {
  const array = new type(values.length);
  for (let i = 0; i < values.length; i++) array[i] = BigInt(values[i]);
  return array;
}

/** A tensor from typed `contents` (servers may answer that way instead of raw). */
function decodeContents(name: string, datatype: Datatype, shape: number[], contents: TensorContentsWire | null | undefined): Tensor {
  const what = `output ${quote(name)}`;
  const c = contents ?? {};
  let data: Tensor['data'];
  switch (datatype) {
    case 'BOOL': data = [...(c.bool_contents ?? [])]; break;
    case 'INT8': data = Int8Array.from(c.int_contents ?? []); break;
    case 'INT16': data = Int16Array.from(c.int_contents ?? []); break;
    case 'INT32': data = Int32Array.from(c.int_contents ?? []); break;
    case 'UINT8': data = Uint8Array.from(c.uint_contents ?? []); break;
    case 'UINT16': data = Uint16Array.from(c.uint_contents ?? []); break;
    case 'UINT32': data = Uint32Array.from(c.uint_contents ?? []); break;
    case 'INT64': data = bigints(c.int64_contents ?? [], BigInt64Array); break;
    case 'UINT64': data = bigints(c.uint64_contents ?? [], BigUint64Array); break;
    case 'FP32': data = Float32Array.from(c.fp32_contents ?? []); break;
    case 'FP64': data = Float64Array.from(c.fp64_contents ?? []); break;
    case 'BYTES': data = (c.bytes_contents ?? []).map((b) => Buffer.from(b)); break;
    case 'FP16': throw badAnswer(`${what}: FP16 has no typed contents field; it must come in raw_output_contents`);
  }
  const count = elementCount(shape, what);
  if (data.length !== count) throw badAnswer(`${what}: ${data.length} elements in contents for shape [${shape.join(', ')}] (${count})`);
  return { name, datatype, shape, data };
}

function outputTensor(output: InferTensorWire, raw: Buffer | undefined): Tensor {
  const what = `output ${quote(output.name)}`;
  if (!isDatatype(output.datatype)) throw badAnswer(`${what} has datatype ${quote(output.datatype)}, not one of the protocol's`);
  const shape = shapeOf(output.shape, what);
  return raw ? decodeRaw(output.name, output.datatype, shape, raw) : decodeContents(output.name, output.datatype, shape, output.contents);
}

export function inferResultOf(response: ModelInferResponseWire): InferResult {
  const raw = response.raw_output_contents ?? [];
  if (raw.length > 0 && raw.length !== response.outputs.length) {
    throw badAnswer(`${raw.length} raw_output_contents for ${response.outputs.length} outputs`);
  }
  return inferResult({
    model: response.model_name,
    version: response.model_version,
    id: response.id,
    outputs: response.outputs.map((o, i) => outputTensor(o, raw[i])),
    parameters: parametersOf(response.parameters),
  });
}
