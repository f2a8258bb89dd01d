/**
 * The router's coalescing and its calls to workers, against real gRPC servers that speak
 * infermesh.v1.Worker: requests for one model version share one call, each gets its own
 * answer, unreachable or vanished workers are skipped, and the count of requests in flight
 * at a worker always returns to 0, however many heartbeats replace its routing entry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  inferenceService, workerService,
  type InferBatchRequest__Output, type InferBatchResponse, type ModelInferRequest, type ModelInferResponse__Output, type ModelStatus__Output,
  type WorkerHeartbeat__Output,
} from '@infermesh/contracts';
import { ServiceError, Status, createGrpcServer, invalidArgument, statusOf, unavailable, type GrpcServer } from '@infermesh/grpc';
import { createLogger } from '@infermesh/log';
import { freePort, mulberry32 } from '@infermesh/testing';
import type { MethodDefinition, ServerDuplexStream } from '@grpc/grpc-js';
import { Coalescer, type PendingRequest } from './coalescer.js';
import { RoutingTable } from './routing-table.js';
import { WorkerPool } from './worker-pool.js';

const logger = createLogger('test', { level: 'silent' });
const inferCodec = inferenceService().ModelInfer as unknown as MethodDefinition<ModelInferRequest, ModelInferResponse__Output>;

/** A stand-in worker on infermesh.v1.Worker/InferBatches: answers each request with its id, records the batches it was sent. */
interface FakeWorker {
  id: string;
  address: string;
  batches: number[];
  server: GrpcServer;
}

/** A batch as the fake worker sees it: each request decoded from the bytes the router forwarded. */
type DecodedBatch = Omit<InferBatchRequest__Output, 'requests'> & { requests: Array<{ request: ModelInferRequest }> };
type Behaviour = (batch: DecodedBatch) => Promise<InferBatchResponse>;

const echo: Behaviour = async (batch) => ({
  responses: batch.requests.map((item) => ({ response: { modelName: batch.modelName, modelVersion: batch.modelVersion, id: item.request?.id ?? '' }, statusCode: 0, queueUs: '7', batchSize: batch.requests.length })),
});

const servers: GrpcServer[] = [];
const pools: WorkerPool[] = [];

afterEach(async () => {
  for (const pool of pools.splice(0)) pool.closeAll();
  for (const server of servers.splice(0)) server.server.forceShutdown();
});

async function fakeWorker(id: string, behaviour: Behaviour = echo): Promise<FakeWorker> {
  const batches: number[] = [];
  const server = createGrpcServer({ name: 'fake-worker', logger, maxMessageBytes: 4 * 1024 * 1024 });
  server.addService('infermesh.v1.Worker', workerService(), {
    InferBatches: {
      bidi: (call: ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>) =>
        new Promise<void>((resolve) => {
          call.on('data', (message: InferBatchRequest__Output) => {
            batches.push(message.requests.length);
            const batch = { ...message, requests: message.requests.map((item) => ({ request: inferCodec.requestDeserialize(item.request) })) };
            behaviour(batch).then(
              (response) => call.write({ ...response, batchId: message.batchId }),
              (error: unknown) => {
                const status = statusOf(error);
                call.write({ batchId: message.batchId, statusCode: status.code, errorMessage: status.details });
              },
            );
          });
          call.on('end', () => resolve());
          call.on('cancelled', () => resolve());
        }),
    },
  });
  const port = await server.listen('127.0.0.1', 0);
  servers.push(server);
  return { id, address: `127.0.0.1:${port}`, batches, server };
}

function status(batching: ModelStatus__Output['dynamicBatching'] = { preferredBatchSize: [], maxQueueDelayUs: '0', maxQueueSize: 1024 }): ModelStatus__Output {
  return { name: 'iris', version: '1', ready: true, state: 'READY', platform: 'onnxruntime_onnx', inputs: [], outputs: [], maxBatchSize: 64, reason: '', dynamicBatching: batching, instances: 1, driftReference: null, classLabels: [], pipelineSteps: [], placement: null };
}

function heartbeat(worker: { id: string; address: string }, model: ModelStatus__Output, queueDepth = 0): WorkerHeartbeat__Output {
  return { workerId: worker.id, address: worker.address, device: 'cpu', models: [model], queueDepth, inFlight: 0, sentAtMs: '0', draining: false, executionProvider: 'cpu', rssBytes: '0' };
}

function setup(maxAttempts = 3, maxMessageBytes = 4 * 1024 * 1024) {
  const table = new RoutingTable(60_000, mulberry32(7));
  const pool = new WorkerPool(table, maxMessageBytes);
  pools.push(pool);
  return { table, pool, coalescer: new Coalescer({ table, pool, logger, maxAttempts, maxMessageBytes }) };
}

function request(id: string, deadlineMs = Date.now() + 10_000): PendingRequest {
  return { bytes: inferCodec.requestSerialize({ modelName: 'iris', id }), deadlineMs, traceparent: '', arrivedNs: process.hrtime.bigint() };
}

const never = new AbortController().signal;

describe('Coalescer', () => {
  it('sends requests that arrive together as one call, and answers each with its own response', async () => {
    const { table, coalescer } = setup();
    const worker = await fakeWorker('w1');
    const model = status();
    table.update(heartbeat(worker, model));
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => coalescer.submit(model, '1', request(`r${i}`), 1, never)));
    expect(worker.batches).toEqual([20]);
    expect(answers.map((a) => inferCodec.responseDeserialize(a.output.response).id)).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
    expect(answers.every((a) => a.output.statusCode === Status.OK && a.output.workerId === 'w1' && a.output.queueUs === 7)).toBe(true);
  });

  it('forwards the client\'s request as the client sent it', async () => {
    const { table, coalescer } = setup();
    let received: ModelInferRequest | undefined;
    const worker = await fakeWorker('w1', async (batch) => {
      received = batch.requests[0].request;
      return echo(batch);
    });
    const model = status();
    table.update(heartbeat(worker, model));
    const sent: ModelInferRequest = { modelName: 'iris', id: 'exact', inputs: [{ name: 'features', datatype: 'FP32', shape: ['1', '4'] }], rawInputContents: [Buffer.from(new Float32Array([1, 2, 3, 4]).buffer)] };
    await coalescer.submit(model, '1', { ...request('exact'), bytes: inferCodec.requestSerialize(sent) }, 1, never);
    expect(received).toEqual(inferCodec.requestDeserialize(inferCodec.requestSerialize(sent)));
  });

  it('keeps coalescing under load: requests queued while calls are in flight share the next call', async () => {
    const { table, coalescer } = setup();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const worker = await fakeWorker('w1', async (batch) => {
      await gate;
      return echo(batch);
    });
    const model = status();
    table.update(heartbeat(worker, model));
    // Two calls may be in flight per model instance; these two take both slots.
    const first = [coalescer.submit(model, '1', request('a'), 1, never)];
    await new Promise((resolve) => setTimeout(resolve, 20));
    first.push(coalescer.submit(model, '1', request('b'), 1, never));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const queued = Array.from({ length: 30 }, (_, i) => coalescer.submit(model, '1', request(`q${i}`), 1, never));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(worker.batches).toEqual([1, 1]);
    release();
    await Promise.all([...first, ...queued]);
    expect(worker.batches).toEqual([1, 1, 30]);
  });

  it('sends each request alone, at once, for a model without dynamic batching', async () => {
    const { table, coalescer } = setup();
    const worker = await fakeWorker('w1');
    const model = status(null);
    table.update(heartbeat(worker, model));
    await Promise.all(Array.from({ length: 5 }, (_, i) => coalescer.submit(model, '1', request(`r${i}`), 1, never)));
    expect(worker.batches).toEqual([1, 1, 1, 1, 1]);
  });

  it('gives each request the status the worker gave it: one refused request does not fail the others', async () => {
    const { table, coalescer } = setup();
    const worker = await fakeWorker('w1', async (batch) => ({
      responses: batch.requests.map((item) => (item.request?.id === 'bad'
        ? { statusCode: Status.INVALID_ARGUMENT, errorMessage: "input 'row': row 0 is not valid JSON" }
        : { response: { id: item.request?.id ?? '' }, statusCode: 0 })),
    }));
    const model = status();
    table.update(heartbeat(worker, model));
    const [good, bad] = await Promise.all([coalescer.submit(model, '1', request('good'), 1, never), coalescer.submit(model, '1', request('bad'), 1, never)]);
    expect(good.output.statusCode).toBe(Status.OK);
    expect(bad.output).toMatchObject({ statusCode: Status.INVALID_ARGUMENT, errorMessage: "input 'row': row 0 is not valid JSON" });
  });

  it('tries another worker when one refuses connections, and drops the unreachable one from the table', async () => {
    const { table, coalescer } = setup();
    const live = await fakeWorker('live');
    const model = status();
    // The dead worker reports no load, so it is picked first.
    table.update(heartbeat({ id: 'dead', address: `127.0.0.1:${await freePort()}` }, model, 0));
    table.update(heartbeat(live, model, 5));
    const answer = await coalescer.submit(model, '1', request('r'), 1, never);
    expect(answer.output.workerId).toBe('live');
    expect(table.get('dead')).toBeUndefined();
  });

  it('sends the batch again elsewhere when its worker vanishes mid-call', async () => {
    const { table, coalescer } = setup();
    const stuck = await fakeWorker('stuck', () => new Promise<never>(() => {}));
    const live = await fakeWorker('live');
    const model = status();
    table.update(heartbeat(stuck, model, 0));
    table.update(heartbeat(live, model, 5));
    const pending = coalescer.submit(model, '1', request('r'), 1, never);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stuck.batches).toEqual([1]);
    table.remove('stuck', 'no heartbeat for 3000 ms');
    expect((await pending).output.workerId).toBe('live');
  });

  it('matches answers that come back out of order to their batches', async () => {
    const { table, coalescer } = setup();
    const worker = await fakeWorker('w1', async (batch) => {
      // The first batch (request 'slow') answers after the second.
      if (batch.requests[0].request?.id === 'slow') await new Promise((resolve) => setTimeout(resolve, 100));
      return echo(batch);
    });
    const model = status(null);
    table.update(heartbeat(worker, model));
    const slow = coalescer.submit(model, '1', request('slow'), 1, never);
    const fast = coalescer.submit(model, '1', request('fast'), 1, never);
    const order: string[] = [];
    await Promise.all([slow, fast].map((p) => p.then((a) => order.push(inferCodec.responseDeserialize(a.output.response).id))));
    expect(order).toEqual(['fast', 'slow']);
  });

  it('sends batches again elsewhere when the worker\'s stream breaks, and opens a new one for the next', async () => {
    const { table, coalescer } = setup();
    const flaky = await fakeWorker('flaky', () => new Promise<never>(() => {}));
    const live = await fakeWorker('live');
    const model = status(null);
    table.update(heartbeat(flaky, model, 0));
    table.update(heartbeat(live, model, 5));
    const pending = coalescer.submit(model, '1', request('r'), 1, never);
    await new Promise((resolve) => setTimeout(resolve, 100));
    flaky.server.server.forceShutdown();
    expect((await pending).output.workerId).toBe('live');
  });

  it('sends a batch larger than the message limit as several messages, and answers each request in order', async () => {
    const { table, coalescer } = setup(3, 64 * 1024);
    const worker = await fakeWorker('w1');
    const model = status();
    table.update(heartbeat(worker, model));
    const large = (id: string): PendingRequest => ({ ...request(id), bytes: inferCodec.requestSerialize({ modelName: 'iris', id, rawInputContents: [Buffer.alloc(20_000)] }) });
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => coalescer.submit(model, '1', large(`r${i}`), 1, never)));
    // About 20 kB each: three fit in 64 KiB.
    expect(worker.batches).toEqual([3, 3, 3, 1]);
    expect(answers.map((a) => inferCodec.responseDeserialize(a.output.response).id)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
  });

  it('gives each message of a split batch its own outcome: one that times out does not fail the answered one', async () => {
    const { table, coalescer } = setup(3, 64 * 1024);
    const worker = await fakeWorker('w1', async (batch) => {
      if (batch.requests[0].request.id?.startsWith('short')) await new Promise((resolve) => setTimeout(resolve, 500));
      return echo(batch);
    });
    const model = status();
    table.update(heartbeat(worker, model));
    const large = (id: string, deadlineMs: number): PendingRequest => ({ ...request(id, deadlineMs), bytes: inferCodec.requestSerialize({ modelName: 'iris', id, rawInputContents: [Buffer.alloc(20_000)] }) });
    const soon = Date.now() + 200;
    const answers = await Promise.all([...['short0', 'short1', 'short2'].map((id) => large(id, soon)), large('long', Date.now() + 10_000)].map((r) => coalescer.submit(model, '1', r, 1, never)));
    expect(worker.batches).toEqual([3, 1]);
    expect(answers.map((a) => a.output.statusCode)).toEqual([Status.DEADLINE_EXCEEDED, Status.DEADLINE_EXCEEDED, Status.DEADLINE_EXCEEDED, Status.OK]);
    expect(inferCodec.responseDeserialize(answers[3].output.response).id).toBe('long');
  });

  it('sends a batch again to the same worker on a new stream when its stream broke and the worker is still there', async () => {
    const { table, coalescer } = setup();
    let streams = 0;
    const batches: number[] = [];
    const server = createGrpcServer({ name: 'fake-worker', logger, maxMessageBytes: 4 * 1024 * 1024 });
    server.addService('infermesh.v1.Worker', workerService(), {
      InferBatches: {
        bidi: (call: ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>) => {
          const first = ++streams === 1;
          return new Promise<void>((resolve, reject) => {
            call.on('data', (message: InferBatchRequest__Output) => {
              batches.push(message.requests.length);
              // The first stream fails as a whole (a reset), the next one serves.
              if (first) reject(new ServiceError(Status.INTERNAL, 'stream reset'));
              else call.write({ batchId: message.batchId, responses: message.requests.map(() => ({ response: { id: 'again' }, statusCode: 0 })) });
            });
            call.on('end', () => resolve());
            call.on('cancelled', () => resolve());
          });
        },
      },
    });
    const port = await server.listen('127.0.0.1', 0);
    servers.push(server);
    const model = status();
    table.update(heartbeat({ id: 'w1', address: `127.0.0.1:${port}` }, model));
    const answer = await coalescer.submit(model, '1', request('r'), 1, never);
    expect(answer.output.workerId).toBe('w1');
    expect(streams).toBe(2);
    expect(batches).toEqual([1, 1]);
    expect(table.get('w1')).toBeDefined();
  });

  it('sends a batch to another holder when a worker no longer holds the version, and keeps that worker in the table', async () => {
    const { table, coalescer } = setup();
    const unloaded = await fakeWorker('unloaded', async () => {
      throw new ServiceError(Status.NOT_FOUND, "model 'iris' version '1' is not loaded here");
    });
    const live = await fakeWorker('live');
    const model = status();
    table.update(heartbeat(unloaded, model, 0));
    table.update(heartbeat(live, model, 5));
    const answer = await coalescer.submit(model, '1', request('r'), 1, never);
    expect(answer.output.workerId).toBe('live');
    expect(unloaded.batches).toEqual([1]);
    expect(table.get('unloaded')).toBeDefined();
  });

  it('fails a batch DEADLINE_EXCEEDED when its worker does not answer in time', async () => {
    const { table, coalescer } = setup();
    const stuck = await fakeWorker('stuck', () => new Promise<never>(() => {}));
    const model = status(null);
    table.update(heartbeat(stuck, model));
    await expect(coalescer.submit(model, '1', request('r', Date.now() + 200), 1, never)).rejects.toMatchObject({ code: Status.DEADLINE_EXCEEDED });
  });

  it('does not retry a worker\'s refusal that is not about reaching it', async () => {
    const { table, coalescer } = setup();
    const refusing = await fakeWorker('w1', async () => {
      throw invalidArgument('not for this worker');
    });
    const model = status();
    table.update(heartbeat(refusing, model));
    await expect(coalescer.submit(model, '1', request('r'), 1, never)).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(refusing.batches).toEqual([1]);
  });

  it('answers UNAVAILABLE naming the model when every worker it tried is unavailable', async () => {
    const { table, coalescer } = setup(2);
    const draining = await fakeWorker('w1', async () => {
      throw unavailable('worker w1 is shutting down');
    });
    const model = status();
    table.update(heartbeat(draining, model));
    await expect(coalescer.submit(model, '1', request('r'), 1, never)).rejects.toMatchObject({ code: Status.UNAVAILABLE, message: expect.stringMatching(/no worker could serve model 'iris': worker w1 is shutting down/) });
  });
});

describe('requests in flight at a worker', () => {
  it('counts the requests of calls in progress and returns to 0 when they end, across many heartbeats', async () => {
    const { table, pool, coalescer } = setup();
    const worker = await fakeWorker('w1', async (batch) => {
      await new Promise((resolve) => setTimeout(resolve, 150));
      return echo(batch);
    });
    const model = status(null);
    table.update(heartbeat(worker, model));
    const pending = Array.from({ length: 6 }, (_, i) => coalescer.submit(model, '1', request(`r${i}`), 1, never));
    // Heartbeats replace the worker's routing entry while the calls are in progress.
    for (let i = 0; i < 10; i++) {
      table.update(heartbeat(worker, model));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(pool.inFlight('w1')).toBe(6);
    await Promise.all(pending);
    table.update(heartbeat(worker, model));
    expect(pool.inFlight('w1')).toBe(0);
  });

  it('releases a call once even when release is called twice', () => {
    const { pool } = setup();
    const call = pool.begin('w1', '127.0.0.1:1', 3);
    call.release();
    call.release();
    expect(pool.inFlight('w1')).toBe(0);
  });

  it('keeps counting into the same worker when it comes back at a new address', () => {
    const { table, pool } = setup();
    const model = status();
    table.update(heartbeat({ id: 'w1', address: '127.0.0.1:1' }, model));
    const old = pool.begin('w1', '127.0.0.1:1', 2);
    const fresh = pool.begin('w1', '127.0.0.1:2', 1);
    expect(pool.inFlight('w1')).toBe(3);
    old.release();
    fresh.release();
    expect(pool.inFlight('w1')).toBe(0);
  });
});
