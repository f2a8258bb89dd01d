/** Datatypes, the typed array each one lives in, and FP16 <-> number conversion. */
import type { Datatype } from './types.js';

export const DATATYPES: readonly Datatype[] = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES',
];

export type NumericDatatype = Exclude<Datatype, 'BYTES' | 'BOOL'>;

export type NumericArray =
  | Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;

interface TypedArrayConstructor {
  new (length: number): NumericArray;
  readonly BYTES_PER_ELEMENT: number;
}

/** The typed array of each numeric datatype; FP16 keeps its raw 16-bit words. */
export const ARRAY_TYPE: Record<NumericDatatype, TypedArrayConstructor> = {
  UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array, UINT64: BigUint64Array,
  INT8: Int8Array, INT16: Int16Array, INT32: Int32Array, INT64: BigInt64Array,
  FP16: Uint16Array, FP32: Float32Array, FP64: Float64Array,
};

/** Bytes per element on the wire; BYTES elements have no fixed size. */
export function elementSize(datatype: Exclude<Datatype, 'BYTES'>): number {
  return datatype === 'BOOL' ? 1 : ARRAY_TYPE[datatype].BYTES_PER_ELEMENT;
}

export function isDatatype(value: string): value is Datatype {
  return (DATATYPES as readonly string[]).includes(value);
}

export function isBigIntDatatype(datatype: Datatype): datatype is 'INT64' | 'UINT64' {
  return datatype === 'INT64' || datatype === 'UINT64';
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The IEEE half-precision bits nearest to `value` (round half to even, overflow to infinity). */
export function toFp16(value: number): number {
  f32[0] = value;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (rest > midpoint || (rest === midpoint && half & 1) ? half + 1 : half);
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  return sign | (rest > 0x1000 || (rest === 0x1000 && half & 1) ? half + 1 : half);
}

/** The number half-precision `bits` stand for (exact: every half is a double). */
export function fromFp16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
