/**
 * Tensors in KServe v2 JSON ↔ the raw little-endian bytes of ModelInferRequest's
 * raw_input_contents / ModelInferResponse's raw_output_contents. A JSON input is checked whole
 * (element count against its shape, each element against its datatype) before a byte is
 * written, and every message names the input.
 */
import { invalidArgument } from '@infermesh/grpc';
import { decodeRaw, ELEMENT_SIZE, elementCount, formatShape, type Datatype } from '@infermesh/tensor';

type Fixed = Exclude<Datatype, 'BYTES'>;

/** Integer ranges of the datatypes JSON numbers are written into exactly. */
const INT_RANGE: Partial<Record<Fixed, readonly [number, number]>> = {
  INT8: [-128, 127], INT16: [-32768, 32767], INT32: [-2147483648, 2147483647],
  UINT8: [0, 255], UINT16: [0, 65535], UINT32: [0, 4294967295],
};
const BIG_RANGE: Partial<Record<Fixed, readonly [bigint, bigint]>> = {
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
  UINT64: [0n, 2n ** 64n - 1n],
};
const FP32_MAX = 3.4028234663852886e38;

function describe(value: unknown): string {
  if (typeof value === 'bigint') return String(value);
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 32))}`;
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : String(value);
}

/**
 * The elements of `data` in row-major order: a flat array of the shape's element count, or
 * arrays nested exactly as deep as the shape with each level as long as its dimension.
 */
export function flattenData(name: string, shape: readonly number[], data: unknown): unknown[] {
  const count = elementCount(shape);
  if (!Array.isArray(data)) throw invalidArgument(`input '${name}': data must be an array, not ${describe(data)}`);
  if (!data.some(Array.isArray)) {
    if (data.length !== count) throw invalidArgument(`input '${name}': data has ${data.length} elements, shape ${formatShape(shape)} needs ${count}`);
    return data;
  }
  const flat: unknown[] = [];
  const walk = (value: unknown, depth: number, at: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(value)) throw invalidArgument(`input '${name}': data${at} is nested deeper than shape ${formatShape(shape)}`);
      flat.push(value);
      return;
    }
    if (!Array.isArray(value)) throw invalidArgument(`input '${name}': data${at} is ${describe(value)} where shape ${formatShape(shape)} needs an array (nested data is as deep as the shape)`);
    if (value.length !== shape[depth]) throw invalidArgument(`input '${name}': data${at} has ${value.length} elements, dimension ${depth} of shape ${formatShape(shape)} is ${shape[depth]}`);
    for (let i = 0; i < value.length; i++) walk(value[i], depth + 1, `${at}[${i}]`);
  };
  walk(data, 0, '');
  return flat;
}

function wrongElement(name: string, datatype: Datatype, index: number, value: unknown, what: string): Error {
  return invalidArgument(`input '${name}': element ${index} is ${describe(value)}, not ${what} (datatype ${datatype})`);
}

/**
 * The raw bytes of a JSON input: `data` flattened, each element checked against `datatype`
 * (booleans for BOOL, integers in range for the integer types, finite numbers for FP32/FP64,
 * strings for BYTES, written as UTF-8 with a 4-byte length prefix each).
 */
export function encodeJsonData(name: string, datatype: Datatype, shape: readonly number[], data: unknown): Buffer {
  const elements = flattenData(name, shape, data);
  if (datatype === 'BYTES') {
    let total = 0;
    for (let i = 0; i < elements.length; i++) {
      const value = elements[i];
      if (typeof value !== 'string') throw wrongElement(name, datatype, i, value, 'a string');
      total += 4 + Buffer.byteLength(value);
    }
    const out = Buffer.allocUnsafe(total);
    let offset = 0;
    for (const value of elements as string[]) {
      const length = out.write(value, offset + 4);
      out.writeUInt32LE(length, offset);
      offset += 4 + length;
    }
    return out;
  }
  if (datatype === 'FP16') {
    throw invalidArgument(`input '${name}': FP16 data cannot be sent as JSON; send it with the binary data extension (parameters.binary_data_size)`);
  }
  const size = ELEMENT_SIZE[datatype];
  const out = Buffer.alloc(elements.length * size);
  if (datatype === 'BOOL') {
    elements.forEach((value, i) => {
      if (typeof value !== 'boolean') throw wrongElement(name, datatype, i, value, 'true or false');
      out[i] = value ? 1 : 0;
    });
    return out;
  }
  const big = BIG_RANGE[datatype];
  if (big) {
    elements.forEach((value, i) => {
      if (typeof value !== 'bigint' && (typeof value !== 'number' || !Number.isInteger(value))) throw wrongElement(name, datatype, i, value, 'an integer');
      const exact = BigInt(value);
      if (exact < big[0] || exact > big[1]) throw wrongElement(name, datatype, i, value, `an integer from ${big[0]} to ${big[1]}`);
      if (datatype === 'INT64') out.writeBigInt64LE(exact, i * 8);
      else out.writeBigUInt64LE(exact, i * 8);
    });
    return out;
  }
  const range = INT_RANGE[datatype];
  if (range) {
    const write = WRITERS[datatype as keyof typeof WRITERS];
    elements.forEach((value, i) => {
      if (typeof value === 'bigint') throw wrongElement(name, datatype, i, value, `an integer from ${range[0]} to ${range[1]}`);
      if (typeof value !== 'number' || !Number.isInteger(value)) throw wrongElement(name, datatype, i, value, 'an integer');
      if (value < range[0] || value > range[1]) throw wrongElement(name, datatype, i, value, `an integer from ${range[0]} to ${range[1]}`);
      write(out, value, i * size);
    });
    return out;
  }
  // FP32, FP64
  elements.forEach((value, i) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw wrongElement(name, datatype, i, value, 'a number');
    if (datatype === 'FP32') {
      if (Math.abs(value) > FP32_MAX) throw wrongElement(name, datatype, i, value, 'a number within FP32\'s range');
      out.writeFloatLE(value, i * 4);
    } else {
      out.writeDoubleLE(value, i * 8);
    }
  });
  return out;
}

const WRITERS = {
  INT8: (b: Buffer, v: number, at: number) => b.writeInt8(v, at),
  INT16: (b: Buffer, v: number, at: number) => b.writeInt16LE(v, at),
  INT32: (b: Buffer, v: number, at: number) => b.writeInt32LE(v, at),
  UINT8: (b: Buffer, v: number, at: number) => b.writeUInt8(v, at),
  UINT16: (b: Buffer, v: number, at: number) => b.writeUInt16LE(v, at),
  UINT32: (b: Buffer, v: number, at: number) => b.writeUInt32LE(v, at),
};

/** An IEEE 754 half (the raw 16-bit word) as a number. */
export function halfToNumber(word: number): number {
  const sign = word & 0x8000 ? -1 : 1;
  const exponent = (word >> 10) & 0x1f;
  const fraction = word & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/**
 * A JSON element: numbers, booleans, strings, or raw JSON (JSON.rawJSON: INT64 / UINT64
 * beyond 2^53, written digit for digit by JSON.stringify).
 */
export type JsonElement = number | boolean | string | null | object;

/** JSON.rawJSON (Node 21+, not yet in TypeScript's lib). */
const rawJSON = (JSON as unknown as { rawJSON(text: string): object }).rawJSON;

/**
 * An output's raw bytes as the JSON `data` array (flat, row-major): BOOL as booleans, FP16
 * widened, INT64/UINT64 as numbers, digit for digit beyond 2^53 (raw JSON), BYTES as UTF-8 strings. JSON has no
 * NaN or Infinity: such elements are written as null.
 */
export function decodeToJson(name: string, datatype: Datatype, shape: readonly number[], raw: Uint8Array): JsonElement[] {
  const decoded = decodeRaw(name, datatype, shape, raw);
  if (Array.isArray(decoded)) return decoded.map((element) => element.toString('utf8'));
  const out: JsonElement[] = new Array(decoded.length);
  for (let i = 0; i < decoded.length; i++) {
    const value = decoded[i];
    if (typeof value === 'bigint' && (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))) {
      out[i] = rawJSON(value.toString());
      continue;
    }
    const number = typeof value === 'bigint' ? Number(value) : datatype === 'FP16' ? halfToNumber(value) : value;
    out[i] = datatype === 'BOOL' ? number !== 0 : Number.isFinite(number) ? number : null;
  }
  return out;
}
