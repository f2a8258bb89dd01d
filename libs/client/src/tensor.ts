/**
 * Building tensors and checking them before they are sent: the shape's element count must
 * match the data, and the data must be the array the datatype lives in, so a mistake is
 * reported here naming the tensor instead of as a server's puzzling INVALID_ARGUMENT.
 */
import { ARRAY_TYPE, fromFp16, isDatatype, toFp16, type NumericDatatype } from './datatype.js';
import { invalidArgument, quote } from './errors.js';
import type { Datatype, Tensor, TensorData } from './types.js';

/** Most dimensions a shape may have (the servers' own limit). */
export const MAX_DIMENSIONS = 64;

/** The number of elements a shape holds; throws naming the tensor for a shape no tensor has. */
export function elementCount(shape: readonly number[], what: string): number {
  if (!Array.isArray(shape)) throw invalidArgument(`${what}: shape must be an array of dimensions`);
  if (shape.length > MAX_DIMENSIONS) throw invalidArgument(`${what}: shape has ${shape.length} dimensions, more than ${MAX_DIMENSIONS}`);
  let count = 1;
  for (const dimension of shape) {
    if (!Number.isSafeInteger(dimension) || dimension < 0) {
      throw invalidArgument(`${what}: shape [${shape.join(', ')}] has a dimension that is not a whole number >= 0`);
    }
    count *= dimension;
  }
  if (!Number.isSafeInteger(count)) throw invalidArgument(`${what}: shape [${shape.join(', ')}] holds more elements than can be counted`);
  return count;
}

function isBytesElement(value: unknown): value is string | Uint8Array {
  return typeof value === 'string' || value instanceof Uint8Array;
}

/** Why `data` cannot be a `datatype` tensor, or undefined when it can. */
function dataMismatch(datatype: Datatype, data: TensorData): string | undefined {
  if (datatype === 'BOOL') {
    if (data instanceof Uint8Array) return undefined;
    if (Array.isArray(data) && data.every((v) => typeof v === 'boolean')) return undefined;
    return 'BOOL data must be boolean[] (or a Uint8Array of 0 and 1)';
  }
  if (datatype === 'BYTES') {
    if (Array.isArray(data) && data.every(isBytesElement)) return undefined;
    return 'BYTES data must be an array of strings or Uint8Arrays';
  }
  const type = ARRAY_TYPE[datatype];
  if (data instanceof type) return undefined;
  return `${datatype} data must be a ${type.name}${datatype === 'FP16' ? ' of half-precision bits (see fp16.fromNumbers)' : ''}`;
}

/** Checks a tensor the caller built by hand; `where` names it in errors (e.g. "inputs[0]"). */
export function checkTensor(tensor: Tensor, where = 'a tensor'): void {
  if (tensor === null || typeof tensor !== 'object') throw invalidArgument(`${where} is not a tensor`);
  if (typeof tensor.name !== 'string' || tensor.name === '') throw invalidArgument(`${where} has no name`);
  const what = `${where} (${quote(tensor.name)})`;
  if (typeof tensor.datatype !== 'string' || !isDatatype(tensor.datatype)) {
    throw invalidArgument(`${what}: datatype ${quote(String(tensor.datatype))} is not one of the protocol's (FP32, INT64, BYTES, ...)`);
  }
  const count = elementCount(tensor.shape, what);
  const mismatch = dataMismatch(tensor.datatype, tensor.data);
  if (mismatch) throw invalidArgument(`${what}: ${mismatch}`);
  if (tensor.data.length !== count) {
    throw invalidArgument(`${what}: shape [${tensor.shape.join(', ')}] holds ${count} elements but the data has ${tensor.data.length}`);
  }
}

function make(name: string, datatype: Datatype, shape: number[], data: TensorData): Tensor {
  const tensor = { name, datatype, shape: [...shape], data };
  checkTensor(tensor, 'tensor');
  return tensor;
}

function numeric(datatype: Exclude<NumericDatatype, 'INT64' | 'UINT64' | 'FP16'>) {
  const type = ARRAY_TYPE[datatype] as unknown as { new (data: ArrayLike<number>): TensorData };
  // The caller's own typed array is sent as it is, without a copy.
  return (name: string, shape: number[], data: ArrayLike<number>): Tensor =>
    make(name, datatype, shape, data instanceof ARRAY_TYPE[datatype] ? (data as TensorData) : new type(data));
}

function bigint(datatype: 'INT64' | 'UINT64') {
  const type = datatype === 'INT64' ? BigInt64Array : BigUint64Array;
  const [low, high] = datatype === 'INT64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
  return (name: string, shape: number[], data: ArrayLike<bigint | number>): Tensor => {
    if (data instanceof type) return make(name, datatype, shape, data);
    const array = new type(data.length);
    for (let i = 0; i < data.length; i++) {
      const value = data[i];
      if (typeof value === 'number' && !Number.isSafeInteger(value)) {
        throw invalidArgument(`tensor ${quote(name)}: element ${i} (${value}) is not a whole number an ${datatype} can hold exactly; pass a bigint`);
      }
      const big = BigInt(value);
      if (big < low || big > high) throw invalidArgument(`tensor ${quote(name)}: element ${i} (${big}) is outside ${datatype}`);
      array[i] = big;
    }
    return make(name, datatype, shape, array);
  };
}

/** Tensor builders: each checks the shape against the data and picks the datatype. */
export const tensor = {
  fp16: (name: string, shape: number[], data: Uint16Array | ArrayLike<number>): Tensor =>
    make(name, 'FP16', shape, data instanceof Uint16Array ? data : fp16.fromNumbers(data)),
  fp32: numeric('FP32'),
  fp64: numeric('FP64'),
  int8: numeric('INT8'),
  int16: numeric('INT16'),
  int32: numeric('INT32'),
  int64: bigint('INT64'),
  uint8: numeric('UINT8'),
  uint16: numeric('UINT16'),
  uint32: numeric('UINT32'),
  uint64: bigint('UINT64'),
  bool: (name: string, shape: number[], data: boolean[]): Tensor => make(name, 'BOOL', shape, [...data]),
  bytes: (name: string, shape: number[], data: (string | Uint8Array)[]): Tensor => make(name, 'BYTES', shape, [...data]),
};

/** FP16 tensors hold half-precision bits; these convert them from and to numbers. */
export const fp16 = {
  /** Half-precision bits nearest each number (round half to even). */
  fromNumbers(values: ArrayLike<number>): Uint16Array {
    const bits = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) bits[i] = toFp16(values[i]);
    return bits;
  },
  /** The exact values of half-precision bits. */
  toNumbers(bits: Uint16Array): Float32Array {
    const values = new Float32Array(bits.length);
    for (let i = 0; i < bits.length; i++) values[i] = fromFp16(bits[i]);
    return values;
  },
};
