/** Answers a REST client must refuse clearly instead of misreading. */
import { describe, expect, it } from 'vitest';
import { decodeInferResponse } from './codec.js';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('reading REST infer answers', () => {
  it('reads nested JSON data row-major', () => {
    const result = decodeInferResponse(json({ model_name: 'm', outputs: [{ name: 'y', datatype: 'INT32', shape: [2, 2], data: [[1, 2], [3, 4]] }] }), undefined);
    expect(result.output('y').data).toEqual(new Int32Array([1, 2, 3, 4]));
  });

  it('reads UINT64 beyond 2^53 exactly', () => {
    const body = Buffer.from('{"outputs":[{"name":"n","datatype":"UINT64","shape":[1],"data":[18446744073709551615]}]}');
    expect(decodeInferResponse(body, undefined).output('n').data).toEqual(new BigUint64Array([18446744073709551615n]));
  });

  it.each([
    ['not JSON', Buffer.from('<html>'), undefined, /not JSON/],
    ['no outputs', json({ model_name: 'm' }), undefined, /no outputs array/],
    ['a datatype outside the protocol', json({ outputs: [{ name: 'y', datatype: 'FLOAT', shape: [1], data: [1] }] }), undefined, /"FLOAT", not one of the protocol's/],
    ['data that does not fill the shape', json({ outputs: [{ name: 'y', datatype: 'FP32', shape: [3], data: [1, 2] }] }), undefined, /2 elements for shape \[3\]/],
    ['a header length past the body', json({ outputs: [] }), '9999', /Inference-Header-Content-Length is "9999"/],
    ['binary data past the body', json({ outputs: [{ name: 'y', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4 } }] }), undefined, /runs past the 0 bytes left/],
    ['INT64 outside its range', Buffer.from('{"outputs":[{"name":"n","datatype":"INT64","shape":[1],"data":[9223372036854775808]}]}'), undefined, /outside INT64/],
  ])('refuses %s as INTERNAL naming what is wrong', (_what, body, header, message) => {
    expect(() => decodeInferResponse(body, header)).toThrow(expect.objectContaining({ code: 'INTERNAL', message: expect.stringMatching(message) }));
  });
});
