/**
 * Faults under steady traffic, every service its own process: NATS killed for 10 s and for
 * 30 s, a worker killed (SIGKILL) with one and with two workers. For each, requests sent,
 * answered and failed (by status), records stored in the PREDICTIONS stream and records
 * counted by the monitor: every request the router answered has exactly one record stored
 * and counted, none twice. Each case prints one line of figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { connectBus, events, streamName, type Bus } from '@infermesh/bus';
import { contracts, type MonitorClient } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startMesh, waitForOutput, type Mesh } from './helpers/mesh.js';
import { inferenceClient, type InferenceClient } from './helpers/client.js';

const logger = createLogger('record-faults-test', { level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let mesh: Mesh;
let client: InferenceClient;
let monitor: MonitorClient;
let bus: Bus;
let spoolDir: string;

beforeAll(async () => {
  spoolDir = mkdtempSync(join(tmpdir(), 'record-faults-spool-'));
  // A memory buffer of 200 records: an outage's records at this test's rate must go to the spool.
  mesh = await startMesh({ traces: false, workerEnv: { WORKER_MODELS: 'iris' }, routerEnv: { ROUTER_RECORD_SPOOL_DIR: spoolDir, ROUTER_RECORD_BUFFER: '200' } });
  client = inferenceClient(mesh.routerAddress);
  monitor = new (contracts().infermesh.v1.Monitor)(mesh.monitorAddress, grpc.credentials.createInsecure());
  bus = await connectBus({ url: mesh.nats.url, name: 'record-faults-test', prefix: 'infermesh', logger });
  await irisReady();
}, 120_000);

afterAll(async () => {
  client?.close();
  monitor?.close();
  await bus?.drain().catch(() => {});
  await mesh?.stop();
  rmSync(spoolDir, { recursive: true, force: true });
});

async function irisReady(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await client.call<{ ready: boolean }>('ModelReady', { name: 'iris' }).catch(() => ({ ready: false }))).ready) return;
    await sleep(100);
  }
  throw new Error('iris never became ready');
}

function irisRequest(id: string, i: number) {
  const features = new Float32Array([5 + Math.sin(i), 3 + Math.cos(i), 4, 1.3]);
  return { model_name: 'iris', id, inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.from(features.buffer)] };
}

interface Outcomes {
  sent: number;
  ok: string[];
  /** Request ids by the status name they failed with. */
  failed: Map<string, string[]>;
  /** The first message of each status, to tell why. */
  messages: Map<string, string>;
}

/** Steady traffic: `loops` clients each sending one request after another, with a pause, until stopped. */
function steadyTraffic(prefix: string, loops = 4, pauseMs = 30): { stop(): Promise<Outcomes> } {
  const outcomes: Outcomes = { sent: 0, ok: [], failed: new Map(), messages: new Map() };
  let running = true;
  const done = Promise.all(Array.from({ length: loops }, async () => {
    while (running) {
      const i = outcomes.sent++;
      const id = `${prefix}-${i}`;
      await client.call('ModelInfer', irisRequest(id, i), { timeoutMs: 5000 }).then(
        () => void outcomes.ok.push(id),
        (error: grpc.ServiceError) => {
          const status = grpc.status[error.code] ?? String(error.code);
          outcomes.failed.set(status, [...(outcomes.failed.get(status) ?? []), id]);
          if (!outcomes.messages.has(status)) outcomes.messages.set(status, error.details.slice(0, 160));
        },
      );
      await sleep(pauseMs);
    }
  }));
  return {
    async stop() {
      running = false;
      await done;
      return outcomes;
    },
  };
}

/** Records stored so far, read from the stream message by message: the status of each record per request id. */
const stored = new Map<string, number[]>();
let nextSequence = 1;

async function readStream(): Promise<void> {
  const jsm = await bus.js.jetstreamManager();
  const stream = streamName('infermesh', 'PREDICTIONS');
  const { state } = await jsm.streams.info(stream);
  for (; nextSequence <= state.last_seq; nextSequence++) {
    const message = await jsm.streams.getMessage(stream, { seq: nextSequence });
    if (!message) continue;
    for (const record of events.predictionBatch.decode(message.data).records) {
      stored.set(record.requestId, [...(stored.get(record.requestId) ?? []), record.statusCode]);
    }
  }
}

async function countedByMonitor(): Promise<number> {
  const response = await new Promise<{ stats: { requestCount: string }[] }>((resolve, reject) =>
    monitor.GetModelStats({}, { deadline: Date.now() + 5000 }, (error, answer) => (error ? reject(error) : resolve(answer as never))),
  );
  return response.stats.reduce((sum, s) => sum + Number(s.requestCount), 0);
}

interface Figures extends Outcomes {
  /** Records stored for the case's requests; more than one for an id is a duplicate. */
  records: number;
  duplicates: number;
  /** Requests answered OK without a record with status OK. */
  okUnrecorded: number;
  /** Failed requests without a record of their failure, with the status the client saw. */
  failedUnrecorded: number;
  counted: number;
}

/**
 * Runs steady traffic, applies `fault` after 2 s, keeps the traffic going `afterMs` more,
 * then waits until every request's record is stored and counted (or the wait runs out).
 */
async function faultCase(name: string, fault: () => Promise<void>, afterMs: number): Promise<Figures> {
  const countedBefore = await countedByMonitor();
  const traffic = steadyTraffic(name);
  await sleep(2000);
  await fault();
  await sleep(afterMs);
  const outcomes = await traffic.stop();
  const ids = [...outcomes.ok, ...[...outcomes.failed.values()].flat()];
  for (let i = 0; i < 120; i++) {
    await readStream();
    if (ids.every((id) => stored.has(id))) break;
    await sleep(250);
  }
  const records = ids.reduce((sum, id) => sum + (stored.get(id)?.length ?? 0), 0);
  const stopped = Date.now();
  let counted = (await countedByMonitor()) - countedBefore;
  for (let i = 0; i < 360 && counted < records; i++) {
    await sleep(250);
    counted = (await countedByMonitor()) - countedBefore;
  }
  const catchUpS = ((Date.now() - stopped) / 1000).toFixed(1);
  // Anything counted twice would show up a little later than the first count.
  await sleep(1000);
  counted = (await countedByMonitor()) - countedBefore;
  const figures: Figures = {
    ...outcomes,
    records,
    duplicates: ids.filter((id) => (stored.get(id)?.length ?? 0) > 1).length,
    okUnrecorded: outcomes.ok.filter((id) => !stored.get(id)?.includes(0)).length,
    failedUnrecorded: [...outcomes.failed].flatMap(([status, ids]) => ids.filter((id) => !stored.get(id)?.includes(grpc.status[status as keyof typeof grpc.status]))).length,
    counted,
  };
  const failures = [...outcomes.failed].map(([status, failed]) => `${status} ${failed.length}: "${outcomes.messages.get(status)}"`).join(', ') || 'none';
  console.log(
    `${name}: sent ${figures.sent}, answered OK ${figures.ok.length}, failed ${figures.sent - figures.ok.length} (${failures}), ` +
      `records stored ${records} (duplicates ${figures.duplicates}, OK without record ${figures.okUnrecorded}, failures without record ${figures.failedUnrecorded}), ` +
      `counted by the monitor ${counted} (${catchUpS} s after the traffic stopped)`,
  );
  return figures;
}

function expectNothingLostNorCountedTwice(figures: Figures): void {
  expect(figures.ok.length + [...figures.failed.values()].flat().length).toBe(figures.sent);
  expect(figures.okUnrecorded).toBe(0);
  expect(figures.failedUnrecorded).toBe(0);
  expect(figures.duplicates).toBe(0);
  expect(figures.records).toBe(figures.sent);
  expect(figures.counted).toBe(figures.records);
}

describe('NATS killed while steady traffic flows', () => {
  for (const seconds of [10, 30]) {
    it(`keeps serving through a ${seconds} s outage, and stores and counts every request's record once when NATS is back`, async () => {
      const figures = await faultCase(`nats-down-${seconds}s`, async () => {
        await mesh.nats.kill();
        await sleep(seconds * 1000);
        await mesh.nats.restart();
      }, 2000);
      expectNothingLostNorCountedTwice(figures);
      expect(Object.fromEntries([...figures.failed].map(([status, ids]) => [status, ids.length]))).toEqual({});
    }, (seconds + 60) * 1000);
  }
});

describe('a worker killed (SIGKILL) while steady traffic flows', () => {
  it('with one worker: fails requests UNAVAILABLE while no worker serves, records them, and serves again once a worker is back', async () => {
    const figures = await faultCase('one-worker-killed', async () => {
      await mesh.service('worker-0').stop('SIGKILL');
      await sleep(2000);
      await mesh.startWorker('worker-1');
    }, 2000);
    expectNothingLostNorCountedTwice(figures);
    expect([...figures.failed.keys()]).toEqual(['UNAVAILABLE']);
    const numberOf = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));
    const lastFailed = Math.max(...figures.failed.get('UNAVAILABLE')!.map(numberOf));
    expect(figures.ok.filter((id) => numberOf(id) > lastFailed).length).toBeGreaterThan(0);
  }, 90_000);

  it('with two workers: the other serves every request, and every request is recorded once', async () => {
    await mesh.startWorker('worker-2');
    await waitForOutput(mesh.service('router'), '"worker_id":"worker-2"');
    const figures = await faultCase('one-of-two-workers-killed', async () => {
      await mesh.service('worker-1').stop('SIGKILL');
    }, 5000);
    expectNothingLostNorCountedTwice(figures);
    expect(Object.fromEntries([...figures.failed].map(([status, ids]) => [status, ids.length]))).toEqual({});
  }, 90_000);
});
