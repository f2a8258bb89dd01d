/**
 * startPredictionConsumer against a real nats-server: a PREDICTIONS stream that holds no
 * messages any more (purged, aged out) while its last sequence is past zero has nothing
 * to count, so the monitor is caught up at once instead of waiting for a message that
 * will never come.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, events, snapshotStore, streamName, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { MonitorState } from './monitor-state.js';
import { startPredictionConsumer } from './prediction-consumer.js';
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
