/**
 * A KServe v2 REST inference request (JSON, or JSON followed by binary tensors: Triton's
 * binary data extension) as the ModelInferRequest a gRPC client would have sent: tensors in
 * raw_input_contents. The router then handles it as it handles gRPC's (inference-service.ts):
 * the same validation, routing, batching, records, keys and limits.
 */
import { invalidArgument } from '@infermesh/grpc';
import { REQUEST_LIMITS, messageCodec, type InferParameter, type ModelInferRequest } from '@infermesh/contracts';
import { ELEMENT_SIZE, formatShape, isDatatype, type Datatype } from '@infermesh/tensor';
import { encodeJsonData } from './tensor-json.js';

/** Triton's request header: the length of the JSON at the start of a binary body. */
export const HEADER_LENGTH_HEADER = 'inference-header-content-length';

export interface RestLimits {
  /** The largest body taken (GRPC_MAX_MESSAGE_BYTES: a REST request holds what a gRPC one may). */
  maxBodyBytes: number;
  /** The largest JSON header of a binary body. */
  maxJsonHeaderBytes: number;
}

/** JSON headers of binary bodies hold names and shapes, and small JSON tensors at most. */
export const MAX_JSON_HEADER_BYTES = 16 * 1024 * 1024;

/** What the REST layer keeps of a request to shape the answer: which outputs go back as binary. */
export interface RestInferRequest {
  /** The request as an encoded ModelInferRequest. */
  bytes: Buffer;
  /** Whether an output is answered as binary data (requested per output or for all). */
  binaryOutput(name: string): boolean;
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A string field within `most` UTF-8 bytes (the wire readers' REQUEST_LIMITS). */
function boundedString(field: string, value: unknown, most: number, required = false): string {
  if (value === undefined && !required) return '';
  if (typeof value !== 'string') throw invalidArgument(`${field} must be a string`);
  const bytes = Buffer.byteLength(value);
  if (bytes > most) throw invalidArgument(`${field} is ${bytes} bytes, over the limit of ${most}`);
  if (required && !value) throw invalidArgument(`${field} is empty`);
  return value;
}

/**
 * Parameters as InferParameter: booleans, strings and integers (int64). `drop` names the
 * REST-only ones (binary_data_size, binary_data, binary_data_output) the router consumes.
 */
function parametersOf(field: string, value: unknown, drop: readonly string[] = []): Record<string, InferParameter> {
  if (value === undefined) return {};
  if (!isObject(value)) throw invalidArgument(`${field} must be an object`);
  const entries = Object.entries(value);
  if (entries.length > REQUEST_LIMITS.parameters) throw invalidArgument(`${field} has more than ${REQUEST_LIMITS.parameters} entries`);
  const out: Record<string, InferParameter> = {};
  for (const [key, parameter] of entries) {
    boundedString(`${field} key`, key, REQUEST_LIMITS.nameBytes);
    if (drop.includes(key)) continue;
    if (typeof parameter === 'boolean') out[key] = { boolParam: parameter };
    else if (typeof parameter === 'string') out[key] = { stringParam: parameter };
    else if (typeof parameter === 'number' && Number.isSafeInteger(parameter)) out[key] = { int64Param: String(parameter) };
    else throw invalidArgument(`${field}.${key.slice(0, 64)} must be a boolean, a string or an integer (parameters are InferParameter: bool, int64 or string)`);
  }
  return out;
}

function shapeOf(field: string, value: unknown): number[] {
  if (!Array.isArray(value)) throw invalidArgument(`${field} must be an array of dimensions`);
  if (value.length > REQUEST_LIMITS.dims) throw invalidArgument(`${field} has more than ${REQUEST_LIMITS.dims} dimensions`);
  for (const dim of value) {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) throw invalidArgument(`${field} ${formatShape(value.map((d) => String(d).slice(0, 16)))} has a dimension that is not a non-negative integer`);
  }
  return value as number[];
}

/** BYTES elements in raw form (4-byte little-endian length, then the bytes): how many, or why they are not. */
function countBytesElements(raw: Buffer): number | string {
  let count = 0;
  for (let offset = 0; offset < raw.length; count++) {
    if (offset + 4 > raw.length) return `it ends inside a 4-byte length prefix at offset ${offset}`;
    offset += 4 + raw.readUInt32LE(offset);
    if (offset > raw.length) return `element ${count} runs past the end of its ${raw.length} bytes`;
  }
  return count;
}

/** Binary data for an input: its byte count, or element count for BYTES, must fit its shape. */
function checkBinaryInput(name: string, datatype: Datatype, shape: readonly number[], raw: Buffer): void {
  const count = shape.reduce((a, b) => a * b, 1);
  if (datatype === 'BYTES') {
    const elements = countBytesElements(raw);
    if (typeof elements === 'string') throw invalidArgument(`input '${name}': binary BYTES data is not length-prefixed elements: ${elements}`);
    if (elements !== count) throw invalidArgument(`input '${name}': binary data holds ${elements} BYTES elements, shape ${formatShape(shape)} needs ${count}`);
    return;
  }
  const size = ELEMENT_SIZE[datatype];
  if (raw.length !== count * size) throw invalidArgument(`input '${name}': binary data is ${raw.length} bytes, ${datatype} shape ${formatShape(shape)} needs ${count * size}`);
}

/**
 * Splits a body into its JSON and binary parts by the Inference-Header-Content-Length header
 * (absent: all JSON), refusing a header length that is not a count within the body and the
 * JSON header limit, before anything is parsed.
 */
export function splitBody(body: Buffer, headerLength: string | undefined, limits: RestLimits): { json: Buffer; binary: Buffer } {
  if (headerLength === undefined) return { json: body, binary: body.subarray(body.length) };
  if (!/^\d{1,16}$/.test(headerLength.trim())) throw invalidArgument(`Inference-Header-Content-Length must be a byte count, not ${JSON.stringify(headerLength.slice(0, 32))}`);
  const length = Number(headerLength.trim());
  if (length > limits.maxJsonHeaderBytes) throw invalidArgument(`Inference-Header-Content-Length is ${length}, over the JSON header limit of ${limits.maxJsonHeaderBytes} bytes`);
  if (length > body.length) throw invalidArgument(`Inference-Header-Content-Length is ${length}, beyond the ${body.length}-byte body`);
  return { json: body.subarray(0, length), binary: body.subarray(length) };
}

/** A run of 16 digits: the only way a JSON text can hold an integer beyond 2^53. */
const LONG_DIGITS = /\d{16}/;

/** Whole numbers beyond 2^53 as bigints, from their source text: INT64 / UINT64 data arrive digit for digit. */
function exactIntegers(_key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === 'number' && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source) ? BigInt(context.source) : value;
}

/**
 * Parses a JSON document, refusing what is not JSON with where JSON.parse stopped. Integers
 * beyond 2^53 are kept exact as bigints (a reviver with source access, used only when the
 * text has a long enough digit run: it costs on every value).
 */
export function parseJson(text: Buffer, what: string): unknown {
  try {
    const json = text.toString('utf8');
    return LONG_DIGITS.test(json) ? JSON.parse(json, exactIntegers as never) : JSON.parse(json);
  } catch (error) {
    throw invalidArgument(`${what} is not JSON: ${(error as Error).message.slice(0, 200)}`);
  }
}

let codec: ReturnType<typeof messageCodec<ModelInferRequest, unknown>> | undefined;
const requestCodec = () => (codec ??= messageCodec<ModelInferRequest, unknown>('inference.ModelInferRequest'));

/**
 * The ModelInferRequest of a REST inference request for `model` / `version` (from the path).
 * Checks, before any tensor is converted: the JSON's form, names and counts within
 * REQUEST_LIMITS, each input's datatype and shape, that its data is given one way (JSON `data`
 * or `binary_data_size`), and that the binary sizes add up to the binary part exactly.
 */
export function restInferRequest(model: string, version: string, body: Buffer, headerLength: string | undefined, limits: RestLimits): RestInferRequest {
  const { json, binary } = splitBody(body, headerLength, limits);
  const request = parseJson(json, headerLength === undefined ? 'the request body' : 'the request\'s JSON header');
  if (!isObject(request)) throw invalidArgument('the request body must be a JSON object with "inputs"');
  const id = boundedString('id', request.id, REQUEST_LIMITS.nameBytes);
  const parameters = parametersOf('parameters', request.parameters, ['binary_data_output']);
  const allBinary = request.parameters !== undefined && (request.parameters as Json).binary_data_output === true;
  if (!Array.isArray(request.inputs) || request.inputs.length === 0) throw invalidArgument('inputs must be a non-empty array');
  if (request.inputs.length > REQUEST_LIMITS.tensors) throw invalidArgument(`the request has more than ${REQUEST_LIMITS.tensors} inputs`);
  const outputs = request.outputs ?? [];
  if (!Array.isArray(outputs)) throw invalidArgument('outputs must be an array');
  if (outputs.length > REQUEST_LIMITS.tensors) throw invalidArgument(`the request has more than ${REQUEST_LIMITS.tensors} outputs`);

  // Every input's header first: a wrong one is refused before any data is converted.
  let binaryTotal = 0;
  const inputs = request.inputs.map((input: unknown, i: number) => {
    if (!isObject(input)) throw invalidArgument(`inputs[${i}] must be an object`);
    const name = boundedString(`inputs[${i}].name`, input.name, REQUEST_LIMITS.nameBytes, true);
    const datatype = boundedString(`input '${name}': datatype`, input.datatype, REQUEST_LIMITS.datatypeBytes, true);
    if (!isDatatype(datatype)) throw invalidArgument(`input '${name}': datatype '${datatype}' is not a KServe v2 datatype`);
    const shape = shapeOf(`input '${name}': shape`, input.shape);
    const binarySize = isObject(input.parameters) ? input.parameters.binary_data_size : undefined;
    if (binarySize !== undefined) {
      if (typeof binarySize !== 'number' || !Number.isSafeInteger(binarySize) || binarySize < 0) throw invalidArgument(`input '${name}': binary_data_size must be a byte count`);
      if (input.data !== undefined) throw invalidArgument(`input '${name}' has both data and binary_data_size; send its data one way`);
      binaryTotal += binarySize;
    } else if (input.data === undefined) {
      throw invalidArgument(`input '${name}' has no data (JSON "data", or parameters.binary_data_size with the binary data extension)`);
    }
    return { name, datatype, shape, binarySize: binarySize as number | undefined, data: input.data, parameters: parametersOf(`input '${name}': parameters`, input.parameters, ['binary_data_size']) };
  });
  if (binaryTotal !== binary.length) {
    throw invalidArgument(headerLength === undefined
      ? `inputs declare ${binaryTotal} bytes of binary data (binary_data_size) but the request has no Inference-Header-Content-Length header`
      : `inputs declare ${binaryTotal} bytes of binary data (binary_data_size), the body has ${binary.length} after its JSON header`);
  }
  const requested = outputs.map((output: unknown, i: number) => {
    if (!isObject(output)) throw invalidArgument(`outputs[${i}] must be an object`);
    const name = boundedString(`outputs[${i}].name`, output.name, REQUEST_LIMITS.nameBytes, true);
    const binaryData = isObject(output.parameters) ? output.parameters.binary_data : undefined;
    return { name, binary: binaryData === undefined ? allBinary : binaryData === true, parameters: parametersOf(`output '${name}': parameters`, output.parameters, ['binary_data']) };
  });

  let offset = 0;
  const raw = inputs.map((input) => {
    if (input.binarySize === undefined) return encodeJsonData(input.name, input.datatype, input.shape, input.data);
    const part = binary.subarray(offset, offset + input.binarySize);
    offset += input.binarySize;
    checkBinaryInput(input.name, input.datatype, input.shape, part);
    return part;
  });
  const message: ModelInferRequest = {
    modelName: model,
    modelVersion: version,
    id,
    parameters,
    inputs: inputs.map(({ name, datatype, shape, parameters: p }) => ({ name, datatype, shape, parameters: p })),
    outputs: requested.map(({ name, parameters: p }) => ({ name, parameters: p })),
    rawInputContents: raw,
  };
  const binaryOutputs = new Map(requested.map((output) => [output.name, output.binary]));
  const encoded = requestCodec().encode(message);
  return {
    bytes: Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength),
    binaryOutput: (name) => binaryOutputs.get(name) ?? allBinary,
  };
}
