/**
 * A worker in-process with real gRPC (port 0), a real nats-server and real onnxruntime on
 * tiny models: queueing, batching, statistics, the ModelStreamInfer stream, and what a
 * watched model adds (its heartbeat's profile and labels, each answer's bins, labels and id).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { buildAddModel, buildIdentityModel, buildLinearSoftmaxModel, buildMatMulChainModel, startNatsServer, writeModelRepository, type NatsServer } from '@infermesh/testing';
import { connectBus, events, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import {
  contracts, inferenceService, workerService, OUTPUT_SAMPLE_VALUES,
  type BatchedRequest, type GRPCInferenceServiceClient, type InferBatchRequest, type InferBatchResponse__Output, type ModelInferRequest, type ModelStreamInferResponse__Output, type ModelStatisticsResponse__Output,
  type WorkerHeartbeat__Output,
} from '@infermesh/contracts';
import { createWorker, workerConfig, type Worker } from './index.js';
import { STREAM_WINDOW } from './inference-service.js';

const logger = createLogger('test', { level: 'silent' });
const WIDTH = 256;

let nats: NatsServer;
let bus: Bus;
let worker: Worker;
let client: GRPCInferenceServiceClient;
let workerClient: grpc.Client;
let repository: string;

/**
 * A watched model: rows of a (number), color (categorical) and b; a classifier whose 'large'
 * score is a and 'small' score is -a; and a reference profile in its version folder.
 */
const FLOWERS = {
  name: 'flowers',
  version: '1',
  onnx: buildLinearSoftmaxModel({ inputName: 'x', outputName: 'probabilities', labelName: 'label', weights: [[-1, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bias: [0, 0] }),
  config: {
    max_batch_size: 8,
    inputs: [{ name: 'x', datatype: 'FP32', shape: [5] }],
    outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [2], labels: ['small', 'large'] }, { name: 'label', datatype: 'INT64', shape: [] }],
    dynamic_batching: { max_queue_delay_microseconds: 0 },
    preprocess: { tabular: { input: 'row', output: 'x', features: [{ name: 'a' }, { name: 'color', categories: ['red', 'green', 'blue'] }, { name: 'b' }] } },
  },
};
/** Features in another order than the pipeline's: b, a, color. */
const FLOWERS_PROFILE = JSON.stringify({
  format: 1, kind: 'tabular', rows: 10, source: 'hand-made', created: '2026-11-27T00:00:00.000Z',
  features: [
    { name: 'b', edges: [5], expected: [0.5, 0.5] },
    { name: 'a', edges: [0, 10], expected: [0.3, 0.4, 0.3] },
    { name: 'color', edges: [0.5, 1.5], expected: [0.2, 0.3, 0.5] },
  ],
});
const FLOWERS_PROFILE_ID = createHash('sha256').update(FLOWERS_PROFILE).digest('hex').slice(0, 16);

function addRequest(rows: number, id = ''): ModelInferRequest {
  const data = new Float32Array(rows * 4).map((_, i) => i);
  return { id, modelName: 'add', inputs: [{ name: 'x', datatype: 'FP32', shape: [String(rows), '4'] }], rawInputContents: [Buffer.from(data.buffer)] };
}

function slowRequest(rows: number, id: string, model = 'slow'): ModelInferRequest {
  return { id, modelName: model, inputs: [{ name: 'x', datatype: 'FP32', shape: [String(rows), String(WIDTH)] }], rawInputContents: [Buffer.alloc(rows * WIDTH * 4, 1)] };
}

function infer(request: ModelInferRequest): Promise<unknown> {
  return new Promise((resolve, reject) => client.ModelInfer(request, (error, response) => (error ? reject(error) : resolve(response))));
}

function statistics(name: string): Promise<ModelStatisticsResponse__Output> {
  return new Promise((resolve, reject) => client.ModelStatistics({ name }, (error, response) => (error ? reject(error) : resolve(response!))));
}

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'worker test', prefix: 'infermesh', logger });
  repository = await mkdtemp(join(tmpdir(), 'infermesh-worker-'));
  const addConfig = (overrides: object) => ({
    max_batch_size: 8,
    inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [4] }],
    ...overrides,
  });
  await writeModelRepository(repository, [
    { name: 'add', version: '1', onnx: buildAddModel(), config: addConfig({ dynamic_batching: { preferred_batch_size: [8], max_queue_delay_microseconds: 200_000, max_queue_size: 64 } }) },
    // Holds requests for a long time so the queue limit can be reached.
    { name: 'tiny-queue', version: '1', onnx: buildAddModel(), config: addConfig({ dynamic_batching: { max_queue_delay_microseconds: 400_000, max_queue_size: 2 } }) },
    // Rows in raw units; (x - mean) / std is prepended to this identity graph at load.
    {
      name: 'rows',
      version: '1',
      onnx: buildIdentityModel({ datatype: 'FP32', shape: [-1, 2] }),
      config: {
        max_batch_size: 16,
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }],
        outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }],
        dynamic_batching: { max_queue_delay_microseconds: 0 },
        preprocess: { tabular: { input: 'row', output: 'x', features: [{ name: 'a', mean: 10, std: 2 }, { name: 'b', mean: -1, std: 4 }] } },
      },
    },
    { name: 'labels', version: '1', onnx: buildIdentityModel({ datatype: 'INT64', shape: [-1, 2] }), config: { max_batch_size: 4, inputs: [{ name: 'x', datatype: 'INT64', shape: [2] }], outputs: [{ name: 'y', datatype: 'INT64', shape: [2] }] } },
    {
      name: 'slow',
      version: '1',
      onnx: buildMatMulChainModel({ width: WIDTH, layers: 8 }),
      config: { max_batch_size: 64, inputs: [{ name: 'x', datatype: 'FP32', shape: [WIDTH] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [WIDTH] }], dynamic_batching: { max_queue_size: 100_000 } },
    },
    FLOWERS,
  ]);
  await writeFile(join(repository, 'flowers', '1', 'profile.json'), FLOWERS_PROFILE);
  const config = workerConfig({ NATS_URL: nats.url, MODEL_REPOSITORY: repository, WORKER_ID: 'test-worker', WORKER_HOST: '127.0.0.1', WORKER_PORT: '0', WORKER_INTRA_OP_THREADS: '1' });
  worker = await createWorker({ config, logger, bus });
  const address = await worker.start();
  client = new (contracts().inference.GRPCInferenceService)(address, grpc.credentials.createInsecure());
  workerClient = new grpc.Client(address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  batches?.end();
  client?.close();
  workerClient?.close();
  await worker?.stop();
  await bus?.drain();
  await nats?.stop();
  if (repository) await rm(repository, { recursive: true, force: true });
});

describe('dynamic batching', () => {
  it('stacks concurrent requests from many clients into one run and splits the outputs back', async () => {
    const answers = (await Promise.all(Array.from({ length: 8 }, (_, i) => infer(addRequest(1, `r${i}`))))) as { id: string; rawOutputContents: Buffer[] }[];
    answers.forEach((answer, i) => {
      expect(answer.id).toBe(`r${i}`);
      expect(Array.from(new Float32Array(new Uint8Array(answer.rawOutputContents[0]).buffer))).toEqual([1, 2, 3, 4]);
    });
    const stats = (await statistics('add')).modelStats[0];
    expect(stats.batchStats.map((b) => b.batchSize)).toContain('8');
    expect(stats.inferenceCount).toBe('8');
  });

  it('refuses with RESOURCE_EXHAUSTED at once when the queue is full, and serves the queued requests', async () => {
    const request = { ...addRequest(1), modelName: 'tiny-queue' };
    const queued = [infer(request), infer(request)];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = await infer(request).then(() => null, (error: grpc.ServiceError) => error);
    expect(refused?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused?.details).toMatch(/queue is full/);
    await expect(Promise.all(queued)).resolves.toHaveLength(2);
  });

  it('drops a queued request whose client cancelled, without computing it', async () => {
    const before = Number((await statistics('tiny-queue')).modelStats[0].inferenceCount);
    const call = client.ModelInfer({ ...addRequest(3), modelName: 'tiny-queue' }, () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    // It is waiting in the queue (the model holds requests up to 400 ms) when the client goes away.
    expect(worker.registry.resolve('tiny-queue', '').queueDepth).toBe(1);
    call.cancel();
    await new Promise((resolve) => setTimeout(resolve, 600));
    const after = (await statistics('tiny-queue')).modelStats[0];
    expect(Number(after.inferenceCount)).toBe(before);
    expect(worker.registry.resolve('tiny-queue', '').queueDepth).toBe(0);
  });

  it('drops a queued request whose deadline passed', async () => {
    const before = Number((await statistics('tiny-queue')).modelStats[0].inferenceCount);
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      client.ModelInfer({ ...addRequest(2), modelName: 'tiny-queue' }, { deadline: Date.now() + 100 }, (e) => resolve(e));
      setTimeout(() => expect(worker.registry.resolve('tiny-queue', '').queueDepth).toBe(1), 50);
    });
    expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(Number((await statistics('tiny-queue')).modelStats[0].inferenceCount)).toBe(before);
  });
});

describe('ModelStreamInfer', () => {
  function openStream() {
    const responses: ModelStreamInferResponse__Output[] = [];
    const call = client.ModelStreamInfer();
    call.on('data', (response: ModelStreamInferResponse__Output) => responses.push(response));
    const ended = new Promise<grpc.ServiceError | null>((resolve) => {
      call.on('error', (error: grpc.ServiceError) => resolve(error));
      call.on('end', () => resolve(null));
    });
    return { call, responses, ended };
  }

  it('answers every item matched by id, with an error message for a bad item, and goes on', async () => {
    const { call, responses, ended } = openStream();
    call.write(addRequest(1, 'good-1'));
    call.write({ ...addRequest(1, 'bad'), inputs: [{ name: 'x', datatype: 'FP32', shape: ['1', '5'] }], rawInputContents: [Buffer.alloc(20)] });
    call.write({ ...addRequest(1, 'unknown-model'), modelName: 'nope' });
    call.write(addRequest(2, 'good-2'));
    call.end();
    expect(await ended).toBeNull();
    const byId = new Map(responses.map((r) => [r.inferResponse?.id, r]));
    expect([...byId.keys()].sort()).toEqual(['bad', 'good-1', 'good-2', 'unknown-model']);
    expect(byId.get('bad')!.errorMessage).toMatch(/^INVALID_ARGUMENT: input 'x': shape \[1, 5\]/);
    expect(byId.get('unknown-model')!.errorMessage).toMatch(/^NOT_FOUND: model 'nope'/);
    expect(byId.get('good-1')!.errorMessage).toBe('');
    expect(byId.get('good-2')!.inferResponse!.outputs[0].shape).toEqual(['2', '4']);
  });

  it('keeps at most its window of items in progress when the client sends faster than the model computes', async () => {
    const model = worker.registry.resolve('slow', '');
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, model.queueDepth + model.inFlight)), 1);
    const { call, responses, ended } = openStream();
    const total = 600;
    let refusedWrites = 0;
    for (let i = 0; i < total; i++) if (!call.write(slowRequest(4, `item-${i}`))) refusedWrites++;
    call.end();
    expect(await ended).toBeNull();
    clearInterval(sampler);
    expect(responses.filter((r) => r.errorMessage === '')).toHaveLength(total);
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(STREAM_WINDOW);
    // The transport told the client to slow down: writes were buffered, not consumed at once.
    expect(refusedWrites).toBeGreaterThan(0);
  });

  it('stops the queued work of a cancelled stream', async () => {
    const before = Number((await statistics('slow')).modelStats[0].inferenceCount);
    const { call, responses, ended } = openStream();
    for (let i = 0; i < 400; i++) call.write(slowRequest(16, `c-${i}`));
    while (responses.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    call.cancel();
    expect((await ended)?.code).toBe(grpc.status.CANCELLED);
    await worker.registry.resolve('slow', '').idle();
    const computed = Number((await statistics('slow')).modelStats[0].inferenceCount) - before;
    expect(computed).toBeLessThan(400 * 16);
    expect(worker.registry.resolve('slow', '').queueDepth).toBe(0);
  });
});

type Codec<Req, Res> = grpc.MethodDefinition<Req, Res>;
const batchCodec = workerService().InferBatches as unknown as Codec<InferBatchRequest, InferBatchResponse__Output>;
const requestCodec = inferenceService().ModelInfer as unknown as Codec<ModelInferRequest, unknown>;

/** A batch as a test writes it: each request a message (encoded here, as a router forwards a client's bytes) or raw bytes. */
type TestBatch = Omit<InferBatchRequest, 'requests'> & { requests: Array<Omit<BatchedRequest, 'request'> & { request: ModelInferRequest | Buffer }> };

/** A router's view of a worker: one stream, batches matched to answers by id. */
function batchStream(on: grpc.Client) {
  const stream = on.makeBidiStreamRequest(batchCodec.path, batchCodec.requestSerialize, batchCodec.responseDeserialize);
  const waiting = new Map<string, { resolve: (response: InferBatchResponse__Output) => void; reject: (error: Error) => void }>();
  stream.on('data', (response: InferBatchResponse__Output) => waiting.get(response.batchId)?.resolve(response));
  const ended = new Promise<grpc.ServiceError | null>((resolve) => {
    const close = (error: grpc.ServiceError | null) => {
      for (const { reject } of waiting.values()) reject(new Error('the stream ended before this batch was answered'));
      resolve(error);
    };
    stream.on('error', (error: grpc.ServiceError) => close(error));
    stream.on('end', () => close(null));
  });
  let next = 1;
  return {
    send(batch: TestBatch): Promise<InferBatchResponse__Output> {
      const batchId = String(next++);
      const requests = batch.requests.map((item) => ({ ...item, request: Buffer.isBuffer(item.request) ? item.request : requestCodec.requestSerialize(item.request) }));
      return new Promise((resolve, reject) => {
        waiting.set(batchId, { resolve, reject });
        stream.write({ ...batch, requests, batchId });
      });
    },
    ended,
    end: () => stream.end(),
  };
}

let batches: ReturnType<typeof batchStream>;
const inferBatch = (request: TestBatch) => (batches ??= batchStream(workerClient)).send(request);

const rowRequest = (id: string, ...rows: (object | string)[]): ModelInferRequest => ({
  id, modelName: 'rows',
  inputs: [{ name: 'row', datatype: 'BYTES', shape: [String(rows.length)], contents: { bytesContents: rows.map((r) => Buffer.from(typeof r === 'string' ? r : JSON.stringify(r))) } }],
});

const floats = (raw: Buffer) => Array.from(new Float32Array(new Uint8Array(raw).buffer));

describe('InferBatch (the requests a router coalesced)', () => {
  it('answers each request at its position, runs them as one batch, and fails only the bad one', async () => {
    const response = await inferBatch({
      modelName: 'rows', modelVersion: '1',
      requests: [
        { request: rowRequest('a', { a: 12, b: 3 }) },
        { request: rowRequest('bad', '{not json') },
        { request: rowRequest('c', { a: 10, b: -1 }, { a: 8, b: 7 }) },
      ],
    });
    expect(response.responses.map((r) => r.statusCode)).toEqual([0, grpc.status.INVALID_ARGUMENT, 0]);
    expect(response.responses[1].errorMessage).toMatch(/input 'row': row 0 is not valid JSON/);
    const [a, , c] = response.responses;
    expect(a.response!.id).toBe('a');
    // Standardized in the graph: ((12 - 10) / 2, (3 + 1) / 4).
    expect(floats(a.response!.rawOutputContents[0])).toEqual([1, 1]);
    expect(floats(c.response!.rawOutputContents[0])).toEqual([0, 0, -1, 2]);
    // The two good requests (three rows) ran together.
    expect([a.batchSize, c.batchSize]).toEqual([3, 3]);
  });

  it('fails only the request whose bytes are not a ModelInferRequest, and keeps the stream serving', async () => {
    const response = await inferBatch({
      modelName: 'rows', modelVersion: '1',
      // Field 7 (raw_input_contents) claims 100 bytes and holds 3.
      requests: [{ request: rowRequest('a', { a: 12, b: 3 }) }, { request: Buffer.from([0x3a, 100, 1, 2, 3]) }, { request: rowRequest('c', { a: 12, b: 3 }) }],
    });
    expect(response.responses.map((r) => r.statusCode)).toEqual([0, grpc.status.INVALID_ARGUMENT, 0]);
    expect(response.responses[1].errorMessage).toMatch(/the request is not a ModelInferRequest/);
    const after = await inferBatch({ modelName: 'rows', modelVersion: '1', requests: [{ request: rowRequest('after', { a: 10, b: -1 }) }] });
    expect(after.responses[0].statusCode).toBe(0);
  });

  it('fails a request that names another model than its batch, without running it on the batch\'s model', async () => {
    const response = await inferBatch({ modelName: 'rows', modelVersion: '1', requests: [{ request: { ...addRequest(1, 'elsewhere'), modelName: 'tiny-queue' } }, { request: rowRequest('ok', { a: 12, b: 3 }) }] });
    expect(response.responses.map((r) => r.statusCode)).toEqual([grpc.status.INVALID_ARGUMENT, 0]);
    expect(response.responses[0].errorMessage).toMatch(/a request for model 'tiny-queue' came in a batch for 'rows' version '1'/);
  });

  it('answers a request\'s model tensor in raw units exactly as its row', async () => {
    const tensor: ModelInferRequest = { id: 't', modelName: 'rows', inputs: [{ name: 'x', datatype: 'FP32', shape: ['1', '2'] }], rawInputContents: [Buffer.from(new Float32Array([12, 3]).buffer)] };
    const response = await inferBatch({ modelName: 'rows', modelVersion: '1', requests: [{ request: tensor }] });
    expect(floats(response.responses[0].response!.rawOutputContents[0])).toEqual([1, 1]);
  });

  it('counts the router\'s queue time in the request\'s queue time', async () => {
    const response = await inferBatch({ modelName: 'rows', modelVersion: '1', requests: [{ request: rowRequest('q', { a: 1, b: 1 }), queuedUs: 5_000_000 }] });
    expect(Number(response.responses[0].queueUs)).toBeGreaterThanOrEqual(5_000_000);
  });

  it('refuses, without running it, a request whose deadline passed while it waited', async () => {
    const before = Number((await statistics('tiny-queue')).modelStats[0].inferenceCount);
    const request = { ...addRequest(1, 'late'), modelName: 'tiny-queue' };
    // tiny-queue holds a lone request for 400 ms; this one may wait 50.
    const response = await inferBatch({ modelName: 'tiny-queue', modelVersion: '1', requests: [{ request, timeoutUs: 50_000 }] });
    expect(response.responses[0].statusCode).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Number((await statistics('tiny-queue')).modelStats[0].inferenceCount)).toBe(before);
  });

  it('refuses a batch as a whole with NOT_FOUND when the model is not here, and keeps the stream open', async () => {
    const refused = await inferBatch({ modelName: 'nope', modelVersion: '1', requests: [{ request: { modelName: 'nope' } }] });
    expect(refused).toMatchObject({ statusCode: grpc.status.NOT_FOUND, errorMessage: expect.stringMatching(/model 'nope'/), responses: [] });
    const served = await inferBatch({ modelName: 'rows', modelVersion: '1', requests: [{ request: rowRequest('after', { a: 10, b: -1 }) }] });
    expect(served.responses[0].statusCode).toBe(0);
  });

  it('answers batches that finish out of order by their ids', async () => {
    const slow = inferBatch({ modelName: 'tiny-queue', modelVersion: '1', requests: [{ request: { ...addRequest(1, 'slow'), modelName: 'tiny-queue' } }] });
    const fast = inferBatch({ modelName: 'rows', modelVersion: '1', requests: [{ request: rowRequest('fast', { a: 1, b: 1 }) }] });
    const first = await Promise.race([slow.then(() => 'slow'), fast.then(() => 'fast')]);
    expect(first).toBe('fast');
    expect((await slow).responses[0].response!.id).toBe('slow');
  });

  it('answers a request that asks for it, of a model without labels, with the first values of its first output', async () => {
    const response = await inferBatch({
      modelName: 'rows', modelVersion: '1',
      requests: [{ request: rowRequest('sampled', { a: 12, b: 3 }, { a: 10, b: -1 }), sampleOutputs: true }, { request: rowRequest('unsampled', { a: 12, b: 3 }) }],
    });
    expect(response.responses.map((r) => r.outputSample)).toEqual([[1, 1, 0, 0], []]);
  });

  it('samples at most OUTPUT_SAMPLE_VALUES values of a larger output', async () => {
    const [answer] = (await inferBatch({ modelName: 'slow', modelVersion: '1', requests: [{ request: slowRequest(2, 'big'), sampleOutputs: true }] })).responses;
    expect(answer.outputSample).toEqual(floats(answer.response!.rawOutputContents[0]).slice(0, OUTPUT_SAMPLE_VALUES));
  });
});

describe('statistics of requests refused after they ran', () => {
  it('count a classification of an output without scores as a failure, not a success', async () => {
    const request: ModelInferRequest = {
      modelName: 'labels', inputs: [{ name: 'x', datatype: 'INT64', shape: ['1', '2'] }], rawInputContents: [Buffer.alloc(16)],
      outputs: [{ name: 'y', parameters: { classification: { int64Param: '1' } } }],
    };
    const error = await infer(request).then(() => null, (e: grpc.ServiceError) => e);
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(/'y' is INT64; classification needs a numeric score output/);
    const stats = (await statistics('labels')).modelStats[0];
    expect(stats.inferenceStats!.fail!.count).toBe('1');
    expect(stats.inferenceStats!.success!.count).toBe('0');
    expect(stats.executionCount).toBe('1');
  });
});

describe('a worker that stops', () => {
  it('answers the batches it holds, reads no new ones, then ends the routers\' streams', async () => {
    const config = workerConfig({ NATS_URL: nats.url, MODEL_REPOSITORY: repository, WORKER_MODELS: 'tiny-queue', WORKER_ID: 'stopping-worker', WORKER_HOST: '127.0.0.1', WORKER_PORT: '0', WORKER_INTRA_OP_THREADS: '1' });
    const stopping = await createWorker({ config, logger, bus });
    const address = await stopping.start();
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    const stream = batchStream(raw);
    // Held by the model's 400 ms queue delay while the worker stops.
    const held = stream.send({ modelName: 'tiny-queue', modelVersion: '1', requests: [{ request: { ...addRequest(1, 'held'), modelName: 'tiny-queue' } }] });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stopped = stopping.stop();
    // Sent after the stop began: never read, so a router sees the stream end without its answer and sends it elsewhere.
    const late = stream.send({ modelName: 'tiny-queue', modelVersion: '1', requests: [{ request: { ...addRequest(1, 'late'), modelName: 'tiny-queue' } }] });
    expect((await held).responses[0]).toMatchObject({ statusCode: 0, response: { id: 'held' } });
    expect(await stream.ended).toBeNull();
    await expect(late).rejects.toThrow('the stream ended before this batch was answered');
    await stopped;
    raw.close();
  });
});

describe('a watched model', () => {
  const flowerRows = (id: string, ...rows: object[]): ModelInferRequest => ({ ...rowRequest(id, ...rows), modelName: 'flowers' });
  const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  function nextHeartbeat(): Promise<WorkerHeartbeat__Output> {
    return new Promise((resolve) => {
      const subscription = bus.subscribe(bus.subjects.heartbeat('test-worker'), events.heartbeat, ({ message }) => {
        subscription.unsubscribe();
        resolve(message);
      });
    });
  }

  it('announces its reference profile and class labels in the heartbeat', async () => {
    const flowers = (await nextHeartbeat()).models.find((m) => m.name === 'flowers')!;
    expect(flowers.classLabels).toEqual(['small', 'large']);
    expect(flowers.driftReference).toEqual({
      profileId: FLOWERS_PROFILE_ID,
      rows: '10',
      features: [
        { name: 'b', edges: [5], expected: [0.5, 0.5] },
        { name: 'a', edges: [0, 10], expected: [0.3, 0.4, 0.3] },
        { name: 'color', edges: [0.5, 1.5], expected: [0.2, 0.3, 0.5] },
      ],
    });
  });

  it('announces neither for a model without a profile or labels', async () => {
    const rows = (await nextHeartbeat()).models.find((m) => m.name === 'rows')!;
    expect(rows.driftReference).toBeNull();
    expect(rows.classLabels).toEqual([]);
  });

  it('answers each request with its inputs\' bins, row-major in profile order, and the profile they were binned with', async () => {
    const response = await inferBatch({
      modelName: 'flowers', modelVersion: '1',
      requests: [
        // b 5 → 1, a -3 → 0, blue → 2; then b 4.9 → 0, a 10 → 2, red → 0.
        { request: flowerRows('two', { a: -3, b: 5, color: 'blue' }, { a: 10, b: 4.9, color: 'red' }) },
        // b 7 → 1, a 0.5 → 1, green → 1.
        { request: flowerRows('one', { a: 0.5, b: 7, color: 'green' }) },
      ],
    });
    const [two, one] = response.responses;
    expect([two.statusCode, one.statusCode]).toEqual([0, 0]);
    expect(Array.from(two.driftBins)).toEqual([1, 0, 2, 0, 2, 0]);
    expect(Array.from(one.driftBins)).toEqual([1, 1, 1]);
    expect([two.profileId, one.profileId]).toEqual([FLOWERS_PROFILE_ID, FLOWERS_PROFILE_ID]);
  });

  it('bins the feature tensor a client sends as it bins rows: it holds the same raw values', async () => {
    const tensor: ModelInferRequest = {
      id: 't', modelName: 'flowers',
      inputs: [{ name: 'x', datatype: 'FP32', shape: ['2', '5'] }],
      // a, red/green/blue, b
      rawInputContents: [Buffer.from(Float32Array.from([-3, 0, 0, 1, 5, 10, 1, 0, 0, 4.9]).buffer)],
    };
    const response = await inferBatch({ modelName: 'flowers', modelVersion: '1', requests: [{ request: tensor }] });
    expect(Array.from(response.responses[0].driftBins)).toEqual([1, 0, 2, 0, 2, 0]);
  });

  it('answers each request with the predicted label of each input', async () => {
    const response = await inferBatch({
      modelName: 'flowers', modelVersion: '1',
      requests: [{ request: flowerRows('p', { a: -3, b: 0, color: 'red' }, { a: 2, b: 0, color: 'red' }) }, { request: flowerRows('q', { a: 10, b: 0, color: 'red' }) }],
    });
    expect(response.responses.map((r) => r.predictedLabels)).toEqual([['small', 'large'], ['large']]);
  });

  it('predicts labels even when the client asks only for another output, and answers only that output', async () => {
    const request = { ...flowerRows('only-label', { a: -1, b: 0, color: 'red' }), outputs: [{ name: 'label' }] };
    const [answer] = (await inferBatch({ modelName: 'flowers', modelVersion: '1', requests: [{ request }] })).responses;
    expect(answer.predictedLabels).toEqual(['small']);
    expect(answer.response!.outputs.map((o) => o.name)).toEqual(['label']);
  });

  it('sends no output sample for a model with labels, even when asked: its labels are compared', async () => {
    const [answer] = (await inferBatch({ modelName: 'flowers', modelVersion: '1', requests: [{ request: flowerRows('labelled', { a: 1, b: 1, color: 'red' }), sampleOutputs: true }] })).responses;
    expect(answer.predictedLabels).toHaveLength(1);
    expect(answer.outputSample).toEqual([]);
  });

  it('records the client\'s id as the request id, echoed in the response', async () => {
    const [answer] = (await inferBatch({ modelName: 'flowers', modelVersion: '1', requests: [{ request: flowerRows('client-7', { a: 1, b: 1, color: 'red' }) }] })).responses;
    expect(answer.requestId).toBe('client-7');
    expect(answer.response!.id).toBe('client-7');
  });

  it('makes a UUIDv7 for a request without an id, and answers the client with it', async () => {
    const [first, second] = (await inferBatch({
      modelName: 'flowers', modelVersion: '1',
      requests: [{ request: flowerRows('', { a: 1, b: 1, color: 'red' }) }, { request: flowerRows('', { a: 1, b: 1, color: 'red' }) }],
    })).responses;
    expect(first.requestId).toMatch(UUID_V7);
    expect(first.response!.id).toBe(first.requestId);
    expect(second.requestId).not.toBe(first.requestId);
  });

  it('gives a direct caller without an id the made id too', async () => {
    const answer = (await infer(flowerRows('', { a: 1, b: 1, color: 'red' }))) as { id: string };
    expect(answer.id).toMatch(UUID_V7);
  });

  it('adds no bins, profile or labels for a model without a profile or labels, but still the request id', async () => {
    const [answer] = (await inferBatch({ modelName: 'rows', modelVersion: '1', requests: [{ request: rowRequest('plain', { a: 12, b: 3 }) }] })).responses;
    expect(answer.statusCode).toBe(0);
    expect(answer.driftBins).toHaveLength(0);
    expect(answer.profileId).toBe('');
    expect(answer.predictedLabels).toEqual([]);
    expect(answer.requestId).toBe('plain');
  });

  it('adds nothing to a request that failed', async () => {
    const [answer] = (await inferBatch({ modelName: 'flowers', modelVersion: '1', requests: [{ request: flowerRows('bad', { a: 'x', b: 1, color: 'red' }) }] })).responses;
    expect(answer.statusCode).toBe(grpc.status.INVALID_ARGUMENT);
    expect([answer.driftBins.length, answer.profileId, answer.predictedLabels, answer.requestId]).toEqual([0, '', [], '']);
  });
});
