/** The router's prediction records against a real nats-server: batched, each with its request's trace context, none lost. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, events, streamName, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import type { PredictionBatch__Output } from '@infermesh/contracts';
import { PredictionPublisher } from './prediction-publisher.js';

const logger = createLogger('test', { level: 'silent' });
let nats: NatsServer;
let bus: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'publisher test', prefix: 'infermesh', logger });
  await bus.ensureStreams();
});

afterAll(async () => {
  await bus?.drain();
  await nats?.stop();
});

async function storedBatches(): Promise<PredictionBatch__Output[]> {
  const jsm = await bus.js.jetstreamManager();
  const info = await jsm.streams.info(streamName('infermesh', 'PREDICTIONS'));
  const batches: PredictionBatch__Output[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const stored = await jsm.streams.getMessage(streamName('infermesh', 'PREDICTIONS'), { seq });
    if (stored) batches.push(events.predictionBatch.decode(stored.data));
  }
  return batches;
}

describe('PredictionPublisher', () => {
  it('stores the records of many requests as few batches, each record with its own traceparent', async () => {
    const publisher = new PredictionPublisher(bus, logger, { capacity: 1000, batchSize: 50, lingerMs: 20 });
    const traceparent = (i: number) => `00-${i.toString(16).padStart(32, '0')}-${'1'.repeat(16)}-01`;
    for (let i = 0; i < 120; i++) publisher.publish({ requestId: `r${i}`, model: 'iris', version: '1', statusCode: 0, traceparent: traceparent(i) });
    await publisher.flush(5000);
    const batches = await storedBatches();
    const records = batches.flatMap((b) => b.records);
    expect(records.map((r) => r.requestId)).toEqual(Array.from({ length: 120 }, (_, i) => `r${i}`));
    expect(batches.length).toBeLessThanOrEqual(3);
    expect(records.map((r) => r.traceparent)).toEqual(Array.from({ length: 120 }, (_, i) => traceparent(i)));
  });

  it('splits a batch larger than the NATS server\'s max_payload and stores every record', async () => {
    const before = (await storedBatches()).flatMap((b) => b.records).length;
    const publisher = new PredictionPublisher(bus, logger, { capacity: 1000, batchSize: 200, lingerMs: 20 });
    // 200 records of 10 kB: 2 MB, twice the server's default max_payload of 1 MB.
    for (let i = 0; i < 200; i++) publisher.publish({ requestId: `big-${i}-${'x'.repeat(10_000)}`, model: 'iris', version: '1', statusCode: 0 });
    publisher.publish({ requestId: 'after', model: 'iris', version: '1', statusCode: 0 });
    await publisher.flush(10_000);
    const stored = (await storedBatches()).flatMap((b) => b.records).slice(before).map((r) => r.requestId.split('-x')[0]);
    // Each once; batches are stored concurrently, so 'after' may come first.
    expect(stored.sort()).toEqual([...Array.from({ length: 200 }, (_, i) => `big-${i}`), 'after'].sort());
  });
});
