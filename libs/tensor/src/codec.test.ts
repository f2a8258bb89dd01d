/**
 * The raw tensor codec: little-endian, row-major element bytes; BYTES elements framed
 * as a 4-byte little-endian length followed by the bytes.
 */
import { describe, expect, it } from 'vitest';
import {
  ARRAY_TYPE, DATATYPES, ELEMENT_SIZE, TensorError, decodeBytesElements, decodeRaw, encodeBytesElements, encodeRaw,
  type Datatype, type NumericArray,
} from './index.js';

/** Sample values of every numeric datatype, including each type's extremes. */
const SAMPLES: Record<Exclude<Datatype, 'BYTES'>, NumericArray> = {
  BOOL: Uint8Array.from([1, 0, 1, 1, 0, 0]),
  UINT8: Uint8Array.from([0, 1, 127, 128, 254, 255]),
  UINT16: Uint16Array.from([0, 1, 255, 256, 65534, 65535]),
  UINT32: Uint32Array.from([0, 1, 65536, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1]),
  UINT64: BigUint64Array.from([0n, 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]),
  INT8: Int8Array.from([-128, -1, 0, 1, 64, 127]),
  INT16: Int16Array.from([-32768, -1, 0, 1, 256, 32767]),
  INT32: Int32Array.from([-(2 ** 31), -1, 0, 1, 65536, 2 ** 31 - 1]),
  INT64: BigInt64Array.from([-(2n ** 63n), -(2n ** 53n) - 1n, -1n, 0n, 2n ** 53n + 1n, 2n ** 63n - 1n]),
  // FP16 travels as raw 16-bit words: 1.0, -2.0, 0.5, +inf, NaN, 65504.
  FP16: Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7c00, 0x7e00, 0x7bff]),
  FP32: Float32Array.from([-1.5, 0, 3.25, Number.POSITIVE_INFINITY, -3.4028234663852886e38, 1.401298464324817e-45]),
  FP64: Float64Array.from([-1.5, 0, Math.PI, Number.NEGATIVE_INFINITY, Number.MAX_VALUE, Number.MIN_VALUE]),
};

/** The elements of a typed array, bigint or number, as a plain array. */
const values = (array: NumericArray): (number | bigint)[] => Array.from(array as ArrayLike<number | bigint>);

const NUMERIC = DATATYPES.filter((d): d is Exclude<Datatype, 'BYTES'> => d !== 'BYTES');

describe('raw numeric tensors', () => {
  it.each(NUMERIC)('round-trips %s through encodeRaw and decodeRaw', (datatype) => {
    const data = SAMPLES[datatype];
    const raw = encodeRaw(data);
    expect(raw.byteLength).toBe(6 * ELEMENT_SIZE[datatype]);
    const decoded = decodeRaw('x', datatype, [2, 3], raw);
    expect(decoded).toBeInstanceOf(ARRAY_TYPE[datatype]);
    expect(values(decoded as NumericArray)).toEqual(values(data));
  });

  it('keeps NaN through a FP32 round trip', () => {
    const decoded = decodeRaw('x', 'FP32', [1], encodeRaw(Float32Array.from([Number.NaN]))) as Float32Array;
    expect(Number.isNaN(decoded[0])).toBe(true);
  });

  it('lays elements out little-endian', () => {
    expect([...encodeRaw(Uint32Array.from([0x04030201]))]).toEqual([1, 2, 3, 4]);
    expect([...encodeRaw(Int16Array.from([-2]))]).toEqual([0xfe, 0xff]);
    expect([...encodeRaw(Float32Array.from([1]))]).toEqual([0x00, 0x00, 0x80, 0x3f]);
    expect([...encodeRaw(BigInt64Array.from([-1n]))]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  });

  it('reads little-endian bytes whatever the host produced them with', () => {
    const raw = Buffer.from([0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff]);
    expect(Array.from(decodeRaw('x', 'INT32', [2], raw) as Int32Array)).toEqual([1, -1]);
    const fp64 = Buffer.alloc(8);
    fp64.writeDoubleLE(-0.25);
    expect(Array.from(decodeRaw('x', 'FP64', [1], fp64) as Float64Array)).toEqual([-0.25]);
  });

  it('keeps row-major order: the last dimension varies fastest', () => {
    const raw = Buffer.alloc(6 * 4);
    [[0, 1, 2], [10, 11, 12]].flat().forEach((v, i) => raw.writeInt32LE(v, i * 4));
    expect(Array.from(decodeRaw('x', 'INT32', [2, 3], raw) as Int32Array)).toEqual([0, 1, 2, 10, 11, 12]);
  });

  it('decodes contents that start at an unaligned offset inside a larger buffer', () => {
    const payload = encodeRaw(Float64Array.from([1.5, -2.5, 1e300]));
    const backing = Buffer.alloc(payload.byteLength + 3);
    payload.copy(backing, 3);
    const raw = backing.subarray(3);
    expect(raw.byteOffset % 8).not.toBe(0);
    expect(Array.from(decodeRaw('x', 'FP64', [3], raw) as Float64Array)).toEqual([1.5, -2.5, 1e300]);
  });

  it('decodes an aligned view without copying', () => {
    const raw = encodeRaw(Int32Array.from([1, 2, 3]));
    const decoded = decodeRaw('x', 'INT32', [3], raw) as Int32Array;
    raw.writeInt32LE(42, 0);
    expect(decoded[0]).toBe(42);
  });

  it('encodes numeric data without copying it', () => {
    const data = Float32Array.from([1, 2]);
    const raw = encodeRaw(data);
    data[0] = 7;
    expect(raw.readFloatLE(0)).toBe(7);
  });

  it('encodes only the viewed part of a typed array that is a subarray', () => {
    const whole = Int16Array.from([1, 2, 3, 4]);
    expect([...encodeRaw(whole.subarray(1, 3))]).toEqual([2, 0, 3, 0]);
  });

  it('treats an empty shape as a scalar of one element', () => {
    expect(Array.from(decodeRaw('x', 'FP32', [], encodeRaw(Float32Array.from([2.5]))) as Float32Array)).toEqual([2.5]);
  });

  it('accepts empty contents for a shape with a zero dimension', () => {
    expect((decodeRaw('x', 'FP32', [0, 4], new Uint8Array(0)) as Float32Array).length).toBe(0);
  });

  it('refuses raw contents whose size does not match the shape, naming the tensor, sizes and shape', () => {
    const raw = new Uint8Array(10);
    expect(() => decodeRaw('pixels', 'FP32', [2, 3], raw)).toThrow(TensorError);
    expect(() => decodeRaw('pixels', 'FP32', [2, 3], raw)).toThrow(
      "input 'pixels': raw contents are 10 bytes, FP32 shape [2, 3] needs 24",
    );
  });

  it('refuses raw contents one element too long', () => {
    expect(() => decodeRaw('ids', 'INT64', [2], new Uint8Array(24))).toThrow(
      "input 'ids': raw contents are 24 bytes, INT64 shape [2] needs 16",
    );
  });
});

describe('BYTES tensors', () => {
  const elements = [Buffer.from('hello'), Buffer.alloc(0), Buffer.from([0, 255, 10]), Buffer.from('é✓', 'utf8')];

  it('frames each element as a 4-byte little-endian length followed by its bytes', () => {
    const raw = encodeBytesElements([Buffer.from('ab'), Buffer.from([])]);
    expect([...raw]).toEqual([2, 0, 0, 0, 0x61, 0x62, 0, 0, 0, 0]);
  });

  it('round-trips elements, the empty one included, through encodeRaw and decodeRaw', () => {
    const decoded = decodeRaw('text', 'BYTES', [2, 2], encodeRaw(elements)) as Buffer[];
    expect(decoded.map((b) => [...b])).toEqual(elements.map((b) => [...b]));
  });

  it('reads a length prefix larger than 255 little-endian', () => {
    const big = Buffer.alloc(0x0102, 7);
    const raw = encodeBytesElements([big]);
    expect([...raw.subarray(0, 4)]).toEqual([0x02, 0x01, 0, 0]);
    expect(decodeBytesElements('blob', raw)[0].equals(big)).toBe(true);
  });

  it('decodes elements from contents at an unaligned offset', () => {
    const payload = encodeBytesElements([Buffer.from('x'), Buffer.from('yz')]);
    const backing = Buffer.concat([Buffer.from([9]), payload]);
    const decoded = decodeBytesElements('t', backing.subarray(1));
    expect(decoded.map(String)).toEqual(['x', 'yz']);
  });

  it('decodes empty contents as no elements', () => {
    expect(decodeBytesElements('t', new Uint8Array(0))).toEqual([]);
  });

  it('refuses contents that end inside a length prefix, naming the tensor and the offset', () => {
    const raw = Buffer.concat([encodeBytesElements([Buffer.from('abc')]), Buffer.from([1, 0])]);
    expect(() => decodeBytesElements('text', raw)).toThrow(TensorError);
    expect(() => decodeBytesElements('text', raw)).toThrow("input 'text': BYTES contents end inside a 4-byte length prefix at offset 7");
  });

  it('refuses an element whose declared length runs past the end of the contents', () => {
    const raw = Buffer.concat([encodeBytesElements([Buffer.from('ok')]), Buffer.from([10, 0, 0, 0]), Buffer.from('abc')]);
    expect(() => decodeBytesElements('text', raw)).toThrow(TensorError);
    expect(() => decodeBytesElements('text', raw)).toThrow("input 'text': BYTES element 1 declares 10 bytes but only 3 remain");
  });

  it('refuses a length prefix of 0xFFFFFFFF without allocating it', () => {
    const raw = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2]);
    expect(() => decodeRaw('text', 'BYTES', [1], raw)).toThrow("input 'text': BYTES element 0 declares 4294967295 bytes but only 2 remain");
  });

  it('refuses a BYTES element count that does not match the shape', () => {
    const raw = encodeBytesElements([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
    expect(() => decodeRaw('text', 'BYTES', [2], raw)).toThrow(TensorError);
    expect(() => decodeRaw('text', 'BYTES', [2], raw)).toThrow("input 'text': raw contents hold 3 BYTES elements, shape [2] needs 2");
  });
});
