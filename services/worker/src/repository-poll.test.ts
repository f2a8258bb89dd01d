/**
 * A running worker (createWorker, real NATS) picks up a version directory added to its
 * repository by polling, and announces it READY in a heartbeat sent on the change.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildAddModel, startNatsServer, writeModelRepository, type NatsServer } from '@infermesh/testing';
import { connectBus, events, type Bus } from '@infermesh/bus';
import type { WorkerHeartbeat__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createWorker, workerConfig, type Worker } from './index.js';

const logger = createLogger('test', { level: 'silent' });
const addConfig = { max_batch_size: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [4] }] };

let nats: NatsServer;
let bus: Bus;
let worker: Worker;
let repository: string;
const heartbeats: WorkerHeartbeat__Output[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'poll test', prefix: 'infermesh', logger });
  bus.subscribe(bus.subjects.heartbeats, events.heartbeat, ({ message }) => heartbeats.push(message));
  repository = await mkdtemp(join(tmpdir(), 'infermesh-poll-'));
  await writeModelRepository(repository, [{ name: 'add', version: 1, onnx: buildAddModel({ addend: 1 }), config: addConfig }]);
  const config = workerConfig({
    NATS_URL: nats.url, MODEL_REPOSITORY: repository, WORKER_ID: 'poll-worker', WORKER_HOST: '127.0.0.1', WORKER_PORT: '0', WORKER_INTRA_OP_THREADS: '1',
    // Beats only on changes during the test: a heartbeat naming version 2 is the one sent when it loaded.
    WORKER_HEARTBEAT_MS: '600000', WORKER_REPOSITORY_POLL_MS: '50',
  });
  worker = await createWorker({ config, logger, bus });
  await worker.start();
});

afterAll(async () => {
  await worker?.stop();
  await bus?.drain();
  await nats?.stop();
  await rm(repository, { recursive: true, force: true });
});

it('loads a version directory added to the repository and announces it READY', async () => {
  await mkdir(join(repository, 'add', '2'));
  await writeFile(join(repository, 'add', '2', 'model.onnx'), buildAddModel({ addend: 2 }));
  const announced = () => heartbeats.some((h) => h.models.some((m) => m.version === '2' && m.state === 'READY' && m.ready));
  while (!announced()) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(worker.registry.versionsOf('add')).toEqual(['1', '2']);
});
