/**
 * Feedback joined across monitor restarts, every service its own process (each its own NATS
 * user): predictions made and labelled through the router's FeedbackService while the
 * monitor is down are joined once it starts (labelled = the labels sent), a request id no
 * prediction has counts as unknown, and a monitor killed afterwards shows the same
 * accuracy when started again: no feedback applied twice, none skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { contracts, type FeedbackItem, type FeedbackResponse__Output, type GetAccuracyResponse__Output, type MonitorClient } from '@infermesh/contracts';
import { startMesh, waitForOutput, type Mesh } from './helpers/mesh.js';
import { inferenceClient, type InferenceClient } from './helpers/client.js';

const ROWS = [
  { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
  { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 },
  { sepal_length: 5.9, sepal_width: 3.0, petal_length: 4.2, petal_width: 1.5 },
];
/** Requests with an id of the client's, and as many without one: the worker names those (a UUIDv7) and the answer carries it. */
const WITH_ID = 12;
const WITHOUT_ID = 12;

let mesh: Mesh;
let client: InferenceClient;
let feedback: InstanceType<ReturnType<typeof contracts>['infermesh']['v1']['FeedbackService']>;
let monitor: MonitorClient | undefined;

function irisRequest(row: (typeof ROWS)[number], id?: string) {
  return { model_name: 'iris', ...(id ? { id } : {}), inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(JSON.stringify(row))] } }] };
}

function sendFeedback(items: FeedbackItem[]): Promise<FeedbackResponse__Output> {
  return new Promise((resolve, reject) => {
    feedback.Feedback({ items }, { deadline: Date.now() + 20_000 }, (error, response) => (error ? reject(error) : resolve(response!)));
  });
}

function accuracyOf(model: string): Promise<GetAccuracyResponse__Output> {
  monitor ??= new (contracts().infermesh.v1.Monitor)(mesh.monitorAddress, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    monitor!.GetAccuracy({ model }, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response!))),
  );
}

/** Feedback outcomes and labelled inputs of `model`, over its versions (unknown and expired are on version ""). */
async function joined(model: string) {
  const { models } = await accuracyOf(model).catch(() => ({ models: [] }));
  const sum = { applied: 0, unknown: 0, expired: 0, mismatched: 0, labelled: 0 };
  for (const m of models) {
    sum.applied += Number(m.feedback?.applied ?? 0);
    sum.unknown += Number(m.feedback?.unknown ?? 0);
    sum.expired += Number(m.feedback?.expired ?? 0);
    sum.mismatched += Number(m.feedback?.mismatched ?? 0);
    sum.labelled += Number(m.labelled);
  }
  return sum;
}

async function settle<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    value = await read();
  }
  return value;
}

beforeAll(async () => {
  // A short grace: the feedback naming no prediction is counted unknown after 2 s, not 30.
  mesh = await startMesh({ natsAuth: true, traces: false, workerEnv: { WORKER_MODELS: 'iris' }, env: { MONITOR_FEEDBACK_GRACE_MS: '2000', MONITOR_SNAPSHOT_INTERVAL_MS: '250' } });
  client = inferenceClient(mesh.routerAddress);
  feedback = new (contracts().infermesh.v1.FeedbackService)(mesh.routerAddress, grpc.credentials.createInsecure());
  const until = Date.now() + 60_000;
  while (!(await client.call<{ ready: boolean }>('ModelReady', { name: 'iris' }).catch(() => ({ ready: false }))).ready) {
    if (Date.now() > until) throw new Error('iris was not ready within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 120_000);

afterAll(async () => {
  client?.close();
  feedback?.close();
  monitor?.close();
  await mesh?.stop();
}, 60_000);

describe('feedback sent while the monitor is down', () => {
  it('is joined once the monitor starts: labelled = the labels sent, and a monitor killed after shows the same', async () => {
    await mesh.service('monitor').stop();

    const ids: string[] = [];
    for (let i = 0; i < WITH_ID + WITHOUT_ID; i++) {
      const answer = await client.call<{ id: string }>('ModelInfer', irisRequest(ROWS[i % ROWS.length], i < WITH_ID ? `restart-${i}` : undefined));
      ids.push(answer.id);
    }
    expect(ids.slice(0, WITH_ID)).toEqual(Array.from({ length: WITH_ID }, (_, i) => `restart-${i}`));
    expect(ids.slice(WITH_ID).every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))).toBe(true);

    const items = ids.map((requestId) => ({ modelName: 'iris', requestId, labels: ['setosa'] }));
    const { results } = await sendFeedback([...items, { modelName: 'iris', requestId: 'never-predicted', labels: ['setosa'] }]);
    expect(results.map((r) => r.statusCode)).toEqual(results.map(() => grpc.status.OK));

    const restarted = await mesh.restartMonitor();
    await waitForOutput(restarted, '"monitor caught up"');
    const sent = items.length;
    const after = await settle(() => joined('iris'), (j) => j.applied + j.unknown >= sent + 1);
    console.log(`feedback sent while the monitor was down: ${sent} labelled requests and 1 unknown id; joined after its start: ${JSON.stringify(after)}`);
    expect(after).toEqual({ applied: sent, unknown: 1, expired: 0, mismatched: 0, labelled: sent });

    // A snapshot covering every feedback message, then a crash: the restart reads nothing twice.
    const feedbackCovered = () => Math.max(0, ...mesh.service('monitor').output().split('\n')
      .filter((line) => line.includes('"saved a snapshot"'))
      .map((line) => (JSON.parse(line) as { feedback_sequence?: number }).feedback_sequence ?? 0));
    expect(await settle(async () => feedbackCovered(), (covered) => covered >= sent + 1, 10_000)).toBe(sent + 1);
    const killed = await mesh.restartMonitor('SIGKILL');
    await waitForOutput(killed, '"joining feedback"');
    // Once it has read the whole FEEDBACK stream again: anything joined twice would show by then.
    const streamRead = async () => Number(/^infermesh_monitor_feedback_stream_sequence (\d+)$/m.exec(await (await fetch(mesh.metricsUrl)).text())?.[1] ?? 0);
    expect(await settle(streamRead, (sequence) => sequence >= sent + 1, 10_000)).toBe(sent + 1);
    expect(await joined('iris')).toEqual(after);
  });
});
