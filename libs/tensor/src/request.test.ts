/**
 * decodeInputs: the protocol's rules for the inputs of a ModelInferRequest, with inputs
 * shaped as the gRPC loader decodes them (shape as int64 strings, every typed field
 * present and empty by default).
 */
import { describe, expect, it } from 'vitest';
import { TensorError, decodeInputs, encodeRaw, encodeBytesElements, type TypedContents, type WireInput } from './index.js';

function emptyContents(): TypedContents {
  return { boolContents: [], intContents: [], int64Contents: [], uintContents: [], uint64Contents: [], fp32Contents: [], fp64Contents: [], bytesContents: [] };
}

function input(name: string, datatype: string, shape: string[], contents: TypedContents = {}): WireInput {
  return { name, datatype, shape, contents: { ...emptyContents(), ...contents } };
}

describe('decodeInputs', () => {
  it('decodes every input from raw_input_contents, in order', () => {
    const tensors = decodeInputs(
      [input('x', 'FP32', ['1', '2']), input('text', 'BYTES', ['2']), input('ids', 'INT64', ['1'])],
      [encodeRaw(Float32Array.from([1, 2])), encodeBytesElements([Buffer.from('a'), Buffer.from('bc')]), encodeRaw(BigInt64Array.from([-5n]))],
    );
    expect(tensors.map((t) => [t.name, t.datatype, t.shape])).toEqual([
      ['x', 'FP32', [1, 2]],
      ['text', 'BYTES', [2]],
      ['ids', 'INT64', [1]],
    ]);
    expect(Array.from(tensors[0].data as Float32Array)).toEqual([1, 2]);
    expect((tensors[1].data as Buffer[]).map(String)).toEqual(['a', 'bc']);
    expect(Array.from(tensors[2].data as BigInt64Array)).toEqual([-5n]);
  });

  it('decodes every input from typed contents when raw_input_contents is empty', () => {
    const tensors = decodeInputs([input('x', 'FP64', ['2'], { fp64Contents: [0.5, 1.5] }), input('ok', 'BOOL', ['1'], { boolContents: [true] })], []);
    expect(Array.from(tensors[0].data as Float64Array)).toEqual([0.5, 1.5]);
    expect(Array.from(tensors[1].data as Uint8Array)).toEqual([1]);
  });

  it('decodes a request without inputs as no tensors', () => {
    expect(decodeInputs([], [])).toEqual([]);
  });

  it('refuses a request that uses both encodings at once', () => {
    const inputs = [input('a', 'INT32', ['1']), input('b', 'INT32', ['1'], { intContents: [2] })];
    const raw = [encodeRaw(Int32Array.from([1])), new Uint8Array(0)];
    expect(() => decodeInputs(inputs, raw)).toThrow(TensorError);
    expect(() => decodeInputs(inputs, raw)).toThrow('request sets both raw_input_contents and typed contents; use one encoding per request');
  });

  it('refuses fewer raw_input_contents entries than inputs', () => {
    const inputs = [input('a', 'INT32', ['1']), input('b', 'INT32', ['1'])];
    expect(() => decodeInputs(inputs, [encodeRaw(Int32Array.from([1]))])).toThrow(TensorError);
    expect(() => decodeInputs(inputs, [encodeRaw(Int32Array.from([1]))])).toThrow('request has 2 inputs but 1 raw_input_contents entries');
  });

  it('refuses more raw_input_contents entries than inputs', () => {
    const raw = [encodeRaw(Int32Array.from([1])), encodeRaw(Int32Array.from([2]))];
    expect(() => decodeInputs([input('a', 'INT32', ['1'])], raw)).toThrow('request has 1 inputs but 2 raw_input_contents entries');
  });

  it('refuses raw contents whose size does not match the input\'s shape, naming the input', () => {
    const inputs = [input('a', 'INT32', ['1']), input('pixels', 'FP32', ['1', '3'])];
    const raw = [encodeRaw(Int32Array.from([1])), encodeRaw(Float32Array.from([1, 2]))];
    expect(() => decodeInputs(inputs, raw)).toThrow("input 'pixels': raw contents are 8 bytes, FP32 shape [1, 3] needs 12");
  });

  it('refuses an unknown datatype, listing the known ones', () => {
    expect(() => decodeInputs([input('x', 'FLOAT32', ['1'])], [new Uint8Array(4)])).toThrow(
      "input 'x': unknown datatype 'FLOAT32' (one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)",
    );
  });

  it('quotes a long unknown datatype only in part', () => {
    expect(() => decodeInputs([input('x', 'Q'.repeat(100_000), ['1'])], [new Uint8Array(4)])).toThrow(/^input 'x': unknown datatype 'Q{16}…' \(one of /);
  });

  it('refuses an input without a name, giving its position', () => {
    expect(() => decodeInputs([input('a', 'INT32', ['1']), input('', 'INT32', ['1'])], [new Uint8Array(4), new Uint8Array(4)])).toThrow(
      'input 1 has no name',
    );
  });

  it('refuses two inputs with the same name', () => {
    expect(() => decodeInputs([input('a', 'INT32', ['1']), input('a', 'INT32', ['1'])], [new Uint8Array(4), new Uint8Array(4)])).toThrow(
      "input 'a' appears twice",
    );
  });

  it('refuses an invalid shape dimension, naming the input', () => {
    expect(() => decodeInputs([input('x', 'INT32', ['-1'])], [new Uint8Array(4)])).toThrow("input 'x': shape [-1] has an invalid dimension '-1'");
  });

  it('refuses typed contents in the wrong field for the datatype', () => {
    expect(() => decodeInputs([input('x', 'INT8', ['1'], { boolContents: [true] })], [])).toThrow(
      "input 'x': datatype INT8 expects contents.int_contents, got contents.bool_contents",
    );
  });

  it('refuses typed contents whose count does not match the shape', () => {
    expect(() => decodeInputs([input('x', 'UINT32', ['3'], { uintContents: [1, 2] })], [])).toThrow(
      "input 'x': contents.uint_contents has 2 elements, shape [3] needs 3",
    );
  });

  it('accepts inputs whose contents are null, as for a raw request', () => {
    const tensors = decodeInputs([{ name: 'x', datatype: 'UINT8', shape: ['2'], contents: null }], [Uint8Array.from([1, 2])]);
    expect(Array.from(tensors[0].data as Uint8Array)).toEqual([1, 2]);
  });
});
