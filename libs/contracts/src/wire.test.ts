/**
 * The router's wire-level readers and writers agree with the protobufjs codecs the rest of
 * the mesh (and any KServe client) uses.
 */
import { describe, expect, it } from 'vitest';
import type { MethodDefinition } from '@grpc/grpc-js';
import {
  encodeInferBatchRequest, encodeStreamInferResponse, inferenceService, itemsOf, readInferBatchResponse, readInferRequestHeader, workerService, WireFormatError, OUTPUT_SAMPLE_VALUES, RequestLimitError, REQUEST_LIMITS,
  type InferBatchRequest__Output, type InferBatchResponse, type ModelInferRequest, type ModelInferResponse, type ModelStreamInferResponse__Output,
} from './index.js';

type Codec = MethodDefinition<object, object>;
const inferMethod = () => inferenceService().ModelInfer as unknown as Codec;
const streamMethod = () => inferenceService().ModelStreamInfer as unknown as Codec;
const batchMethod = () => workerService().InferBatches as unknown as Codec;

const encodeRequest = (request: ModelInferRequest) => inferMethod().requestSerialize(request);
const encodeResponse = (response: ModelInferResponse) => inferMethod().responseSerialize(response);

const image: ModelInferRequest = {
  modelName: 'text-direction',
  modelVersion: '2',
  id: 'line-7',
  parameters: { priority: { int64Param: '3' } },
  inputs: [{ name: 'image', datatype: 'BYTES', shape: ['2'], parameters: { binary_data_size: { int64Param: '8' } } }],
  outputs: [{ name: 'softmax_0.tmp_0', parameters: { classification: { int64Param: '1' } } }],
  rawInputContents: [Buffer.alloc(70_000, 7)],
};

describe('readInferRequestHeader', () => {
  it('reads the model, version, id and each input\'s name, datatype and shape', () => {
    expect(readInferRequestHeader(encodeRequest(image))).toEqual({
      modelName: 'text-direction', modelVersion: '2', id: 'line-7', inputs: [{ name: 'image', datatype: 'BYTES', shape: [2] }],
    });
  });

  it('skips typed contents, parameters and raw contents without reading them', () => {
    const header = readInferRequestHeader(encodeRequest({
      modelName: 'iris',
      inputs: [
        { name: 'features', datatype: 'FP32', shape: ['3', '4'], contents: { fp32Contents: Array.from({ length: 12 }, (_, i) => i) } },
        { name: 'mask', datatype: 'BOOL', shape: ['3'], contents: { boolContents: [true, false, true] } },
      ],
    }));
    expect(header.inputs).toEqual([{ name: 'features', datatype: 'FP32', shape: [3, 4] }, { name: 'mask', datatype: 'BOOL', shape: [3] }]);
    expect(itemsOf(header)).toBe(3);
  });

  it('reads shapes sent unpacked, as some encoders do', () => {
    // inputs { name: "x" shape: 5 (varint) shape: 6 (varint) }
    const tensor = Buffer.from([0x0a, 0x01, 0x78, 0x18, 0x05, 0x18, 0x06]);
    const request = Buffer.concat([Buffer.from([0x2a, tensor.length]), tensor]);
    expect(readInferRequestHeader(request).inputs[0].shape).toEqual([5, 6]);
  });

  it('reads a negative dimension as -1 (the worker refuses it by name)', () => {
    expect(readInferRequestHeader(encodeRequest({ modelName: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: ['-3'] }] })).inputs[0].shape).toEqual([-1]);
  });

  it('gives empty fields for an empty request', () => {
    const header = readInferRequestHeader(Buffer.alloc(0));
    expect(header).toEqual({ modelName: '', modelVersion: '', id: '', inputs: [] });
    expect(itemsOf(header)).toBe(0);
  });

  it('skips fields it does not know, of every wire type', () => {
    const unknown = Buffer.from([
      0x98, 0x06, 0x01, // field 99 varint
      0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, // field 99 fixed64
      0x9d, 0x06, 1, 2, 3, 4, // field 99 fixed32
      0x9a, 0x06, 0x02, 0xff, 0xff, // field 99 bytes
    ]);
    const bytes = Buffer.concat([unknown, encodeRequest({ modelName: 'iris', id: 'a' })]);
    expect(readInferRequestHeader(bytes)).toMatchObject({ modelName: 'iris', id: 'a' });
  });

  it.each([
    ['a length past the end', Buffer.from([0x0a, 0x05, 0x61])],
    ['a truncated varint', Buffer.from([0x0a, 0x80])],
    ['field number 0', Buffer.from([0x02, 0x00])],
    ['a group wire type', Buffer.from([0x0b])],
    ['a tensor past the end', Buffer.from([0x2a, 0x10, 0x0a])],
    ['a known field of the wrong wire type (outputs as a varint)', Buffer.from([0x30, 0xc8, 0x01])],
    ['an input\'s name as a varint', Buffer.from([0x2a, 0x02, 0x08, 0x01])],
  ])('refuses %s with a WireFormatError', (_case, bytes) => {
    expect(() => readInferRequestHeader(bytes)).toThrow(WireFormatError);
  });
});

describe('readInferRequestHeader limits', () => {
  const long = (bytes: number) => 'n'.repeat(bytes);
  /** What was refused and why; the value itself must not be in the message. */
  const refusal = (request: ModelInferRequest | Buffer): string => {
    try {
      readInferRequestHeader(Buffer.isBuffer(request) ? request : encodeRequest(request));
    } catch (error) {
      expect(error).toBeInstanceOf(RequestLimitError);
      expect((error as Error).message).not.toContain(long(32));
      return (error as Error).message;
    }
    throw new Error('the request was read');
  };

  it('takes names, ids and versions at their limits', () => {
    const header = readInferRequestHeader(encodeRequest({
      modelName: long(REQUEST_LIMITS.nameBytes), modelVersion: long(REQUEST_LIMITS.versionBytes), id: long(REQUEST_LIMITS.nameBytes),
      inputs: [{ name: long(REQUEST_LIMITS.nameBytes), datatype: 'FP32', shape: ['1'] }],
      outputs: [{ name: long(REQUEST_LIMITS.nameBytes) }],
      parameters: { [long(REQUEST_LIMITS.nameBytes)]: { boolParam: true } },
    }));
    expect(header.modelName).toHaveLength(REQUEST_LIMITS.nameBytes);
  });

  it.each([
    ['model_name', { modelName: long(100_000) }, 'model_name is 100000 bytes, over the limit of 256'],
    ['model_version', { modelName: 'iris', modelVersion: long(65) }, 'model_version is 65 bytes, over the limit of 64'],
    ['id', { modelName: 'iris', id: long(257) }, 'id is 257 bytes, over the limit of 256'],
    ['an input name', { modelName: 'iris', inputs: [{ name: 'a' }, { name: long(300) }] }, 'inputs[1].name is 300 bytes, over the limit of 256'],
    ['a datatype', { modelName: 'iris', inputs: [{ name: 'a', datatype: long(40) }] }, 'inputs[0].datatype is 40 bytes, over the limit of 16'],
    ['an output name', { modelName: 'iris', outputs: [{ name: long(257) }] }, 'outputs[0].name is 257 bytes, over the limit of 256'],
    ['a parameters key', { modelName: 'iris', parameters: { [long(1000)]: { boolParam: true } } }, 'parameters key 0 is 1000 bytes, over the limit of 256'],
    ['an input\'s parameters key', { modelName: 'iris', inputs: [{ name: 'a', parameters: { [long(999)]: { boolParam: true } } }] }, 'inputs[0].parameters key 0 is 999 bytes, over the limit of 256'],
    ['an output\'s parameters key', { modelName: 'iris', outputs: [{ name: 'b', parameters: { [long(998)]: { boolParam: true } } }] }, 'outputs[0].parameters key 0 is 998 bytes, over the limit of 256'],
  ] as [string, ModelInferRequest, string][])('refuses %s over its limit, naming the field and the limit', (_case, request, message) => {
    expect(refusal(request)).toBe(message);
  });

  it('refuses too many inputs, outputs, parameters and dimensions', () => {
    expect(refusal({ inputs: Array.from({ length: REQUEST_LIMITS.tensors + 1 }, (_, i) => ({ name: `i${i}` })) })).toBe('the request has more than 1024 inputs');
    expect(refusal({ outputs: Array.from({ length: REQUEST_LIMITS.tensors + 1 }, (_, i) => ({ name: `o${i}` })) })).toBe('the request has more than 1024 outputs');
    const parameters = Object.fromEntries(Array.from({ length: REQUEST_LIMITS.parameters + 1 }, (_, i) => [`p${i}`, { boolParam: true }]));
    expect(refusal({ parameters })).toBe('parameters has more than 256 entries');
    expect(refusal({ inputs: [{ name: 'x', shape: Array.from({ length: REQUEST_LIMITS.dims + 1 }, () => '1') }] })).toBe('inputs[0].shape has more than 64 dimensions');
  });

  it('refuses a name that is not UTF-8', () => {
    // model_name: 0xff 0xfe
    expect(refusal(Buffer.from([0x0a, 0x02, 0xff, 0xfe]))).toBe('model_name is not valid UTF-8');
  });
});

describe('encodeInferBatchRequest', () => {
  it('is an InferBatchRequest whose requests decode to what the clients sent', () => {
    const iris: ModelInferRequest = { modelName: 'text-direction', id: '', inputs: [{ name: 'image', datatype: 'BYTES', shape: ['1'] }], rawInputContents: [Buffer.from([1, 0, 0, 0, 9])] };
    const bytes = encodeInferBatchRequest('text-direction', '2', [
      { request: encodeRequest(image), queuedUs: 1500, timeoutUs: 2 ** 40, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      { request: encodeRequest(iris), queuedUs: 0, timeoutUs: 0, traceparent: '' },
    ], 2 ** 33 + 5);
    const decoded = batchMethod().requestDeserialize(bytes) as InferBatchRequest__Output;
    expect(decoded.batchId).toBe(String(2 ** 33 + 5));
    // The worker gets each request's bytes as the client sent them.
    expect(Buffer.compare(decoded.requests[0].request, encodeRequest(image))).toBe(0);
    expect(decoded.modelName).toBe('text-direction');
    expect(decoded.modelVersion).toBe('2');
    expect(decoded.requests).toHaveLength(2);
    expect(decoded.requests[0]).toMatchObject({ queuedUs: '1500', timeoutUs: String(2 ** 40), traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    expect(decoded.requests[1]).toMatchObject({ queuedUs: '0', timeoutUs: '0', traceparent: '' });
    expect(inferMethod().requestDeserialize(decoded.requests[0].request)).toEqual(inferMethod().requestDeserialize(encodeRequest(image)));
    expect(inferMethod().requestDeserialize(decoded.requests[1].request)).toEqual(inferMethod().requestDeserialize(encodeRequest(iris)));
  });

  it('encodes names longer than 127 bytes and non-ASCII names', () => {
    const name = `modèle-${'x'.repeat(300)}`;
    const decoded = batchMethod().requestDeserialize(encodeInferBatchRequest(name, '', [])) as InferBatchRequest__Output;
    expect(decoded.modelName).toBe(name);
    expect(decoded.requests).toEqual([]);
  });

  it('asks for output samples on the requests that want them, and only those', () => {
    const decoded = batchMethod().requestDeserialize(encodeInferBatchRequest('m', '1', [
      { request: Buffer.from([1]), queuedUs: 0, timeoutUs: 5, traceparent: '', sampleOutputs: true },
      { request: Buffer.from([2]), queuedUs: 0, timeoutUs: 5, traceparent: '' },
    ])) as InferBatchRequest__Output;
    expect(decoded.requests.map((r) => r.sampleOutputs)).toEqual([true, false]);
  });

  it('keeps an empty request as an item', () => {
    const decoded = batchMethod().requestDeserialize(encodeInferBatchRequest('m', '1', [{ request: Buffer.alloc(0), queuedUs: 0, timeoutUs: 0, traceparent: '' }])) as InferBatchRequest__Output;
    expect(decoded.requests).toHaveLength(1);
    expect(decoded.requests[0].request).toEqual(Buffer.alloc(0));
  });
});

describe('readInferBatchResponse', () => {
  const answer: ModelInferResponse = {
    modelName: 'iris', modelVersion: '1', id: 'r1',
    outputs: [{ name: 'probabilities', datatype: 'FP32', shape: ['1', '3'] }],
    rawOutputContents: [Buffer.from(new Float32Array([0.1, 0.2, 0.7]).buffer)],
  };

  it('gives each answer\'s ModelInferResponse bytes as the worker encoded them, with its status and timings', () => {
    const response: InferBatchResponse = {
      batchId: 77,
      responses: [
        { response: answer, statusCode: 0, preprocessUs: '12', queueUs: '340', computeUs: '99', batchSize: 7 },
        { statusCode: 3, errorMessage: "input 'row': row 0 is not valid JSON" },
      ],
    };
    const read = readInferBatchResponse(batchMethod().responseSerialize(response));
    expect(read).toMatchObject({ batchId: 77, statusCode: 0, errorMessage: '' });
    const parts = read.answers;
    expect(parts).toHaveLength(2);
    expect(parts[0]).toMatchObject({ statusCode: 0, errorMessage: '', preprocessUs: 12, queueUs: 340, computeUs: 99, batchSize: 7 });
    expect(Buffer.compare(parts[0].response, encodeResponse(answer))).toBe(0);
    expect(parts[1]).toMatchObject({ statusCode: 3, errorMessage: "input 'row': row 0 is not valid JSON", response: Buffer.alloc(0) });
  });

  it('gives what each answer tells for the prediction record: drift bins, profile, predicted labels and the request id', () => {
    const response: InferBatchResponse = {
      responses: [
        { response: answer, driftBins: Buffer.from([0, 3, 1, 2]), profileId: 'p-1', predictedLabels: ['setosa', 'virginica'], requestId: '0190-assigned' },
        { statusCode: 3, errorMessage: 'bad row' },
      ],
    };
    const [told, failed] = readInferBatchResponse(batchMethod().responseSerialize(response)).answers;
    expect({ ...told, driftBins: [...told.driftBins] }).toMatchObject({ driftBins: [0, 3, 1, 2], profileId: 'p-1', predictedLabels: ['setosa', 'virginica'], requestId: '0190-assigned' });
    expect(failed).toMatchObject({ driftBins: Buffer.alloc(0), profileId: '', predictedLabels: [], requestId: '' });
  });

  it('gives each answer\'s output sample as the worker sent it, as FP32 values', () => {
    const response: InferBatchResponse = { responses: [{ response: answer, outputSample: [0.5, -2, 1e-7] }, { response: answer }] };
    const [sampled, unsampled] = readInferBatchResponse(batchMethod().responseSerialize(response)).answers;
    expect(sampled.outputSample).toEqual([...new Float32Array([0.5, -2, 1e-7])]);
    expect(unsampled.outputSample).toEqual([]);
  });

  it('keeps at most OUTPUT_SAMPLE_VALUES values of an output sample', () => {
    const values = Array.from({ length: OUTPUT_SAMPLE_VALUES + 10 }, (_, i) => i);
    const [read] = readInferBatchResponse(batchMethod().responseSerialize({ responses: [{ outputSample: values, requestId: 'after' }] } satisfies InferBatchResponse)).answers;
    expect(read.outputSample).toEqual(values.slice(0, OUTPUT_SAMPLE_VALUES));
    expect(read.requestId).toBe('after');
  });

  it('reads a batch refused as a whole: its id, status and message, and no answers', () => {
    const read = readInferBatchResponse(batchMethod().responseSerialize({ batchId: 9, statusCode: 14, errorMessage: 'worker w1 is shutting down' } satisfies InferBatchResponse));
    expect(read).toEqual({ batchId: 9, statusCode: 14, errorMessage: 'worker w1 is shutting down', answers: [] });
  });

  it('refuses a truncated response', () => {
    const bytes = batchMethod().responseSerialize({ responses: [{ response: answer }] } satisfies InferBatchResponse);
    expect(() => readInferBatchResponse(bytes.subarray(0, bytes.length - 3))).toThrow(WireFormatError);
  });
});

describe('encodeStreamInferResponse', () => {
  it('is a ModelStreamInferResponse carrying the answer as infer_response', () => {
    const answer: ModelInferResponse = { modelName: 'iris', id: 'r9', outputs: [{ name: 'label', datatype: 'INT64', shape: ['1'] }], rawOutputContents: [Buffer.alloc(8, 1)] };
    const decoded = streamMethod().responseDeserialize(encodeStreamInferResponse(encodeResponse(answer))) as ModelStreamInferResponse__Output;
    expect(decoded.errorMessage).toBe('');
    expect(decoded.inferResponse).toEqual(inferMethod().responseDeserialize(encodeResponse(answer)));
  });
});
