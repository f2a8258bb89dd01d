/** Worker memory for infermesh evaluate: which workers count, how it reads, and NATS unreachable as not measured. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, events, type Bus } from '@infermesh/bus';
import type { WorkerHeartbeat, WorkerHeartbeat__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { freePort, startNatsServer, type NatsServer } from '@infermesh/testing';
import { formatWorkerMemory, measureWorkerMemory, workerMemoryOf, WORKER_MEMORY_SCOPE } from './worker-memory.js';

const MiB = 1024 * 1024;

function heartbeat(workerId: string, rssBytes: string, models: { name: string; version: string; ready: boolean }[], draining = false): WorkerHeartbeat__Output {
  return {
    workerId, address: `${workerId}:1`, device: 'cpu', queueDepth: 0, inFlight: 0, sentAtMs: '0', draining, executionProvider: 'cpu', rssBytes,
    models: models.map((m) => ({ ...m, state: m.ready ? 'READY' : 'LOADING', reason: '', platform: 'onnxruntime_onnx', inputs: [], outputs: [], maxBatchSize: 0, dynamicBatching: null, instances: 1, driftReference: null, classLabels: [], pipelineSteps: [], placement: null })),
  };
}

const iris1 = { name: 'iris', version: '1', ready: true };

describe('workerMemoryOf', () => {
  it('counts only the workers with the evaluated version ready and not draining', () => {
    const memory = workerMemoryOf([
      heartbeat('serves', String(200 * MiB), [iris1]),
      heartbeat('other-version', String(300 * MiB), [{ name: 'iris', version: '2', ready: true }]),
      heartbeat('loading', String(400 * MiB), [{ ...iris1, ready: false }]),
      heartbeat('draining', String(500 * MiB), [iris1], true),
    ], 'iris', '1');
    expect(memory).toEqual({ measured: true, scope: WORKER_MEMORY_SCOPE, workers: [{ workerId: 'serves', device: 'cpu', rssBytes: 200 * MiB }], maxBytes: 200 * MiB });
  });

  it('says not measured when no worker serves the version, or those that do report no memory', () => {
    expect(workerMemoryOf([], 'iris', '1')).toMatchObject({ measured: false, reason: 'no worker announced iris version 1 ready in 1.5 s' });
    expect(workerMemoryOf([heartbeat('old', '0', [iris1])], 'iris', '1')).toMatchObject({ measured: false, reason: expect.stringMatching(/report no memory/) });
  });
});

describe('formatWorkerMemory', () => {
  it('gives one worker\'s memory in MiB with its name', () => {
    expect(formatWorkerMemory(workerMemoryOf([heartbeat('worker-cpu0', String(Math.round(212.4 * MiB)), [iris1])], 'iris', '1'))).toBe('212.4 MiB (worker-cpu0)');
  });

  it('gives the max and count of several workers, and each', () => {
    const memory = workerMemoryOf([heartbeat('b', String(230 * MiB), [iris1]), heartbeat('a', String(212 * MiB), [iris1])], 'iris', '1');
    expect(formatWorkerMemory(memory)).toBe('max 230.0 MiB of 2 workers (a 212.0 MiB, b 230.0 MiB)');
  });

  it('says why it is not measured', () => {
    expect(formatWorkerMemory({ measured: false, reason: 'NATS unreachable: x' })).toBe('not measured (NATS unreachable: x)');
  });
});

describe('measureWorkerMemory', () => {
  let nats: NatsServer;
  let worker: Bus;

  beforeAll(async () => {
    nats = await startNatsServer();
    worker = await connectBus({ url: nats.url, name: 'worker', prefix: 'infermesh', logger: createLogger('test', { level: 'silent' }) });
  });

  afterAll(async () => {
    await worker?.drain();
    await nats?.stop();
  });

  it('reads the memory the serving worker reports in its heartbeats on NATS', async () => {
    const beat: WorkerHeartbeat = { workerId: 'worker-cpu0', address: 'w:1', device: 'cpu', rssBytes: 222703616, models: [iris1] };
    // Heartbeats every 100 ms, as a worker sends them every second: the listener hears some whenever it subscribes.
    const timer = setInterval(() => worker.publish(worker.subjects.heartbeat('worker-cpu0'), events.heartbeat, beat), 100);
    try {
      const memory = await measureWorkerMemory('iris', '1', () => ({ url: nats.url, connectOptions: {} }));
      expect(formatWorkerMemory(memory)).toBe('212.4 MiB (worker-cpu0)');
    } finally {
      clearInterval(timer);
    }
  });

  it('says not measured, NATS unreachable, when nothing listens at the NATS address', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const memory = await measureWorkerMemory('iris', '1', () => ({ url, connectOptions: {} }));
    expect(memory).toMatchObject({ measured: false, reason: expect.stringMatching(/^NATS unreachable: .*127\.0\.0\.1/) });
  });
});
