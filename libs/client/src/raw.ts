/**
 * The protocol's raw tensor layout, shared by gRPC's raw_input_contents / raw_output_contents
 * and REST's binary-data extension: little-endian, row-major; BOOL one byte each; BYTES
 * elements as a 4-byte little-endian length followed by the bytes.
 */
import { endianness } from 'node:os';
import { ARRAY_TYPE, elementSize } from './datatype.js';
import { badAnswer, quote } from './errors.js';
import { elementCount } from './tensor.js';
import type { Datatype, Tensor, TensorData } from './types.js';

// Typed arrays use the machine's byte order; every platform Node runs on in practice is little-endian.
if (endianness() !== 'LE') throw new Error('@infermesh/client needs a little-endian machine: tensors are sent as raw little-endian bytes');

const encoder = new TextEncoder();

/** The BYTES elements framed as the protocol says. */
export function encodeBytesElements(elements: readonly (string | Uint8Array)[]): Buffer {
  const parts = elements.map((e) => (typeof e === 'string' ? encoder.encode(e) : e));
  const out = Buffer.allocUnsafe(parts.reduce((sum, p) => sum + 4 + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.writeUInt32LE(part.length, offset);
    out.set(part, offset + 4);
    offset += 4 + part.length;
  }
  return out;
}

/** A checked tensor's raw bytes: a view of the caller's typed array where there is one (no copy). */
export function encodeRaw(tensor: Tensor): Buffer {
  const { datatype, data } = tensor;
  if (datatype === 'BYTES') return encodeBytesElements(data as (string | Uint8Array)[]);
  if (datatype === 'BOOL' && Array.isArray(data)) return Buffer.from((data as boolean[]).map((v) => (v ? 1 : 0)));
  const array = data as Exclude<TensorData, unknown[]>;
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/** Splits framed BYTES elements, checking each length against what is left. Elements are copies. */
export function decodeBytesElements(raw: Uint8Array, count: number, what: string): Buffer[] {
  const view = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const elements: Buffer[] = [];
  let offset = 0;
  while (offset < view.length) {
    if (offset + 4 > view.length) throw badAnswer(`${what}: BYTES element ${elements.length} has a cut length prefix`);
    const length = view.readUInt32LE(offset);
    if (offset + 4 + length > view.length) {
      throw badAnswer(`${what}: BYTES element ${elements.length} says ${length} bytes but ${view.length - offset - 4} are left`);
    }
    elements.push(Buffer.from(view.subarray(offset + 4, offset + 4 + length)));
    offset += 4 + length;
  }
  if (elements.length !== count) throw badAnswer(`${what}: ${elements.length} BYTES elements for a shape of ${count}`);
  return elements;
}

/**
 * A tensor from raw bytes. The bytes are copied into a fresh (aligned) typed array: protobuf and
 * HTTP hand out slices of a larger buffer at any offset, which a Float32Array cannot view.
 */
export function decodeRaw(name: string, datatype: Datatype, shape: number[], raw: Uint8Array): Tensor {
  const what = `output ${quote(name)}`;
  const count = elementCount(shape, what);
  if (datatype === 'BYTES') return { name, datatype, shape, data: decodeBytesElements(raw, count, what) };
  const expected = count * elementSize(datatype);
  if (raw.byteLength !== expected) {
    throw badAnswer(`${what}: ${raw.byteLength} bytes of ${datatype} for shape [${shape.join(', ')}], which needs ${expected}`);
  }
  if (datatype === 'BOOL') return { name, datatype, shape, data: Array.from(raw, (b) => b !== 0) };
  const data = new ARRAY_TYPE[datatype](count);
  new Uint8Array(data.buffer).set(raw);
  return { name, datatype, shape, data };
}
