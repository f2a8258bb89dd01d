/**
 * Inference bodies of the REST protocol: JSON tensors, and Triton's binary-data extension
 * (the JSON first, its length in `Inference-Header-Content-Length`, then the raw bytes of
 * each tensor whose `parameters.binary_data_size` is set, in order).
 */
import { fromFp16, isDatatype, toFp16 } from '../datatype.js';
import { badAnswer, invalidArgument, quote } from '../errors.js';
import { decodeRaw, encodeRaw } from '../raw.js';
import { checkRequest } from '../request.js';
import { inferResult } from '../result.js';
import { elementCount } from '../tensor.js';
import type { Datatype, InferRequest, InferResult, Parameters, Tensor, TensorData } from '../types.js';

/** In 'auto' mode a tensor of at least this many raw bytes is sent binary. */
export const AUTO_BINARY_BYTES = 64 * 1024;
export const HEADER_LENGTH = 'inference-header-content-length';

export interface EncodedBody {
  body: Buffer;
  headers: Record<string, string>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isUtf8(bytes: Uint8Array): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The tensor's elements as JSON text, or undefined when JSON cannot carry them exactly. */
function jsonData(t: Tensor): string | undefined {
  const { datatype, data } = t;
  if (datatype === 'BYTES') {
    const strings: string[] = [];
    for (const e of data as (string | Uint8Array)[]) {
      if (typeof e === 'string') strings.push(e);
      else if (isUtf8(e)) strings.push(Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('utf8'));
      else return undefined;
    }
    return JSON.stringify(strings);
  }
  if (datatype === 'BOOL') return `[${Array.from(data as ArrayLike<boolean | number>, (v) => (v ? 'true' : 'false')).join(',')}]`;
  if (datatype === 'FP16' || datatype === 'FP32' || datatype === 'FP64') {
    const values = datatype === 'FP16' ? Array.from(data as Uint16Array, fromFp16) : (data as Float32Array | Float64Array);
    const texts = new Array<string>(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (!Number.isFinite(v)) return undefined;
      texts[i] = Object.is(v, -0) ? '-0' : String(v);
    }
    return `[${texts.join(',')}]`;
  }
  // Joined as text, INT64 / UINT64 keep every digit (JSON numbers have no size limit).
  return `[${Array.prototype.join.call(data, ',')}]`;
}

function rawSize(t: Tensor): number {
  if (t.datatype === 'BYTES') return (t.data as (string | Uint8Array)[]).reduce((sum, e) => sum + 4 + (typeof e === 'string' ? Buffer.byteLength(e) : e.byteLength), 0);
  return (t.data as ArrayLike<unknown> & { byteLength?: number }).byteLength ?? t.data.length;
}

/** The infer body; `binary` as in ClientOptions. */
export function encodeInferBody(request: InferRequest, binary: 'auto' | boolean, id = request.id): EncodedBody {
  checkRequest(request);
  const raws: Buffer[] = [];
  const inputs = request.inputs.map((t, i) => {
    const head = `{"name":${JSON.stringify(t.name)},"shape":${JSON.stringify(t.shape)},"datatype":"${t.datatype}"`;
    const wantBinary = binary === true || (binary === 'auto' && rawSize(t) >= AUTO_BINARY_BYTES);
    const json = wantBinary ? undefined : jsonData(t);
    if (json !== undefined) return `${head},"data":${json}}`;
    if (binary === false) {
      throw invalidArgument(`inputs[${i}] (${quote(t.name)}): JSON cannot carry this ${t.datatype} data exactly (non-finite floats or bytes that are not UTF-8); use binary: 'auto' or true (the server needs the binary-data extension)`);
    }
    const raw = encodeRaw(t);
    raws.push(raw);
    return `${head},"parameters":{"binary_data_size":${raw.length}}}`;
  });
  const parameters: Parameters = { ...request.parameters };
  if (binary !== false) parameters.binary_data_output = true;
  const outputs = request.outputs?.map((o) => ({
    name: o.name,
    parameters: { ...(o.classification === undefined ? {} : { classification: o.classification }), ...(binary !== false ? { binary_data: true } : {}) },
  }));
  const json = Buffer.from(
    `{${id ? `"id":${JSON.stringify(id)},` : ''}"parameters":${JSON.stringify(parameters)},"inputs":[${inputs.join(',')}]${outputs ? `,"outputs":${JSON.stringify(outputs)}` : ''}}`,
  );
  if (raws.length === 0) return { body: json, headers: { 'content-type': 'application/json' } };
  return {
    body: Buffer.concat([json, ...raws]),
    headers: { 'content-type': 'application/octet-stream', [HEADER_LENGTH]: String(json.length) },
  };
}

interface OutputJson {
  name?: unknown;
  datatype?: unknown;
  shape?: unknown;
  data?: unknown;
  parameters?: { binary_data_size?: unknown } & Record<string, unknown>;
}

function numbersOf(values: unknown[], what: string): number[] {
  return values.map((v) => {
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    throw badAnswer(`${what}: element ${JSON.stringify(v)?.slice(0, 40)} is not a number`);
  });
}

/**
 * JSON.parse that keeps whole numbers beyond 2^53 exact, as bigints, from their source text
 * (Node 22+; without source access they are read as doubles).
 */
function parseAnswer(text: string): unknown {
  if (!text.includes('INT64"')) return JSON.parse(text);
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source) ? BigInt(context.source) : value);
}

function jsonTensor(name: string, datatype: Datatype, shape: number[], data: unknown): Tensor {
  const what = `output ${quote(name)}`;
  if (!Array.isArray(data)) throw badAnswer(`${what} has neither data nor binary_data_size`);
  const count = elementCount(shape, what);
  const flat = data.flat(Infinity as 1);
  if (flat.length !== count) throw badAnswer(`${what}: ${flat.length} elements for shape [${shape.join(', ')}] (${count})`);
  let out: TensorData;
  switch (datatype) {
    case 'BOOL': out = flat.map((v) => v === true || v === 1); break;
    case 'BYTES': out = flat.map((v) => {
      if (typeof v !== 'string') throw badAnswer(`${what}: a BYTES element in JSON must be a string`);
      return Buffer.from(v, 'utf8');
    }); break;
    case 'INT64': case 'UINT64': {
      const array = datatype === 'INT64' ? new BigInt64Array(count) : new BigUint64Array(count);
      const [low, high] = datatype === 'INT64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      for (let i = 0; i < count; i++) {
        const v = flat[i];
        if (!(typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)))) throw badAnswer(`${what}: ${JSON.stringify(v)?.slice(0, 40)} is not a whole number`);
        const big = BigInt(v);
        if (big < low || big > high) throw badAnswer(`${what}: ${big} is outside ${datatype}`);
        array[i] = big;
      }
      out = array;
      break;
    }
    case 'FP16': out = Uint16Array.from(numbersOf(flat, what), toFp16); break;
    case 'FP32': out = Float32Array.from(numbersOf(flat, what)); break;
    case 'FP64': out = Float64Array.from(numbersOf(flat, what)); break;
    case 'INT8': out = Int8Array.from(numbersOf(flat, what)); break;
    case 'INT16': out = Int16Array.from(numbersOf(flat, what)); break;
    case 'INT32': out = Int32Array.from(numbersOf(flat, what)); break;
    case 'UINT8': out = Uint8Array.from(numbersOf(flat, what)); break;
    case 'UINT16': out = Uint16Array.from(numbersOf(flat, what)); break;
    case 'UINT32': out = Uint32Array.from(numbersOf(flat, what)); break;
  }
  return { name, datatype, shape, data: out };
}

function parametersOf(value: unknown): Parameters {
  const out: Parameters = {};
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}

/** Reads an infer answer: JSON alone, or JSON + binary outputs when the header says so. */
export function decodeInferResponse(body: Buffer, headerLength: string | undefined): InferResult {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    jsonEnd = Number(headerLength);
    if (!Number.isSafeInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > body.length) {
      throw badAnswer(`Inference-Header-Content-Length is ${quote(headerLength)} for a body of ${body.length} bytes`);
    }
  }
  let json: { model_name?: unknown; model_version?: unknown; id?: unknown; parameters?: unknown; outputs?: unknown };
  try {
    json = parseAnswer(body.subarray(0, jsonEnd).toString('utf8')) as typeof json;
  } catch (error) {
    throw badAnswer('the infer answer is not JSON', error);
  }
  if (!json || typeof json !== 'object' || !Array.isArray(json.outputs)) throw badAnswer('the infer answer has no outputs array');
  let offset = jsonEnd;
  const outputs = (json.outputs as OutputJson[]).map((o, i) => {
    if (!o || typeof o.name !== 'string' || typeof o.datatype !== 'string' || !Array.isArray(o.shape)) {
      throw badAnswer(`outputs[${i}] needs a name, a datatype and a shape`);
    }
    if (!isDatatype(o.datatype)) throw badAnswer(`output ${quote(o.name)} has datatype ${quote(o.datatype)}, not one of the protocol's`);
    const shape = o.shape as number[];
    elementCount(shape, `output ${quote(o.name)}`);
    const size = o.parameters?.binary_data_size;
    if (size === undefined) return jsonTensor(o.name, o.datatype, shape, o.data);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || offset + size > body.length) {
      throw badAnswer(`output ${quote(o.name)}: binary_data_size ${JSON.stringify(size)} runs past the ${body.length - offset} bytes left`);
    }
    const raw = body.subarray(offset, offset + size);
    offset += size;
    return decodeRaw(o.name, o.datatype, shape, raw);
  });
  return inferResult({
    model: typeof json.model_name === 'string' ? json.model_name : '',
    version: typeof json.model_version === 'string' ? json.model_version : '',
    id: typeof json.id === 'string' ? json.id : '',
    outputs,
    parameters: parametersOf(json.parameters),
  });
}
