import { describe, expect, it } from 'vitest';
import { messageCodec, readInferRequestHeader, type ModelInferRequest__Output } from '@infermesh/contracts';
import { encodeBytesElements } from '@infermesh/tensor';
import { restInferRequest, splitBody } from './infer-request.js';

const LIMITS = { maxBodyBytes: 1024 * 1024, maxJsonHeaderBytes: 4096 };
const decode = (bytes: Uint8Array) => messageCodec<unknown, ModelInferRequest__Output>('inference.ModelInferRequest').decode(bytes);
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

function binaryBody(header: unknown, ...parts: Buffer[]): { body: Buffer; length: string } {
  const text = json(header);
  return { body: Buffer.concat([text, ...parts]), length: String(text.length) };
}

const thrown = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('did not throw');
};

describe('restInferRequest', () => {
  it('is the ModelInferRequest a gRPC client sends: raw_input_contents, names, parameters', () => {
    const request = restInferRequest('iris', '1', json({
      id: 'r1', parameters: { priority: 2, tag: 'a', sampled: true },
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [[5.1, 3.5, 1.4, 0.2]] }],
      outputs: [{ name: 'probabilities', parameters: { classification: 2 } }],
    }), undefined, LIMITS);
    const decoded = decode(request.bytes);
    expect(decoded).toMatchObject({
      modelName: 'iris', modelVersion: '1', id: 'r1',
      parameters: { priority: { int64Param: '2' }, tag: { stringParam: 'a' }, sampled: { boolParam: true } },
      inputs: [{ name: 'features', datatype: 'FP32', shape: ['1', '4'] }],
      outputs: [{ name: 'probabilities', parameters: { classification: { int64Param: '2' } } }],
    });
    const raw = decoded.rawInputContents[0];
    expect([0, 4, 8, 12].map((at) => raw.readFloatLE(at))).toEqual([5.1, 3.5, 1.4, 0.2].map((v) => Math.fround(v)));
    // The router's wire reader reads it as it reads a gRPC client's.
    expect(readInferRequestHeader(request.bytes)).toMatchObject({ modelName: 'iris', id: 'r1', inputs: [{ name: 'features', shape: [1, 4] }] });
  });

  it('takes binary inputs after the JSON header and keeps REST-only parameters to itself', () => {
    const png = Buffer.from('not really a png');
    const element = encodeBytesElements([png]);
    const { body, length } = binaryBody({
      parameters: { binary_data_output: true },
      inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: element.length } }],
      outputs: [{ name: 'probabilities', parameters: { binary_data: false } }, { name: 'label' }],
    }, element);
    const request = restInferRequest('text-direction', '', body, length, LIMITS);
    const decoded = decode(request.bytes);
    expect(decoded.rawInputContents[0]).toEqual(element);
    expect(decoded.parameters).toEqual({});
    expect(decoded.inputs[0].parameters).toEqual({});
    expect(decoded.outputs[0].parameters).toEqual({});
    expect(request.binaryOutput('probabilities')).toBe(false);
    expect(request.binaryOutput('label')).toBe(true);
  });

  it.each([
    ['a body that is not JSON', () => restInferRequest('m', '', Buffer.from('{"inputs": ['), undefined, LIMITS), /^the request body is not JSON: /],
    ['no inputs', () => restInferRequest('m', '', json({ inputs: [] }), undefined, LIMITS), /^inputs must be a non-empty array$/],
    ['an unknown datatype', () => restInferRequest('m', '', json({ inputs: [{ name: 'x', shape: [1], datatype: 'FLOAT', data: [1] }] }), undefined, LIMITS), /^input 'x': datatype 'FLOAT' is not a KServe v2 datatype$/],
    ['a negative dimension', () => restInferRequest('m', '', json({ inputs: [{ name: 'x', shape: [-1], datatype: 'FP32', data: [1] }] }), undefined, LIMITS), /^input 'x': shape \[-1\] has a dimension that is not a non-negative integer$/],
    ['a shape of 65 dimensions', () => restInferRequest('m', '', json({ inputs: [{ name: 'x', shape: Array(65).fill(1), datatype: 'FP32', data: [1] }] }), undefined, LIMITS), /more than 64 dimensions/],
    ['more than 1024 inputs', () => restInferRequest('m', '', json({ inputs: Array.from({ length: 1025 }, (_, i) => ({ name: `x${i}`, shape: [1], datatype: 'FP32', data: [1] })) }), undefined, LIMITS), /^the request has more than 1024 inputs$/],
    ['an input name over 256 bytes', () => restInferRequest('m', '', json({ inputs: [{ name: 'x'.repeat(257), shape: [1], datatype: 'FP32', data: [1] }] }), undefined, LIMITS), /^inputs\[0\]\.name is 257 bytes, over the limit of 256$/],
    ['an id over 256 bytes', () => restInferRequest('m', '', json({ id: 'i'.repeat(300), inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }), undefined, LIMITS), /^id is 300 bytes, over the limit of 256$/],
    ['data and binary_data_size both', () => restInferRequest('m', '', json({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1], parameters: { binary_data_size: 4 } }] }), undefined, LIMITS), /^input 'x' has both data and binary_data_size/],
    ['an input without data', () => restInferRequest('m', '', json({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32' }] }), undefined, LIMITS), /^input 'x' has no data/],
    ['a fractional parameter', () => restInferRequest('m', '', json({ parameters: { t: 0.5 }, inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }), undefined, LIMITS), /^parameters\.t must be a boolean, a string or an integer/],
    ['a data count that is not the shape\'s', () => restInferRequest('m', '', json({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3] }] }), undefined, LIMITS), /^input 'features': data has 3 elements, shape \[1, 4\] needs 4$/],
  ])('refuses %s, saying what was wrong', (_what, fn, message) => {
    expect(thrown(fn)).toMatch(message);
  });

  it('checks every input\'s header before converting any data', () => {
    // The first input's data is wrong too; the second's datatype is named first as the headers are checked first.
    expect(thrown(() => restInferRequest('m', '', json({ inputs: [{ name: 'a', shape: [1], datatype: 'FP32', data: ['x'] }, { name: 'b', shape: [1], datatype: 'NOPE', data: [1] }] }), undefined, LIMITS)))
      .toMatch(/^input 'b': datatype 'NOPE'/);
  });
});

describe('the binary data extension', () => {
  const header = (size: number) => ({ inputs: [{ name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: size } }] });

  it('refuses binary sizes that do not add up to the body after the JSON header', () => {
    const { body, length } = binaryBody(header(8), Buffer.alloc(12));
    expect(thrown(() => restInferRequest('m', '', body, length, LIMITS))).toBe('inputs declare 8 bytes of binary data (binary_data_size), the body has 12 after its JSON header');
  });

  it('refuses binary_data_size without the Inference-Header-Content-Length header', () => {
    expect(thrown(() => restInferRequest('m', '', json(header(8)), undefined, LIMITS))).toMatch(/no Inference-Header-Content-Length header/);
  });

  it('refuses binary data that does not fit the input\'s shape, naming the input', () => {
    const { body, length } = binaryBody(header(12), Buffer.alloc(12));
    expect(thrown(() => restInferRequest('m', '', body, length, LIMITS))).toBe("input 'x': binary data is 12 bytes, FP32 shape [2] needs 8");
  });

  it('refuses BYTES binary data whose length prefixes run past it', () => {
    const broken = Buffer.from([10, 0, 0, 0, 1, 2]);
    const { body, length } = binaryBody({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: broken.length } }] }, broken);
    expect(thrown(() => restInferRequest('m', '', body, length, LIMITS))).toMatch(/^input 'image': binary BYTES data is not length-prefixed elements: element 0 runs past/);
  });

  it('refuses a header length beyond the body, over the JSON header limit, or not a number', () => {
    expect(thrown(() => splitBody(Buffer.alloc(10), '11', LIMITS))).toBe('Inference-Header-Content-Length is 11, beyond the 10-byte body');
    expect(thrown(() => splitBody(Buffer.alloc(10_000), '5000', LIMITS))).toBe('Inference-Header-Content-Length is 5000, over the JSON header limit of 4096 bytes');
    expect(thrown(() => splitBody(Buffer.alloc(10), '-1', LIMITS))).toMatch(/must be a byte count/);
  });
});
