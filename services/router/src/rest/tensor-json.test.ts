import { describe, expect, it } from 'vitest';
import { decodeBytesElements } from '@infermesh/tensor';
import { decodeToJson, encodeJsonData, flattenData, halfToNumber } from './tensor-json.js';
import { parseJson } from './infer-request.js';

const thrown = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('did not throw');
};

describe('flattenData', () => {
  it('takes flat data of the shape\'s element count', () => {
    expect(flattenData('x', [2, 2], [1, 2, 3, 4])).toEqual([1, 2, 3, 4]);
  });

  it('flattens data nested as deep as the shape, row-major', () => {
    expect(flattenData('x', [2, 3], [[1, 2, 3], [4, 5, 6]])).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses flat data of another count, naming the input and the shape', () => {
    expect(thrown(() => flattenData('features', [1, 4], [1, 2, 3]))).toBe("input 'features': data has 3 elements, shape [1, 4] needs 4");
  });

  it('refuses nested data shallower or deeper than the shape', () => {
    expect(thrown(() => flattenData('x', [2, 2, 1], [[1, 2], [3, 4]]))).toMatch(/^input 'x': data\[0\]\[0\] is 1 where shape \[2, 2, 1\] needs an array/);
    expect(thrown(() => flattenData('x', [2], [[1], [2]]))).toMatch(/^input 'x': data\[0\] is nested deeper than shape \[2\]/);
  });

  it('refuses a nested level of the wrong length, naming the dimension', () => {
    expect(thrown(() => flattenData('x', [2, 3], [[1, 2, 3], [4, 5]]))).toBe("input 'x': data[1] has 2 elements, dimension 1 of shape [2, 3] is 3");
  });

  it('refuses data that is not an array', () => {
    expect(thrown(() => flattenData('x', [1], 'abc'))).toBe("input 'x': data must be an array, not the string \"abc\"");
  });
});

describe('encodeJsonData', () => {
  it('writes FP32 little-endian', () => {
    const raw = encodeJsonData('x', 'FP32', [2], [1.5, -2]);
    expect([raw.readFloatLE(0), raw.readFloatLE(4)]).toEqual([1.5, -2]);
  });

  it('writes INT64 exactly and refuses integers out of range', () => {
    const raw = encodeJsonData('x', 'INT64', [2], [-(2 ** 53), 7]);
    expect([raw.readBigInt64LE(0), raw.readBigInt64LE(8)]).toEqual([-(2n ** 53n), 7n]);
    expect(thrown(() => encodeJsonData('x', 'UINT64', [1], [-1]))).toMatch(/^input 'x': element 0 is -1, not an integer from 0 to/);
  });

  it('keeps INT64 / UINT64 beyond 2^53 digit for digit from the JSON text to the bytes and back', () => {
    const json = Buffer.from('{"data": [9007199254740993, -9223372036854775808, 18446744073709551615, 12345678901234567890123]}');
    const { data } = parseJson(json, 'body') as { data: unknown[] };
    const raw = encodeJsonData('x', 'INT64', [2], data.slice(0, 2));
    expect([raw.readBigInt64LE(0), raw.readBigInt64LE(8)]).toEqual([9007199254740993n, -(2n ** 63n)]);
    expect(JSON.stringify(decodeToJson('x', 'INT64', [2], raw))).toBe('[9007199254740993,-9223372036854775808]');
    const unsigned = encodeJsonData('x', 'UINT64', [1], [data[2]]);
    expect(JSON.stringify(decodeToJson('x', 'UINT64', [1], unsigned))).toBe('[18446744073709551615]');
    expect(thrown(() => encodeJsonData('x', 'UINT64', [1], [data[3]]))).toMatch(/element 0 is 12345678901234567890123, not an integer from 0 to/);
    expect(thrown(() => encodeJsonData('x', 'INT32', [1], [data[0]]))).toBe("input 'x': element 0 is 9007199254740993, not an integer from -2147483648 to 2147483647 (datatype INT32)");
  });

  it('refuses non-integers and out-of-range values for integer types, naming the element', () => {
    expect(thrown(() => encodeJsonData('ids', 'INT32', [3], [1, 2.5, 3]))).toBe("input 'ids': element 1 is 2.5, not an integer (datatype INT32)");
    expect(thrown(() => encodeJsonData('ids', 'UINT8', [1], [256]))).toBe("input 'ids': element 0 is 256, not an integer from 0 to 255 (datatype UINT8)");
    expect(thrown(() => encodeJsonData('ids', 'INT8', [1], [null]))).toBe("input 'ids': element 0 is null, not an integer (datatype INT8)");
  });

  it('refuses strings in numeric tensors', () => {
    expect(thrown(() => encodeJsonData('features', 'FP32', [1], ['1.0']))).toBe("input 'features': element 0 is the string \"1.0\", not a number (datatype FP32)");
  });

  it('refuses numbers beyond FP32', () => {
    expect(thrown(() => encodeJsonData('x', 'FP32', [1], [1e39]))).toMatch(/element 0 is 1e\+39, not a number within FP32's range/);
  });

  it('writes BOOL as one byte each and takes only booleans', () => {
    expect([...encodeJsonData('b', 'BOOL', [2], [true, false])]).toEqual([1, 0]);
    expect(thrown(() => encodeJsonData('b', 'BOOL', [1], [1]))).toBe("input 'b': element 0 is 1, not true or false (datatype BOOL)");
  });

  it('writes BYTES as length-prefixed UTF-8 strings', () => {
    const raw = encodeJsonData('row', 'BYTES', [2], ['{"a":1}', 'é']);
    expect(decodeBytesElements('row', raw).map(String)).toEqual(['{"a":1}', 'é']);
    expect(thrown(() => encodeJsonData('row', 'BYTES', [1], [{}]))).toBe("input 'row': element 0 is an object, not a string (datatype BYTES)");
  });

  it('refuses FP16 in JSON, pointing to the binary data extension', () => {
    expect(thrown(() => encodeJsonData('h', 'FP16', [1], [1]))).toMatch(/FP16 data cannot be sent as JSON.*binary_data_size/);
  });
});

describe('decodeToJson', () => {
  it('reads numbers, booleans, INT64 as numbers and BYTES as strings', () => {
    const int64 = Buffer.alloc(16);
    int64.writeBigInt64LE(-3n, 0);
    int64.writeBigInt64LE(2n ** 40n, 8);
    expect(decodeToJson('o', 'INT64', [2], int64)).toEqual([-3, 2 ** 40]);
    expect(decodeToJson('o', 'BOOL', [2], Buffer.from([0, 1]))).toEqual([false, true]);
    expect(decodeToJson('o', 'BYTES', [1], encodeJsonData('o', 'BYTES', [1], ['0.9:1:upright']))).toEqual(['0.9:1:upright']);
  });

  it('writes non-finite floats as null (JSON has no NaN)', () => {
    const raw = Buffer.alloc(8);
    raw.writeFloatLE(NaN, 0);
    raw.writeFloatLE(0.5, 4);
    expect(decodeToJson('o', 'FP32', [2], raw)).toEqual([null, 0.5]);
  });

  it('widens FP16', () => {
    expect([0x3c00, 0xc000, 0x3555].map(halfToNumber)).toEqual([1, -2, 0.333251953125]);
  });

  it('refuses raw bytes that do not fit the shape', () => {
    expect(thrown(() => decodeToJson('o', 'FP32', [2], Buffer.alloc(4)))).toMatch(/'o'.*4 bytes.*needs 8/);
  });
});
