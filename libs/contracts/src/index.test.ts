/**
 * The contracts: the .proto files loaded once for gRPC, and messageCodec for the same
 * messages outside gRPC, decoding to the shape the gRPC loader gives (the generated
 * __Output types): camelCase fields, int64 as strings, defaults present.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MethodDefinition } from '@grpc/grpc-js';
import {
  LOADER_OPTIONS, PROTO_FILES, PROTO_ROOT, contracts, inferenceService, messageCodec, monitorService, packageDefinition, preprocessorService, workerService,
  type ModelInferRequest, type ModelInferRequest__Output, type PredictionRecord, type PredictionRecord__Output,
} from './index.js';

const inferRequest: ModelInferRequest = {
  modelName: 'iris',
  modelVersion: '1',
  id: 'req-1',
  parameters: { priority: { int64Param: '9007199254740993' }, tag: { stringParam: 'a' }, flag: { boolParam: false } },
  inputs: [
    { name: 'features', datatype: 'FP32', shape: [-1, 4], contents: { fp32Contents: [0.5, 1.5] } },
    { name: 'text', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: { int64Param: 3 } } },
  ],
  outputs: [{ name: 'probabilities' }],
  rawInputContents: [Buffer.from([1, 2, 3]), Buffer.alloc(0)],
};

function method(definition: ReturnType<typeof inferenceService>, name: string): MethodDefinition<object, object> {
  return definition[name] as unknown as MethodDefinition<object, object>;
}

describe('proto files', () => {
  it('are all under PROTO_ROOT', () => {
    for (const file of PROTO_FILES) expect(existsSync(join(PROTO_ROOT, file)), file).toBe(true);
  });

  it('are loaded with camelCase fields, longs and enums as strings, defaults and oneofs', () => {
    expect(LOADER_OPTIONS).toMatchObject({ keepCase: false, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_ROOT] });
  });
});

describe('contracts', () => {
  it('loads once and returns the same object each time', () => {
    expect(contracts()).toBe(contracts());
    expect(packageDefinition()).toBe(packageDefinition());
  });

  it('has client constructors for the three services', () => {
    const c = contracts();
    expect(typeof c.inference.GRPCInferenceService).toBe('function');
    expect(typeof c.infermesh.v1.Preprocessor).toBe('function');
    expect(typeof c.infermesh.v1.Monitor).toBe('function');
  });

  it('defines every KServe v2 RPC of GRPCInferenceService under its full path', () => {
    const definition = inferenceService();
    for (const name of ['ServerLive', 'ServerReady', 'ModelReady', 'ServerMetadata', 'ModelMetadata', 'ModelInfer']) {
      expect(method(definition, name)).toMatchObject({ path: `/inference.GRPCInferenceService/${name}`, requestStream: false, responseStream: false });
    }
  });

  it('defines ModelStreamInfer as a bidirectional stream', () => {
    expect(method(inferenceService(), 'ModelStreamInfer')).toMatchObject({ requestStream: true, responseStream: true });
  });

  it('defines the Preprocessor, Worker and Monitor services under infermesh.v1', () => {
    expect(Object.values(preprocessorService()).map((m) => (m as MethodDefinition<object, object>).path)).toContain('/infermesh.v1.Preprocessor/Preprocess');
    expect(Object.values(workerService()).map((m) => (m as MethodDefinition<object, object>).path)).toContain('/infermesh.v1.Worker/InferBatches');
    expect(Object.values(monitorService()).map((m) => (m as MethodDefinition<object, object>).path)).toContain('/infermesh.v1.Monitor/GetModelStats');
  });

  it('has every service and the event messages in the package definition, for reflection', () => {
    expect(Object.keys(packageDefinition())).toEqual(expect.arrayContaining([
      'inference.GRPCInferenceService', 'infermesh.v1.Preprocessor', 'infermesh.v1.Worker', 'infermesh.v1.Monitor',
      'infermesh.v1.WorkerHeartbeat', 'infermesh.v1.PredictionRecord', 'infermesh.v1.PredictionBatch',
    ]));
  });
});

describe('messageCodec', () => {
  it('round-trips a message, giving int64 as strings and every default', () => {
    const codec = messageCodec<PredictionRecord, PredictionRecord__Output>('infermesh.v1.PredictionRecord');
    const decoded = codec.decode(codec.encode({ requestId: 'r1', model: 'iris', latencyUs: 1500, timestampMs: '1767225600000', batchSize: 4 }));
    expect(decoded).toStrictEqual({
      requestId: 'r1', model: 'iris', version: '', workerId: '', statusCode: 0, errorMessage: '',
      latencyUs: '1500', preprocessUs: '0', queueUs: '0', computeUs: '0', batchSize: 4, traceId: '',
      timestampMs: '1767225600000', items: 0, traceparent: '', clientId: '', driftBins: Buffer.alloc(0), profileId: '', predictedLabels: [],
      shadowOfVersion: '', shadowCompared: false, shadowAgreed: false,
    });
  });

  it('keeps int64 values beyond 2^53 and negative ones exact', () => {
    const codec = messageCodec<PredictionRecord, PredictionRecord__Output>('infermesh.v1.PredictionRecord');
    const decoded = codec.decode(codec.encode({ latencyUs: '9223372036854775807', computeUs: '-5', timestampMs: '9007199254740993' }));
    expect([decoded.latencyUs, decoded.computeUs, decoded.timestampMs]).toEqual(['9223372036854775807', '-5', '9007199254740993']);
  });

  it('decodes bytes the gRPC loader encoded exactly as the loader decodes them', () => {
    const { requestSerialize, requestDeserialize } = method(inferenceService(), 'ModelInfer');
    const bytes = requestSerialize(inferRequest);
    const codec = messageCodec<ModelInferRequest, ModelInferRequest__Output>('inference.ModelInferRequest');
    expect(codec.decode(bytes)).toStrictEqual(requestDeserialize(bytes));
  });

  it('encodes bytes the gRPC loader decodes to the same message', () => {
    const { requestDeserialize } = method(inferenceService(), 'ModelInfer');
    const codec = messageCodec<ModelInferRequest, ModelInferRequest__Output>('inference.ModelInferRequest');
    const bytes = codec.encode(inferRequest);
    expect(requestDeserialize(Buffer.from(bytes))).toStrictEqual(codec.decode(bytes));
  });

  it('decodes oneofs and maps in the loader\'s shape', () => {
    const codec = messageCodec<ModelInferRequest, ModelInferRequest__Output>('inference.ModelInferRequest');
    const decoded = codec.decode(codec.encode(inferRequest));
    expect(decoded.parameters).toStrictEqual({
      priority: { int64Param: '9007199254740993', parameterChoice: 'int64Param' },
      tag: { stringParam: 'a', parameterChoice: 'stringParam' },
      flag: { boolParam: false, parameterChoice: 'boolParam' },
    });
    expect(decoded.inputs[0].shape).toEqual(['-1', '4']);
    expect(decoded.inputs[0].contents?.fp32Contents).toEqual([0.5, 1.5]);
    expect(decoded.inputs[1].contents).toBeNull();
    expect(decoded.rawInputContents.map((b) => [...b])).toEqual([[1, 2, 3], []]);
    expect(Buffer.isBuffer(decoded.rawInputContents[0])).toBe(true);
  });

  it('encodes a decoded message back to the same message', () => {
    const codec = messageCodec<ModelInferRequest, ModelInferRequest__Output>('inference.ModelInferRequest');
    const decoded = codec.decode(codec.encode(inferRequest));
    expect(codec.decode(codec.encode(decoded as ModelInferRequest))).toStrictEqual(decoded);
  });

  it('decodes empty bytes to a message of defaults', () => {
    const codec = messageCodec<object, object>('infermesh.v1.DynamicBatching');
    expect(codec.decode(new Uint8Array(0))).toStrictEqual({ preferredBatchSize: [], maxQueueDelayUs: '0', maxQueueSize: 0 });
  });

  it('refuses a type name that no proto file defines', () => {
    expect(() => messageCodec('infermesh.v1.NoSuchMessage')).toThrow(/NoSuchMessage/);
  });
});
