/**
 * The heartbeat against a real nats-server, for a worker whose models' profiles and class
 * labels make it larger than the server takes in one message (max_payload).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLinearSoftmaxModel, startNatsServer, writeModelRepository, type NatsServer } from '@infermesh/testing';
import { connectBus, events, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import type { WorkerHeartbeat__Output } from '@infermesh/contracts';
import { ModelRegistry } from './model-registry.js';
import { heartbeatOf, startHeartbeat } from './heartbeat.js';
import type { WorkerState } from './inference-service.js';

const logger = createLogger('test', { level: 'silent' });
const LABELS = ['small'.padEnd(128, 's'), 'large'.padEnd(128, 'l')];

let nats: NatsServer;
let sender: Bus;
let reader: Bus;
let repository: string;
let registry: ModelRegistry;
const state = { workerId: 'big-worker', draining: false } as WorkerState;

beforeAll(async () => {
  nats = await startNatsServer();
  sender = await connectBus({ url: nats.url, name: 'heartbeat sender', prefix: 'infermesh', logger });
  reader = await connectBus({ url: nats.url, name: 'heartbeat reader', prefix: 'infermesh', logger });
  repository = await mkdtemp(join(tmpdir(), 'infermesh-heartbeat-'));
  await writeModelRepository(repository, [{
    name: 'labelled',
    version: 1,
    onnx: buildLinearSoftmaxModel({ inputName: 'x', outputName: 'p', weights: [[1, 0], [0, 1]], bias: [0, 0] }),
    config: {
      max_batch_size: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }], outputs: [{ name: 'p', datatype: 'FP32', shape: [2], labels: LABELS }],
      preprocess: { tabular: { input: 'row', output: 'x', features: [{ name: 'a' }, { name: 'b' }] } },
    },
  }]);
  await writeFile(join(repository, 'labelled', 'profile.json'), JSON.stringify({
    format: 1, kind: 'tabular', rows: 10, source: 'test', created: '2026-11-27',
    features: [{ name: 'a', edges: [0, 1, 2, 3], expected: [0.2, 0.2, 0.2, 0.2, 0.2] }, { name: 'b', edges: [5], expected: [0.5, 0.5] }],
  }));
  registry = new ModelRegistry({ repository, models: [], logger, intraOpThreads: 1 });
  await registry.loadAll();
});

afterAll(async () => {
  await registry?.release();
  await Promise.allSettled([sender?.drain(), reader?.drain()]);
  await nats?.stop();
  if (repository) await rm(repository, { recursive: true, force: true });
});

describe('heartbeat memory', () => {
  it('carries the worker process\'s resident set size, as received over NATS', async () => {
    const received = new Promise<WorkerHeartbeat__Output>((resolve) => {
      const subscription = reader.subscribe(reader.subjects.heartbeat('big-worker'), events.heartbeat, ({ message }) => {
        subscription.unsubscribe();
        resolve(message);
      });
    });
    await reader.nc.flush();
    const heartbeat = startHeartbeat({ bus: sender, registry, state, address: '127.0.0.1:1', device: 'cpu', intervalMs: 60_000 });
    try {
      // uint64 arrives as a decimal string; a Node process with onnxruntime loaded holds megabytes.
      expect(Number((await received).rssBytes)).toBeGreaterThan(1024 * 1024);
    } finally {
      heartbeat.stop();
    }
  });
});

describe('heartbeat larger than the server\'s max_payload', () => {
  it('still announces the worker and its models, without their profiles and class labels, and says so once', async () => {
    const full = events.heartbeat.encode(heartbeatOf({ registry, state, address: '127.0.0.1:1', device: 'cpu' })).length;
    // A server that takes the heartbeat without the 256 bytes of labels, but not with them.
    Object.assign(sender.nc.info!, { max_payload: full - 200 });
    const received = new Promise<WorkerHeartbeat__Output>((resolve) => {
      const subscription = reader.subscribe(reader.subjects.heartbeat('big-worker'), events.heartbeat, ({ message }) => {
        subscription.unsubscribe();
        resolve(message);
      });
    });
    await reader.nc.flush();
    const tooLarge: number[] = [];
    const errors: unknown[] = [];
    const heartbeat = startHeartbeat({
      bus: sender, registry, state, address: '127.0.0.1:1', device: 'cpu', intervalMs: 60_000,
      onError: (error) => errors.push(error), onTooLarge: (bytes) => tooLarge.push(bytes),
    });
    try {
      heartbeat.beat();
      const model = (await received).models.find((m) => m.name === 'labelled')!;
      expect({ ready: model.ready, reference: model.driftReference, labels: model.classLabels }).toEqual({ ready: true, reference: null, labels: [] });
      expect({ errors, tooLarge }).toEqual({ errors: [], tooLarge: [full] });
    } finally {
      heartbeat.stop();
    }
  });
});

describe('a model whose session can run nothing any more', () => {
  it('is announced UNAVAILABLE with the reason, so routers stop sending it requests', async () => {
    const own = new ModelRegistry({ repository, models: [], logger, intraOpThreads: 1, sessionThread: true });
    await own.loadAll();
    try {
      const announced = () => heartbeatOf({ registry: own, state, address: '127.0.0.1:1', device: 'cpu' }).models!.find((m) => m.name === 'labelled')!;
      expect({ ready: announced().ready, state: announced().state }).toEqual({ ready: true, state: 'READY' });
      // The session's only thread fails (as it would on a crash in onnxruntime): a message it does not know.
      const served = own.list().find((e) => e.name === 'labelled')!.model!;
      // One instance: one ThreadSession, whose private thread only a test reaches.
      const thread = (served as unknown as { session: { thread: import('node:worker_threads').Worker } }).session.thread;
      const died = new Promise((resolve) => thread.once('exit', resolve));
      thread.postMessage({ kind: 'unknown' });
      await died;
      expect(announced()).toMatchObject({ ready: false, state: 'UNAVAILABLE', reason: expect.stringMatching(/^its onnxruntime session failed: the onnxruntime session's thread failed: session thread: unknown message/) });
    } finally {
      await own.release();
    }
  });
});
