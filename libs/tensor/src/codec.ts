import { ARRAY_TYPE, ELEMENT_SIZE, type Datatype, type NumericArray } from './datatype.js';
import { TensorError } from './errors.js';
import { elementCount, formatShape } from './shape.js';

/** A decoded tensor: numbers in a typed array, or one Buffer per BYTES element. */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: NumericArray | Buffer[];
}

/** Reads little-endian row-major raw contents into a typed array (copying when unaligned). */
export function decodeRaw(name: string, datatype: Datatype, shape: readonly number[], raw: Uint8Array): NumericArray | Buffer[] {
  const count = elementCount(shape);
  if (datatype === 'BYTES') {
    const elements = decodeBytesElements(name, raw);
    if (elements.length !== count) {
      throw new TensorError(
        `input '${name}': raw contents hold ${elements.length} BYTES elements, shape ${formatShape(shape)} needs ${count}`,
      );
    }
    return elements;
  }
  const size = ELEMENT_SIZE[datatype];
  if (raw.byteLength !== count * size) {
    throw new TensorError(
      `input '${name}': raw contents are ${raw.byteLength} bytes, ${datatype} shape ${formatShape(shape)} needs ${count * size}`,
    );
  }
  const Type = ARRAY_TYPE[datatype];
  if (raw.byteOffset % size === 0) return new Type(raw.buffer, raw.byteOffset, count);
  const copy = new Uint8Array(raw.byteLength);
  copy.set(raw);
  return new Type(copy.buffer, 0, count);
}

/** Little-endian row-major bytes of a tensor's data. Shares memory with numeric data. */
export function encodeRaw(data: NumericArray | readonly Uint8Array[]): Buffer {
  if (Array.isArray(data)) return encodeBytesElements(data as readonly Uint8Array[]);
  const array = data as NumericArray;
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/** BYTES elements: each a 4-byte little-endian length followed by that many bytes. */
export function decodeBytesElements(name: string, raw: Uint8Array): Buffer[] {
  const buffer = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const elements: Buffer[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    if (offset + 4 > buffer.length) {
      throw new TensorError(`input '${name}': BYTES contents end inside a 4-byte length prefix at offset ${offset}`);
    }
    const length = buffer.readUInt32LE(offset);
    offset += 4;
    if (offset + length > buffer.length) {
      throw new TensorError(
        `input '${name}': BYTES element ${elements.length} declares ${length} bytes but only ${buffer.length - offset} remain`,
      );
    }
    elements.push(buffer.subarray(offset, offset + length));
    offset += length;
  }
  return elements;
}

export function encodeBytesElements(elements: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const element of elements) total += 4 + element.byteLength;
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const element of elements) {
    out.writeUInt32LE(element.byteLength, offset);
    offset += 4;
    out.set(element, offset);
    offset += element.byteLength;
  }
  return out;
}
