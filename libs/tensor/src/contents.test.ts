/**
 * Typed `contents` (InferTensorContents) as the gRPC loader decodes them: camelCase
 * fields, int64 values as strings.
 */
import { describe, expect, it } from 'vitest';
import { TensorError, contentsField, decodeContents, hasContents } from './index.js';

describe('decodeContents', () => {
  it('reads BOOL from bool_contents as one byte per element, 1 for true', () => {
    const data = decodeContents('mask', 'BOOL', [3], { boolContents: [true, false, true] });
    expect(data).toBeInstanceOf(Uint8Array);
    expect(Array.from(data as Uint8Array)).toEqual([1, 0, 1]);
  });

  it.each([
    ['UINT8', Uint8Array, [0, 200, 255]],
    ['UINT16', Uint16Array, [0, 1000, 65535]],
    ['UINT32', Uint32Array, [0, 70000, 4294967295]],
  ] as const)('reads %s from uint_contents', (datatype, Type, values) => {
    const data = decodeContents('x', datatype, [3], { uintContents: [...values] });
    expect(data).toBeInstanceOf(Type);
    expect(Array.from(data as InstanceType<typeof Type>)).toEqual(values);
  });

  it.each([
    ['INT8', Int8Array, [-128, 0, 127]],
    ['INT16', Int16Array, [-32768, 5, 32767]],
    ['INT32', Int32Array, [-2147483648, -1, 2147483647]],
  ] as const)('reads %s from int_contents', (datatype, Type, values) => {
    const data = decodeContents('x', datatype, [3], { intContents: [...values] });
    expect(data).toBeInstanceOf(Type);
    expect(Array.from(data as InstanceType<typeof Type>)).toEqual(values);
  });

  it('reads INT64 from int64_contents given as strings (the loader\'s longs), beyond 2^53 exactly', () => {
    const data = decodeContents('ids', 'INT64', [3], { int64Contents: ['-9223372036854775808', '9007199254740993', 7] });
    expect(data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(data as BigInt64Array)).toEqual([-9223372036854775808n, 9007199254740993n, 7n]);
  });

  it('reads UINT64 from uint64_contents given as strings, up to 2^64 - 1', () => {
    const data = decodeContents('ids', 'UINT64', [2], { uint64Contents: ['18446744073709551615', '0'] });
    expect(data).toBeInstanceOf(BigUint64Array);
    expect(Array.from(data as BigUint64Array)).toEqual([18446744073709551615n, 0n]);
  });

  it('reads FP32 from fp32_contents', () => {
    const data = decodeContents('x', 'FP32', [2, 2], { fp32Contents: [0.5, -1, 2.25, 0] });
    expect(data).toBeInstanceOf(Float32Array);
    expect(Array.from(data as Float32Array)).toEqual([0.5, -1, 2.25, 0]);
  });

  it('reads FP64 from fp64_contents', () => {
    const data = decodeContents('x', 'FP64', [2], { fp64Contents: [Math.PI, -1e-300] });
    expect(data).toBeInstanceOf(Float64Array);
    expect(Array.from(data as Float64Array)).toEqual([Math.PI, -1e-300]);
  });

  it('reads BYTES from bytes_contents as Buffers over the same memory', () => {
    const element = new Uint8Array([1, 2, 3]);
    const data = decodeContents('blob', 'BYTES', [2], { bytesContents: [element, new Uint8Array(0)] }) as Buffer[];
    expect(data.every((b) => Buffer.isBuffer(b))).toBe(true);
    expect(data.map((b) => [...b])).toEqual([[1, 2, 3], []]);
    element[0] = 9;
    expect(data[0][0]).toBe(9);
  });

  it('ignores the other fields when they are empty, as the loader\'s defaults leave them', () => {
    const contents = {
      boolContents: [], intContents: [4, 5], int64Contents: [], uintContents: [], uint64Contents: [],
      fp32Contents: [], fp64Contents: [], bytesContents: [],
    };
    expect(Array.from(decodeContents('x', 'INT32', [2], contents) as Int32Array)).toEqual([4, 5]);
  });

  it('refuses values in a field that does not belong to the datatype, naming both fields', () => {
    expect(() => decodeContents('flags', 'BOOL', [2], { intContents: [1, 0] })).toThrow(TensorError);
    expect(() => decodeContents('flags', 'BOOL', [2], { intContents: [1, 0] })).toThrow(
      "input 'flags': datatype BOOL expects contents.bool_contents, got contents.int_contents",
    );
  });

  it('refuses values in the right field when another field also holds values', () => {
    expect(() => decodeContents('x', 'UINT8', [1], { uintContents: [1], boolContents: [true] })).toThrow(
      "input 'x': datatype UINT8 expects contents.uint_contents, got contents.bool_contents",
    );
  });

  it('refuses FP16, which has no typed field, pointing to raw_input_contents', () => {
    expect(() => decodeContents('half', 'FP16', [1], { uintContents: [0x3c00] })).toThrow(
      "input 'half': FP16 has no typed contents field; send it in raw_input_contents",
    );
  });

  it('refuses an element count that does not match the shape, naming the field and shape', () => {
    expect(() => decodeContents('x', 'INT32', [2, 2], { intContents: [1, 2, 3] })).toThrow(TensorError);
    expect(() => decodeContents('x', 'INT32', [2, 2], { intContents: [1, 2, 3] })).toThrow(
      "input 'x': contents.int_contents has 3 elements, shape [2, 2] needs 4",
    );
  });

  it('refuses missing contents for a shape that needs elements', () => {
    expect(() => decodeContents('x', 'BOOL', [1], {})).toThrow("input 'x': contents.bool_contents has 0 elements, shape [1] needs 1");
  });
});

describe('hasContents', () => {
  it('is false for missing contents and for contents with only empty fields', () => {
    expect(hasContents(undefined)).toBe(false);
    expect(hasContents(null)).toBe(false);
    expect(hasContents({ fp32Contents: [], bytesContents: [] })).toBe(false);
  });

  it('is true when any field holds a value', () => {
    expect(hasContents({ fp32Contents: [], boolContents: [false] })).toBe(true);
  });
});

describe('contentsField', () => {
  it('names the typed field each datatype uses, and none for FP16', () => {
    expect(contentsField('BOOL')).toBe('boolContents');
    expect(contentsField('UINT16')).toBe('uintContents');
    expect(contentsField('INT8')).toBe('intContents');
    expect(contentsField('INT64')).toBe('int64Contents');
    expect(contentsField('UINT64')).toBe('uint64Contents');
    expect(contentsField('FP32')).toBe('fp32Contents');
    expect(contentsField('FP64')).toBe('fp64Contents');
    expect(contentsField('BYTES')).toBe('bytesContents');
    expect(contentsField('FP16')).toBeUndefined();
  });
});

describe('field names in messages', () => {
  it('names fields with digits as the proto does', () => {
    expect(() => decodeContents('x', 'FP32', [2], { fp32Contents: [1] })).toThrow("input 'x': contents.fp32_contents has 1 elements, shape [2] needs 2");
    expect(() => decodeContents('ids', 'INT64', [1], { intContents: [1] })).toThrow("input 'ids': datatype INT64 expects contents.int64_contents, got contents.int_contents");
    expect(() => decodeContents('x', 'INT32', [1], { fp64Contents: [1] })).toThrow("input 'x': datatype INT32 expects contents.int_contents, got contents.fp64_contents");
  });
});
