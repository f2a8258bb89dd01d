/**
 * Drift and accuracy through a real nats-server and a real gRPC client: records with bins
 * and predicted labels go in through PREDICTIONS, feedback through FEEDBACK (as the
 * router publishes it, msgId and all), readings come out over GetDrift and GetAccuracy.
 * Feedback is joined once whatever the order it meets its record in and whatever restarts
 * the monitor goes through.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import {
  contracts, type GetAccuracyRequest, type GetAccuracyResponse__Output, type GetDriftRequest, type GetDriftResponse__Output, type ModelStatus,
  type MonitorClient, type PredictionRecord,
} from '@infermesh/contracts';
import { connectBus, events, snapshotStore, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { createMonitor, monitorConfig, type Monitor } from './index.js';
import { AMBIGUOUS, keptPredictionKey, openKeptPredictions } from './kept-predictions.js';
import { startFeedbackConsumer, uuidV7Time } from './feedback-consumer.js';
import { MonitorState } from './monitor-state.js';
import type { KeptPredictions } from './kept-predictions.js';

const logger = createLogger('feedback-test', { level: 'silent' });
/** Long enough for a record published just after its feedback to be counted on a busy machine; the unknown-id test waits it out. */
const GRACE_MS = 3000;
const CLASSES = ['setosa', 'versicolor', 'virginica'];
const MODELS = ['iris', 'late', 'unknown-ids', 'expired-ids', 'mismatched', 'reused', 'restarted', 'offline', 'crashed', 'replayed', 'drifting'];

let nats: NatsServer;
let publisher: Bus;
let monitorBus: Bus;
let monitor: Monitor;
let client: MonitorClient;
let heartbeats: NodeJS.Timeout;
let sequence = 0;

function status(name: string): ModelStatus {
  return {
    name, version: '1', ready: true,
    driftReference: { profileId: 'p1', rows: 150, features: [{ name: 'petal_length', edges: [2, 5], expected: [0.3, 0.4, 0.3] }] },
    classLabels: CLASSES,
  };
}

async function startMonitor(env: Record<string, string> = {}): Promise<Monitor> {
  const config = monitorConfig({
    NATS_URL: nats.url, MONITOR_HOST: '127.0.0.1', MONITOR_PORT: '0', MONITOR_METRICS_PORT: '0', MONITOR_SNAPSHOT_KEY: 'feedback-test',
    MONITOR_HEARTBEAT_WAIT_MS: '300', MONITOR_FEEDBACK_GRACE_MS: String(GRACE_MS), MONITOR_DRIFT_MIN_INPUTS: '3', ...env,
  });
  monitor = await createMonitor({ config, logger, bus: monitorBus });
  const { grpcPort } = await monitor.start();
  await monitor.caughtUp;
  client?.close();
  client = new (contracts().infermesh.v1.Monitor)(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  return monitor;
}

/** A successful request of `model` with one predicted label per input, as a router records it. */
function prediction(model: string, requestId: string, predictedLabels: string[], overrides: PredictionRecord = {}): PredictionRecord {
  return {
    requestId, model, version: '1', workerId: 'worker-a', statusCode: 0, latencyUs: 1000, queueUs: 100, computeUs: 200, batchSize: 1,
    items: predictedLabels.length, timestampMs: Date.now(), clientId: 'key-a', predictedLabels, ...overrides,
  };
}

async function publishRecords(...records: PredictionRecord[]): Promise<void> {
  await publisher.publishDurable(publisher.subjects.prediction(records[0].model ?? ''), events.predictionBatch, { records });
}

/** What the router's Feedback call stores: one message per (client, model, request id). */
async function sendFeedback(model: string, requestId: string, labels: string[], clientId = 'key-a', receivedMs = Date.now()): Promise<boolean> {
  const ack = await publisher.publishDurable(publisher.subjects.feedback(model), events.feedback, { model, requestId, labels, clientId, receivedMs }, keptPredictionKey(clientId, model, requestId));
  return !ack.duplicate;
}

function call<Req, Res>(method: 'GetAccuracy' | 'GetDrift', request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    (client[method] as (r: Req, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Res) => void) => void)(request, { deadline: Date.now() + 5000 }, (error, response) =>
      error ? reject(error) : resolve(response as Res),
    );
  });
}

const getAccuracy = (request: GetAccuracyRequest) => call<GetAccuracyRequest, GetAccuracyResponse__Output>('GetAccuracy', request);
const getDrift = (request: GetDriftRequest) => call<GetDriftRequest, GetDriftResponse__Output>('GetDrift', request);

/** The outcomes of feedback for `model`, summed over its versions (unknown and expired are on version ""). */
async function outcomes(model: string): Promise<{ applied: number; unknown: number; expired: number; mismatched: number; ambiguous: number; labelled: number; correct: number }> {
  const { models } = await getAccuracy({ model }).catch(() => ({ models: [] }));
  const sum = { applied: 0, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0, labelled: 0, correct: 0 };
  for (const m of models) {
    sum.applied += Number(m.feedback?.applied ?? 0);
    sum.unknown += Number(m.feedback?.unknown ?? 0);
    sum.expired += Number(m.feedback?.expired ?? 0);
    sum.mismatched += Number(m.feedback?.mismatched ?? 0);
    sum.ambiguous += Number(m.feedback?.ambiguous ?? 0);
    sum.labelled += Number(m.labelled);
    sum.correct += Number(m.correct);
  }
  return sum;
}

/** Retries `check` until it stops throwing: records and feedback arrive asynchronously. */
async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** A UUIDv7 naming `ms`. */
function uuidV7(ms: number): string {
  const hex = ms.toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-7abc-8def-0123456789ab`;
}

beforeAll(async () => {
  nats = await startNatsServer();
  publisher = await connectBus({ url: nats.url, name: 'feedback-test-publisher', prefix: 'infermesh', logger });
  monitorBus = await connectBus({ url: nats.url, name: 'feedback-test-monitor', prefix: 'infermesh', logger });
  await publisher.ensureStreams();
  const heartbeat = { workerId: 'worker-a', models: MODELS.map(status) };
  heartbeats = setInterval(() => publisher.publish(publisher.subjects.heartbeat('worker-a'), events.heartbeat, heartbeat), 100);
  await startMonitor();
}, 30_000);

afterAll(async () => {
  clearInterval(heartbeats);
  client?.close();
  await monitor?.stop();
  await monitorBus?.drain();
  await publisher?.drain();
  await nats?.stop();
}, 30_000);

describe('feedback', () => {
  it('is joined with the prediction of its request: labelled and correct inputs, the confusion matrix, recent accuracy', async () => {
    await publishRecords(prediction('iris', 'r1', ['setosa', 'virginica']), prediction('iris', 'r2', ['versicolor']));
    await eventually(async () => expect(monitor.state.models.stats('iris')[0]?.requestCount).toBe(2));
    await sendFeedback('iris', 'r1', ['setosa', 'versicolor']);
    await sendFeedback('iris', 'r2', ['versicolor']);
    await eventually(async () => expect((await outcomes('iris')).applied).toBe(2));
    const { models } = await getAccuracy({ model: 'iris', version: '1' });
    expect(models).toHaveLength(1);
    expect(models[0]).toMatchObject({ model: 'iris', version: '1', labelled: '3', correct: '2', recentLabelled: '3' });
    expect(models[0].recentAccuracy).toBeCloseTo(2 / 3);
    expect(models[0].confusion.map((c) => `${c.actual}/${c.predicted}=${c.count}`)).toEqual(['setosa/setosa=1', 'versicolor/versicolor=1', 'versicolor/virginica=1']);
  });

  it('labels only the predictions of the client that sends it', async () => {
    await publishRecords(prediction('iris', 'r3', ['setosa'], { clientId: 'key-a' }));
    await sendFeedback('iris', 'r3', ['setosa'], 'key-b');
    await eventually(async () => expect((await outcomes('iris')).unknown).toBe(1), GRACE_MS + 15_000);
    expect((await outcomes('iris')).applied).toBe(2);
  });

  it('is applied when it arrives before its record, once the record is counted within the grace', async () => {
    await sendFeedback('late', 'r1', ['virginica']);
    await publishRecords(prediction('late', 'r1', ['virginica']));
    await eventually(async () => expect(await outcomes('late')).toMatchObject({ applied: 1, unknown: 0, labelled: 1, correct: 1 }), GRACE_MS + 15_000);
  });

  it('counts a request id no prediction has as unknown once the grace is over', async () => {
    await sendFeedback('unknown-ids', 'never-predicted', ['setosa']);
    await eventually(async () => expect(await outcomes('unknown-ids')).toMatchObject({ applied: 0, unknown: 1, expired: 0 }), GRACE_MS + 15_000);
  });

  it('counts a UUIDv7 request id older than the retention as expired', async () => {
    const twoDaysAgo = Date.now() - 2 * 24 * 3600 * 1000;
    expect(uuidV7Time(uuidV7(twoDaysAgo))).toBe(twoDaysAgo);
    // Received long ago too: no grace wait, the prediction is gone.
    await sendFeedback('expired-ids', uuidV7(twoDaysAgo), ['setosa'], 'key-a', twoDaysAgo);
    await sendFeedback('expired-ids', uuidV7(Date.now()), ['setosa'], 'key-a', twoDaysAgo);
    await eventually(async () => expect(await outcomes('expired-ids')).toMatchObject({ expired: 1, unknown: 1 }));
  });

  it('counts labels whose number differs from the prediction\'s inputs as mismatched', async () => {
    await publishRecords(prediction('mismatched', 'r1', ['setosa', 'setosa']));
    await eventually(async () => expect(monitor.state.models.stats('mismatched')[0]?.requestCount).toBe(1));
    await sendFeedback('mismatched', 'r1', ['setosa']);
    await eventually(async () => expect(await outcomes('mismatched')).toMatchObject({ mismatched: 1, labelled: 0 }));
  });
});

describe('feedback for a request id its client used twice', () => {
  it('is counted ambiguous, joined with neither prediction, in GetAccuracy and on /metrics', async () => {
    await publishRecords(prediction('reused', '1', ['setosa'], { timestampMs: Date.now() - 1000 }));
    await publishRecords(prediction('reused', '1', ['virginica']));
    // Feedback read before the second prediction is kept would join the first: reuse is known from then on.
    const kept = await openKeptPredictions({ bus: publisher, retentionMs: 86_400_000, logger });
    await eventually(async () => expect(await kept.get(keptPredictionKey('key-a', 'reused', '1'))).toBe(AMBIGUOUS));
    await sendFeedback('reused', '1', ['virginica']);
    await eventually(async () => expect(await outcomes('reused')).toMatchObject({ ambiguous: 1, applied: 0, unknown: 0, labelled: 0 }));
    expect(monitor.state.prometheus()).toContain('infermesh_feedback_total{model="reused",outcome="ambiguous"} 1');
  });
});

describe('feedback across restarts', () => {
  it('is applied once when the monitor restarts between the records and the feedback, and after it', async () => {
    await publishRecords(prediction('restarted', 'r1', ['setosa']), prediction('restarted', 'r2', ['virginica']));
    await eventually(async () => expect(monitor.state.models.stats('restarted')[0]?.requestCount).toBe(2));
    await monitor.stop();
    // Stored while the monitor is down: joined after it starts.
    await sendFeedback('restarted', 'r1', ['setosa']);
    await startMonitor();
    await sendFeedback('restarted', 'r2', ['setosa']);
    await eventually(async () => expect(await outcomes('restarted')).toMatchObject({ applied: 2, labelled: 2, correct: 1 }));
    await monitor.stop();
    await startMonitor();
    await eventually(async () => expect(monitor.state.feedbackMark.sequence).toBeGreaterThan(0));
    expect(await outcomes('restarted')).toMatchObject({ applied: 2, unknown: 0, labelled: 2, correct: 1 });
  });

  it('joins feedback for records stored while the monitor was down, with its prediction kept before the feedback is read', async () => {
    await monitor.stop();
    // Many in one message: their puts are still in flight when the records are counted.
    const requests = Array.from({ length: 500 }, (_, i) => `down-${i}`);
    await publishRecords(...requests.map((id) => prediction('offline', id, ['setosa', 'versicolor'])));
    // Received long before the start: no grace wait would cover a prediction not yet kept.
    for (const id of requests) await sendFeedback('offline', id, ['setosa', 'setosa'], 'key-a', Date.now() - 3600_000);
    await startMonitor();
    await eventually(async () => expect(await outcomes('offline')).toMatchObject({ applied: 500, unknown: 0, labelled: 1000, correct: 500 }));
  });

  it('applies the feedback after a snapshot that is not its last (a crash) once, from the FEEDBACK sequence it covers', async () => {
    await publishRecords(...[1, 2, 3, 4].map((i) => prediction('crashed', `r${i}`, ['setosa'])));
    await eventually(async () => expect(monitor.state.models.stats('crashed')[0]?.requestCount).toBe(4));
    await sendFeedback('crashed', 'r1', ['setosa']);
    await sendFeedback('crashed', 'r2', ['virginica']);
    await eventually(async () => expect((await outcomes('crashed')).applied).toBe(2));
    // What a monitor killed after its last periodic snapshot leaves behind.
    await (await snapshotStore(publisher, 'feedback-crash')).save(monitor.state.encode());
    await sendFeedback('crashed', 'r3', ['setosa']);
    await sendFeedback('crashed', 'r4', ['setosa']);
    await eventually(async () => expect((await outcomes('crashed')).applied).toBe(4));
    const before = await getAccuracy({ model: 'crashed' });

    const running = monitor;
    await startMonitor({ MONITOR_SNAPSHOT_KEY: 'feedback-crash' });
    await running.stop();
    await eventually(async () => expect((await outcomes('crashed')).applied).toBe(4));
    expect(await getAccuracy({ model: 'crashed' })).toEqual(before);
    expect(await outcomes('crashed')).toMatchObject({ labelled: 4, correct: 3 });
  });

  it('is applied to a prediction whose record a restart reads again (not taken for a reused request id)', async () => {
    // What a monitor killed before it saved a snapshot covering the record leaves behind.
    await (await snapshotStore(publisher, 'feedback-replay')).save(monitor.state.encode());
    await publishRecords(prediction('replayed', 'r1', ['setosa']));
    await eventually(async () => expect(monitor.state.models.stats('replayed')[0]?.requestCount).toBe(1));

    const running = monitor;
    await startMonitor({ MONITOR_SNAPSHOT_KEY: 'feedback-replay' });
    await running.stop();
    expect(monitor.state.models.stats('replayed')[0]?.requestCount).toBe(1);
    await sendFeedback('replayed', 'r1', ['setosa']);
    await eventually(async () => expect(await outcomes('replayed')).toMatchObject({ applied: 1, ambiguous: 0, labelled: 1, correct: 1 }));
  });

  it('is stored once per client, model and request id: a second feedback is dropped by the stream', async () => {
    expect(await sendFeedback('iris', 'r1', ['virginica', 'virginica'])).toBe(false);
  });
});

describe('GetDrift', () => {
  it('reads the records\' bins against the reference a heartbeat announced', async () => {
    // Bins 0, 1, 2 of petal_length: the reference shares are 0.3, 0.4, 0.3.
    const bins = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2];
    await publishRecords(prediction('drifting', 'd1', bins.map(() => 'setosa'), { driftBins: Buffer.from(bins), profileId: 'p1' }));
    const { models } = await eventually(async () => {
      const answer = await getDrift({ model: 'drifting' });
      expect(answer.models[0]?.windowInputs).toBe('10');
      return answer;
    });
    expect(models[0]).toMatchObject({ model: 'drifting', version: '1', enoughInputs: true, profileId: 'p1', windowMs: '60000' });
    expect(models[0].features[0].feature).toBe('petal_length');
    expect(models[0].features[0].observed).toEqual([0.3, 0.4, 0.3]);
    expect(models[0].features[0].expected).toEqual([0.3, 0.4, 0.3]);
    expect(models[0].maxPsi).toBeLessThan(0.05);
    expect((await getDrift({})).models.map((m) => m.model)).toContain('drifting');
  });

  it('refuses names longer than any label as INVALID_ARGUMENT, and answers NOT_FOUND for a model without a reference', async () => {
    for (const request of [{ model: 'm'.repeat(10_000) }, { model: 'iris', version: 'v'.repeat(129) }, { version: '1' }]) {
      const refused = (await getDrift(request).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      expect(refused.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(refused.details.length).toBeLessThan(200);
      const accuracy = (await getAccuracy(request).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      expect(accuracy.code).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect(((await getDrift({ model: 'never-seen' }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    expect(((await getAccuracy({ model: 'never-seen' }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });
});

describe('startFeedbackConsumer', () => {
  /** A mesh of its own (prefix), so the FEEDBACK stream holds only this test's messages. */
  async function direct(prefix: string, kept: Pick<KeptPredictions, 'get' | 'retentionMs'>) {
    const bus = await connectBus({ url: nats.url, name: `feedback-direct-${prefix}`, prefix, logger });
    await bus.ensureStreams();
    const state = new MonitorState();
    state.known.add('iris', '1');
    const consumer = await startFeedbackConsumer({ bus, state, kept, logger, graceMs: 60_000, lookupRetryMs: 20 });
    const send = (requestId: string) => bus.publishDurable(bus.subjects.feedback('iris'), events.feedback, { model: 'iris', requestId, labels: ['setosa'], clientId: 'k', receivedMs: Date.now() });
    return { bus, state, consumer, send };
  }

  it('leaves a feedback waiting for its prediction uncovered when stopped, to be joined after the next start', async () => {
    let kept = false;
    const lookup = { retentionMs: 86_400_000, get: async () => (kept ? { model: 'iris', version: '1', predictedLabels: ['setosa'], timestampMs: '0' } : undefined) };
    const { bus, state, consumer, send } = await direct('stopped', lookup);
    try {
      await send('not-yet');
      // Within the 60 s grace: it waits. Once it is in hand, stop.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await consumer.stop();
      expect(state.feedbackMark.sequence).toBe(0);
      expect(state.accuracy.readings()).toEqual([]);
      expect(state.accuracy.droppedCounts()).toEqual({ undecodable: 0, failed: 0 });

      kept = true;
      const again = await startFeedbackConsumer({ bus, state, kept: lookup, logger, graceMs: 60_000 });
      await eventually(() => expect(state.accuracy.readings()[0]?.feedback.applied).toBe(1));
      await again.stop();
      expect(state.feedbackMark.sequence).toBe(1);
    } finally {
      await bus.drain();
    }
  });

  it('asks whether the monitor has read the records stored so far before it calls a feedback unknown (a monitor lagging behind the stream)', async () => {
    let kept = false;
    const lookup = { retentionMs: 86_400_000, get: async () => (kept ? { model: 'iris', version: '1', predictedLabels: ['setosa'], timestampMs: '0' } : undefined) };
    const bus = await connectBus({ url: nats.url, name: 'feedback-lagging', prefix: 'lagging', logger });
    await bus.ensureStreams();
    const state = new MonitorState();
    state.known.add('iris', '1');
    // No grace: only the lagging reader of records, caught up here, can keep the feedback from being called unknown.
    const consumer = await startFeedbackConsumer({ bus, state, kept: lookup, logger, graceMs: 0, predictionsRead: async () => { kept = true; } });
    try {
      await bus.publishDurable(bus.subjects.feedback('iris'), events.feedback, { model: 'iris', requestId: 'late-record', labels: ['setosa'], clientId: 'k', receivedMs: Date.now() });
      await eventually(() => expect(state.accuracy.readings()[0]?.feedback).toEqual({ applied: 1, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 }));
    } finally {
      await consumer.stop();
      await bus.drain();
    }
  });

  it('looks a prediction up again while NATS fails to answer, instead of counting the feedback unknown', async () => {
    let failures = 0;
    const kept = {
      retentionMs: 86_400_000,
      get: async () => {
        if (failures++ < 3) throw new Error('no responders');
        return { model: 'iris', version: '1', predictedLabels: ['setosa'], timestampMs: '0' };
      },
    };
    const { bus, state, consumer, send } = await direct('lookup-retry', kept);
    try {
      await send('r1');
      await eventually(() => expect(state.accuracy.readings()[0]?.feedback).toEqual({ applied: 1, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 }));
      expect(state.feedbackMark.sequence).toBe(1);
    } finally {
      await consumer.stop();
      await bus.drain();
    }
  });
});
