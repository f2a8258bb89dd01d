/**
 * The monitor across restarts, every service its own process: requests sent, answered,
 * stored in the PREDICTIONS stream and counted by the monitor are the same number after
 * the monitor is killed (SIGKILL) while traffic flows and started again; nothing is
 * counted twice. And records forged with thousands of made-up model names leave /metrics
 * small, whatever NATS lets through.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { connectBus, events, natsConnectOptions, streamName, type Bus } from '@infermesh/bus';
import { contracts, type GetModelStatsResponse__Output, type MonitorClient } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startMesh, waitForOutput, type Mesh } from './helpers/mesh.js';
import { inferenceClient, type InferenceClient } from './helpers/client.js';

const logger = createLogger('monitor-restart-test', { level: 'silent' });

let mesh: Mesh | undefined;
let client: InferenceClient | undefined;
let monitor: MonitorClient | undefined;
let bus: Bus | undefined;

afterEach(async () => {
  client?.close();
  monitor?.close();
  await bus?.drain();
  await mesh?.stop();
  mesh = undefined;
  bus = undefined;
});

function irisRequest(i: number) {
  const features = new Float32Array([Math.sin(i), Math.cos(i), 0.5, -0.5]);
  return { model_name: 'iris', id: `req-${i}`, inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.from(features.buffer)] };
}

/** Sends `total` requests, `concurrency` at a time; returns how many were answered without error. */
async function send(total: number, concurrency: number, onAnswered: (answered: number) => void = () => undefined): Promise<number> {
  let next = 0;
  let answered = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        await client!.call('ModelInfer', irisRequest(i), { timeoutMs: 20_000 }).then(() => onAnswered(++answered), () => undefined);
      }
    }),
  );
  return answered;
}

/** The mesh serving iris; `natsAuth`: each service as its own NATS user, with its role's permissions. */
async function startServing(natsAuth = false): Promise<Mesh> {
  // Snapshots four times a second, so a kill falls between two of them with records after the last.
  mesh = await startMesh({ natsAuth, traces: false, workerEnv: { WORKER_MODELS: 'iris' }, env: { MONITOR_SNAPSHOT_INTERVAL_MS: '250' } });
  client = inferenceClient(mesh.routerAddress);
  monitor = new (contracts().infermesh.v1.Monitor)(mesh.monitorAddress, grpc.credentials.createInsecure());
  bus = await connectBus({ url: mesh.nats.url, name: 'monitor-restart-test', prefix: 'infermesh', logger, connectOptions: natsConnectOptions(mesh.nats.credentials('admin')) });
  // Generous: the router admits a worker after a health check, and the machine may be busy.
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    if ((await client.call<{ ready: boolean }>('ModelReady', { name: 'iris' }).catch(() => ({ ready: false }))).ready) return mesh;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('iris was not ready within 60 s');
}

function modelStats(model: string): Promise<GetModelStatsResponse__Output> {
  return new Promise((resolve, reject) =>
    monitor!.GetModelStats({ model }, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response!))),
  );
}

async function countedByMonitor(model: string): Promise<number> {
  const { stats } = await modelStats(model).catch(() => ({ stats: [] }));
  return stats.reduce((sum, s) => sum + Number(s.requestCount), 0);
}

/** The records stored in the PREDICTIONS stream, read back message by message: per model, and the stream's own figures. */
async function storedRecords(): Promise<{ messages: number; lastSequence: number; records: Map<string, number> }> {
  const jsm = await bus!.js.jetstreamManager();
  const stream = streamName('infermesh', 'PREDICTIONS');
  const { state } = await jsm.streams.info(stream);
  const records = new Map<string, number>();
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const stored = await jsm.streams.getMessage(stream, { seq });
    if (!stored) continue;
    for (const record of events.predictionBatch.decode(stored.data).records) records.set(record.model, (records.get(record.model) ?? 0) + 1);
  }
  return { messages: state.messages, lastSequence: state.last_seq, records };
}

/** What the restarted monitor logged of where it started: the sequence its snapshot covered and the stream's last. */
function restartFigures(m: Mesh): { covered: number; last: number } {
  const line = m.service('monitor').output().split('\n').find((l) => l.includes('"reading prediction records"'));
  const parsed = JSON.parse(line ?? '{}') as { covered?: number; stream_last_sequence?: number };
  return { covered: parsed.covered ?? -1, last: parsed.stream_last_sequence ?? -1 };
}

/** Waits until `read` gives `want` (records reach the stream and the monitor a little after the answers). */
async function settle(read: () => Promise<number>, want: number, timeoutMs = 30_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  let got = await read();
  while (got !== want && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    got = await read();
  }
  return got;
}

describe('the monitor killed while traffic flows', () => {
  it('counts every request once after it is started again: sent = answered = stored = counted', async () => {
    // With NATS users: the monitor reads the stream and keeps its snapshot within its role's permissions.
    const m = await startServing(true);
    const first = 300;
    const second = 600;

    const answeredFirst = await send(first, 8);
    const countedBefore = await settle(() => countedByMonitor('iris'), answeredFirst);
    await waitForOutput(m.service('monitor'), '"saved a snapshot"');

    let killed: Promise<unknown> | undefined;
    const answeredSecond = await send(second, 8, (answered) => {
      if (answered === second / 3) killed = m.restartMonitor('SIGKILL');
    });
    await killed;
    await waitForOutput(m.service('monitor'), '"monitor caught up"');
    const restart = restartFigures(m);

    const sent = first + second;
    const answered = answeredFirst + answeredSecond;
    const stored = await settle(async () => (await storedRecords()).records.get('iris') ?? 0, answered);
    const counted = await settle(() => countedByMonitor('iris'), stored);
    const stream = await storedRecords();
    const metrics = await (await fetch(m.metricsUrl)).text();
    const prometheusOk = Number(/^infermesh_requests_total\{model="iris",version="1",code="OK"\} (\d+)$/m.exec(metrics)?.[1]);
    console.log(
      `monitor killed (SIGKILL) after ${second / 3} answers of the second ${second}: sent ${sent}, answered ${answered}, ` +
        `records stored ${stored} (in ${stream.messages} messages, last sequence ${stream.lastSequence}), counted by the monitor ${counted} ` +
        `(${countedBefore} before the kill), /metrics infermesh_requests_total{code="OK"} ${prometheusOk}; ` +
        `the restarted monitor's snapshot covered sequence ${restart.covered} of ${restart.last} stored at its start`,
    );
    // The kill came after a snapshot, with messages stored after it: both ways of rebuilding were used.
    expect(restart.covered).toBeGreaterThan(0);
    expect(restart.last).toBeGreaterThan(restart.covered);
    expect(answered).toBe(sent);
    expect(stored).toBe(answered);
    expect(counted).toBe(stored);
    expect(prometheusOk).toBe(stored);
  });

  it('shows the same statistics, percentiles included, after a kill with no traffic', async () => {
    const m = await startServing();
    const answered = await send(200, 4);
    await settle(() => countedByMonitor('iris'), answered);
    const before = await modelStats('iris');
    // Wait for a snapshot that covers every stored message (it may already have been taken:
    // a snapshot is saved only when there is something new to cover).
    const { lastSequence } = await storedRecords();
    const snapshotCovers = () => Math.max(0, ...m.service('monitor').output().split('\n')
      .filter((line) => line.includes('"saved a snapshot"'))
      .map((line) => (JSON.parse(line) as { sequence: number }).sequence));
    expect(await settle(async () => snapshotCovers(), lastSequence, 10_000)).toBe(lastSequence);

    await m.restartMonitor('SIGKILL');
    await waitForOutput(m.service('monitor'), '"monitor caught up"');
    const after = await modelStats('iris');
    const [b, a] = [before.stats[0], after.stats[0]];
    console.log(
      `before the kill: ${b.requestCount} requests, p50/p90/p99 ${b.latency?.p50Ms}/${b.latency?.p90Ms}/${b.latency?.p99Ms} ms; ` +
        `after: ${a.requestCount} requests, p50/p90/p99 ${a.latency?.p50Ms}/${a.latency?.p90Ms}/${a.latency?.p99Ms} ms`,
    );
    expect(after).toEqual(before);
  });
});

describe('the monitor stopped while predictions are made', () => {
  it('counts the 1,000 predictions made while it was stopped once it starts again; serving never waited on it', async () => {
    const m = await startServing(true);
    const before = await send(100, 8);
    await settle(() => countedByMonitor('iris'), before);
    let whileDown = 0;
    await m.restartMonitor('SIGTERM', async () => {
      whileDown = await send(1000, 8);
    });
    await waitForOutput(m.service('monitor'), '"monitor caught up"');
    const counted = await settle(() => countedByMonitor('iris'), before + whileDown);
    console.log(`monitor stopped: ${before} predictions before, ${whileDown} of 1000 answered while it was down, counted after its start ${counted}`);
    expect(whileDown).toBe(1000);
    expect(counted).toBe(before + whileDown);
  });
});

describe('records forged with made-up model names', () => {
  it('count under _unknown and leave /metrics small', async () => {
    const m = await startServing();
    await send(50, 4);
    await settle(() => countedByMonitor('iris'), 50);
    const sizeBefore = (await (await fetch(m.metricsUrl)).text()).length;

    // Straight onto the predictions subject, as anyone NATS lets publish there could.
    const forger = await connectBus({ url: m.nats.url, name: 'forger', prefix: 'infermesh', logger, connectOptions: natsConnectOptions(m.nats.credentials('router')) });
    const names = 5000;
    for (let batch = 0; batch < names / 250; batch++) {
      const records = Array.from({ length: 250 }, (_, i) => ({ model: `made-up-${batch * 250 + i}-${'x'.repeat(64)}`, version: '1', latencyUs: 1000, timestampMs: Date.now(), items: 1 }));
      await forger.publishDurable(forger.subjects.prediction(`made-up-${batch}`), events.predictionBatch, { records });
    }
    await forger.drain();
    const unknown = await settle(() => countedByMonitor('_unknown'), names);
    const text = await (await fetch(m.metricsUrl)).text();
    console.log(`${names} forged model names: counted under _unknown ${unknown}; /metrics ${sizeBefore} bytes before, ${text.length} bytes after`);
    expect(unknown).toBe(names);
    expect(text).not.toContain('made-up');
    // One more series (_unknown) and its client row: a few KB, not 82 MB.
    expect(text.length - sizeBefore).toBeLessThan(16 * 1024);
  });
});
