/**
 * startPredictionConsumer against a real nats-server: a PREDICTIONS stream that holds no
 * messages any more (purged, aged out) while its last sequence is past zero has nothing
 * to count, so the monitor is caught up at once instead of waiting for a message that
 * will never come.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, events, snapshotStore, streamName, type Bus, type SnapshotStore } from '@infermesh/bus';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { MonitorState } from './monitor-state.js';
import { startPredictionConsumer } from './prediction-consumer.js';
import type { KeptPredictions } from './kept-predictions.js';
import { record } from './records.fixture.js';

const logger = createLogger('prediction-consumer-nats-test', { level: 'silent' });

let nats: NatsServer;
let bus: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'prediction-consumer-test', prefix: 'infermesh', logger });
  await bus.ensureStreams();
}, 30_000);

afterAll(async () => {
  await bus?.drain();
  await nats?.stop();
}, 30_000);

describe('startPredictionConsumer', () => {
  it('is caught up at once when the stream was purged after messages were stored', async () => {
    for (let i = 0; i < 3; i++) {
      await bus.publishDurable(bus.subjects.prediction('iris'), events.predictionBatch, { records: [record({ requestId: `r${i}`, timestampMs: String(Date.now()) })] });
    }
    const jsm = await bus.js.jetstreamManager();
    const name = streamName(bus.prefix, 'PREDICTIONS');
    await jsm.streams.purge(name);
    const { state } = await jsm.streams.info(name);
    expect(state.messages).toBe(0);
    expect(state.last_seq).toBe(3);

    const consumer = await startPredictionConsumer({
      bus, state: new MonitorState(), store: await snapshotStore(bus, 'purged-stream-test'), logger, snapshotIntervalMs: 60_000, heartbeatWaitMs: 0,
    });
    try {
      // Without the empty range counted as caught up this never resolves (the test times out).
      await expect(consumer.caughtUp).resolves.toBeUndefined();
    } finally {
      await consumer.stop();
    }
  });
});

/** Kept predictions whose puts (of `model`'s records; others' finish at once) finish only when the test says, with a bound of `maxInFlight`. */
function heldPuts(model: string, maxInFlight = Infinity) {
  const pending: { record: PredictionRecord__Output; done: () => void; promise: Promise<void> }[] = [];
  let waiter: (() => void) | undefined;
  let held = true;
  const kept: Pick<KeptPredictions, 'keep' | 'room' | 'settled'> & { retentionMs: number } = {
    retentionMs: 86_400_000,
    keep(record) {
      let done: () => void = () => undefined;
      const promise = new Promise<void>((resolve) => (done = resolve));
      if (!held || record.model !== model) done();
      else pending.push({ record, done, promise });
      return true;
    },
    room: () => (!held || pending.length < maxInFlight ? undefined : new Promise<void>((resolve) => (waiter = resolve))),
    settled: async () => void (await Promise.all(pending.map((p) => p.promise))),
  };
  /** Finishes the puts in flight. */
  const finish = () => {
    for (const p of pending.splice(0)) p.done();
    waiter?.();
  };
  /** From now on every put finishes at once. */
  const release = () => {
    held = false;
    finish();
  };
  return { kept: kept as KeptPredictions, pending, finish, release };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('kept predictions', () => {
  /** A consumer counting the records of `model` only (the stream holds other tests' records too). */
  async function consumer(model: string, kept: KeptPredictions, store?: SnapshotStore) {
    const state = new MonitorState();
    state.known.add(model, '1');
    const started = await startPredictionConsumer({
      bus, state, store: store ?? (await snapshotStore(bus, model)), logger, snapshotIntervalMs: 50, heartbeatWaitMs: 0, kept,
    });
    return { state, started, requests: () => state.models.stats(model)[0]?.requestCount ?? 0 };
  }

  async function publishKept(model: string, requestId: string): Promise<void> {
    await bus.publishDurable(bus.subjects.prediction(model), events.predictionBatch, {
      records: [record({ model, requestId, predictedLabels: ['a'], timestampMs: String(Date.now()) })],
    });
  }

  it('saves no snapshot covering a record whose prediction is still being stored', async () => {
    const puts = heldPuts('held');
    const real = await snapshotStore(bus, 'held-puts');
    const saved: number[] = [];
    const store: SnapshotStore = { load: () => real.load(), maxBytes: real.maxBytes, save: async (bytes) => void saved.push(bytes.length) };
    const { started, requests } = await consumer('held', puts.kept, store);
    try {
      await publishKept('held', 'k1');
      await until(() => requests() === 1, 'the record to be counted');
      expect(puts.pending.map((p) => p.record.requestId)).toEqual(['k1']);
      // Several snapshot intervals go by: none is saved while the put is in flight.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(saved).toEqual([]);
      puts.finish();
      await until(() => saved.length > 0, 'a snapshot once the put is done');
    } finally {
      puts.release();
      await started.stop();
    }
  });

  it('reads no further message while as many puts as allowed are in flight', async () => {
    const puts = heldPuts('bounded', 1);
    const { started, requests } = await consumer('bounded', puts.kept);
    try {
      await publishKept('bounded', 'b1');
      await publishKept('bounded', 'b2');
      await until(() => requests() === 1, 'the first record to be counted');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(requests()).toBe(1);
      puts.finish();
      await until(() => requests() === 2, 'the second record once there is room');
    } finally {
      puts.release();
      await started.stop();
    }
  });
});
