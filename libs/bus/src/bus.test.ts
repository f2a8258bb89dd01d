/**
 * The bus against a real nats-server with JetStream, started for this file on a free
 * port: protobuf events over core NATS, durable records in JetStream streams, W3C trace
 * context in the message headers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { context, propagation, trace, TraceFlags, type Context, type SpanContext } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import type { PredictionRecord, WorkerHeartbeat, WorkerHeartbeat__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { connectBus, events, streamName, type Bus, type Received } from './index.js';

const logger = createLogger('bus-test', { level: 'silent' });

let nats: NatsServer;
const buses: Bus[] = [];
let sequence = 0;

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  nats = await startNatsServer();
});

afterAll(async () => {
  await nats?.stop();
  propagation.disable();
  context.disable();
});

afterEach(async () => {
  for (const bus of buses.splice(0)) await bus.drain();
});

/** A bus under a prefix of its own, so tests share no subjects or streams. */
async function bus(prefix = `t${++sequence}`): Promise<Bus> {
  const connected = await connectBus({ url: nats.url, name: `bus-test-${prefix}`, prefix, logger });
  buses.push(connected);
  return connected;
}

/** Collects what a handler receives; `next(n)` waits until n messages arrived. */
function collector<T>() {
  const received: Received<T>[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  return {
    received,
    handler: (message: Received<T>) => {
      received.push(message);
      for (const waiter of waiters) if (received.length >= waiter.count) waiter.resolve();
    },
    next(count: number, timeoutMs = 10_000): Promise<Received<T>[]> {
      if (received.length >= count) return Promise.resolve(received);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`received ${received.length} of ${count} messages`)), timeoutMs);
        waiters.push({ count, resolve: () => (clearTimeout(timer), resolve(received)) });
      });
    },
  };
}

/** A field tag whose varint runs past the end: protobuf cannot decode it. */
const UNDECODABLE = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const SPAN: SpanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };

function inSpan<T>(fn: () => T): T {
  return context.with(trace.setSpanContext(context.active(), SPAN), fn);
}

function prediction(requestId: string, overrides: PredictionRecord = {}): PredictionRecord {
  return { requestId, model: 'iris', version: '1', workerId: 'w1', statusCode: 0, latencyUs: 1500, timestampMs: 1767225600000, items: 1, ...overrides };
}

describe('events over core NATS', () => {
  const heartbeat: WorkerHeartbeat = {
    workerId: 'worker-a',
    address: '10.0.0.5:8001',
    device: 'gpu0',
    models: [
      {
        name: 'iris',
        version: '1',
        ready: true,
        state: 'READY',
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }],
        outputs: [{ name: 'probabilities', datatype: 'FP32', shape: ['-1', '3'] }],
        maxBatchSize: 32,
        dynamicBatching: { preferredBatchSize: [8, 16], maxQueueDelayUs: 500, maxQueueSize: 64 },
        instances: 2,
      },
      { name: 'loading' },
    ],
    queueDepth: 3,
    inFlight: 2,
    sentAtMs: 1767225600123,
    executionProvider: 'cuda',
    rssBytes: 268435456,
  };

  /** The same heartbeat as the generated __Output type describes it: int64 as strings, every default present. */
  const decoded: WorkerHeartbeat__Output = {
    workerId: 'worker-a',
    address: '10.0.0.5:8001',
    device: 'gpu0',
    models: [
      {
        name: 'iris',
        version: '1',
        ready: true,
        state: 'READY',
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'features', datatype: 'FP32', shape: ['-1', '4'] }],
        outputs: [{ name: 'probabilities', datatype: 'FP32', shape: ['-1', '3'] }],
        maxBatchSize: 32,
        reason: '',
        dynamicBatching: { preferredBatchSize: [8, 16], maxQueueDelayUs: '500', maxQueueSize: 64 },
        instances: 2,
        driftReference: null,
        classLabels: [],
        pipelineSteps: [],
        placement: null,
      },
      { name: 'loading', version: '', ready: false, state: '', platform: '', inputs: [], outputs: [], maxBatchSize: 0, reason: '', dynamicBatching: null, instances: 0, driftReference: null, classLabels: [], pipelineSteps: [], placement: null },
    ],
    queueDepth: 3,
    inFlight: 2,
    sentAtMs: '1767225600123',
    draining: false,
    executionProvider: 'cuda',
    rssBytes: '268435456',
  };

  it('delivers a published heartbeat decoded in the shape of WorkerHeartbeat__Output', async () => {
    const b = await bus();
    const heartbeats = collector<WorkerHeartbeat__Output>();
    b.subscribe(b.subjects.heartbeats, events.heartbeat, heartbeats.handler);
    await b.nc.flush();
    b.publish(b.subjects.heartbeat('worker-a'), events.heartbeat, heartbeat);
    const [received] = await heartbeats.next(1);
    expect(received.message).toStrictEqual(decoded);
  });

  it('tells the handler the subject each event arrived on', async () => {
    const b = await bus('mesh');
    const heartbeats = collector<WorkerHeartbeat__Output>();
    b.subscribe(b.subjects.heartbeats, events.heartbeat, heartbeats.handler);
    await b.nc.flush();
    b.publish(b.subjects.heartbeat('worker-a'), events.heartbeat, { workerId: 'worker-a' });
    b.publish(b.subjects.heartbeat('worker.b'), events.heartbeat, { workerId: 'worker.b' });
    const received = await heartbeats.next(2);
    expect(received.map((r) => [r.subject, r.message.workerId])).toEqual([
      ['mesh.worker.heartbeat.worker-a', 'worker-a'],
      ['mesh.worker.heartbeat.worker_b', 'worker.b'],
    ]);
  });

  it('delivers events between two connections', async () => {
    const publisher = await bus('shared');
    const subscriber = await bus('shared');
    const heartbeats = collector<WorkerHeartbeat__Output>();
    subscriber.subscribe(subscriber.subjects.heartbeats, events.heartbeat, heartbeats.handler);
    await subscriber.nc.flush();
    publisher.publish(publisher.subjects.heartbeat('w'), events.heartbeat, { workerId: 'w', sentAtMs: 5 });
    const [received] = await heartbeats.next(1);
    expect(received.message).toMatchObject({ workerId: 'w', sentAtMs: '5' });
  });

  it('drops an undecodable event and goes on with the next', async () => {
    const b = await bus();
    const heartbeats = collector<WorkerHeartbeat__Output>();
    b.subscribe(b.subjects.heartbeats, events.heartbeat, heartbeats.handler);
    await b.nc.flush();
    b.nc.publish(b.subjects.heartbeat('bad'), UNDECODABLE);
    b.publish(b.subjects.heartbeat('good'), events.heartbeat, { workerId: 'good' });
    const received = await heartbeats.next(1);
    await b.nc.flush();
    expect(received.map((r) => r.message.workerId)).toEqual(['good']);
  });

  it('goes on delivering after a handler throws', async () => {
    const b = await bus();
    const heartbeats = collector<WorkerHeartbeat__Output>();
    b.subscribe(b.subjects.heartbeats, events.heartbeat, (received: Received<WorkerHeartbeat__Output>) => {
      if (received.message.workerId === 'bad') throw new Error('handler bug');
      heartbeats.handler(received);
    });
    await b.nc.flush();
    b.publish(b.subjects.heartbeat('w'), events.heartbeat, { workerId: 'bad' });
    b.publish(b.subjects.heartbeat('w'), events.heartbeat, { workerId: 'good' });
    const received = await heartbeats.next(1);
    expect(received.map((r) => r.message.workerId)).toEqual(['good']);
  });

  it('stops delivering after unsubscribe', async () => {
    const b = await bus();
    const heartbeats = collector<WorkerHeartbeat__Output>();
    const subscription = b.subscribe(b.subjects.heartbeats, events.heartbeat, heartbeats.handler);
    await b.nc.flush();
    b.publish(b.subjects.heartbeat('w'), events.heartbeat, { workerId: 'first' });
    await heartbeats.next(1);
    subscription.unsubscribe();
    b.publish(b.subjects.heartbeat('w'), events.heartbeat, { workerId: 'second' });
    await b.nc.flush();
    await sleep(100);
    expect(heartbeats.received.map((r) => r.message.workerId)).toEqual(['first']);
  });

  it('carries the publisher\'s trace context in the headers to the subscriber', async () => {
    const b = await bus();
    const heartbeats = collector<WorkerHeartbeat__Output>();
    b.subscribe(b.subjects.heartbeats, events.heartbeat, heartbeats.handler);
    await b.nc.flush();
    inSpan(() => b.publish(b.subjects.heartbeat('w'), events.heartbeat, { workerId: 'w' }));
    const [received] = await heartbeats.next(1);
    expect(trace.getSpanContext(received.context)).toMatchObject({ ...SPAN, isRemote: true });
  });

  it('gives no span context for an event published outside a span', async () => {
    const b = await bus();
    const heartbeats = collector<WorkerHeartbeat__Output>();
    b.subscribe(b.subjects.heartbeats, events.heartbeat, heartbeats.handler);
    await b.nc.flush();
    b.publish(b.subjects.heartbeat('w'), events.heartbeat, { workerId: 'w' });
    const [received] = await heartbeats.next(1);
    expect(trace.getSpanContext(received.context)).toBeUndefined();
  });
});

describe('JetStream streams', () => {
  it('creates the PREDICTIONS and FEEDBACK streams under the prefix, over the prefix\'s subjects, and no other', async () => {
    const b = await bus('jsprefix');
    await b.ensureStreams();
    const jsm = await b.js.jetstreamManager();
    const streams: { name: string; subjects: string[] | undefined }[] = [];
    for await (const info of jsm.streams.list()) if (info.config.name.startsWith('JSPREFIX_')) streams.push({ name: info.config.name, subjects: info.config.subjects });
    expect(streams.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'JSPREFIX_FEEDBACK', subjects: ['jsprefix.feedback.>'] },
      { name: 'JSPREFIX_PREDICTIONS', subjects: ['jsprefix.predictions.>'] },
    ]);
  });

  it('remembers a msgId for two minutes and keeps records for seven days', async () => {
    const b = await bus();
    await b.ensureStreams();
    const jsm = await b.js.jetstreamManager();
    const { config } = await jsm.streams.info(streamName(b.prefix, 'PREDICTIONS'));
    expect(config.duplicate_window).toBe(120e9);
    expect(config.max_age).toBe(7 * 24 * 3600e9);
  });

  it('remembers a feedback msgId for a day, so a request is labelled once', async () => {
    const b = await bus();
    await b.ensureStreams();
    const jsm = await b.js.jetstreamManager();
    const { config } = await jsm.streams.info(streamName(b.prefix, 'FEEDBACK'));
    expect(config.duplicate_window).toBe(24 * 3600e9);
    const first = await b.publishDurable(b.subjects.feedback('iris'), events.feedback, { model: 'iris', requestId: 'r1', labels: ['setosa'] }, 'k1');
    const again = await b.publishDurable(b.subjects.feedback('iris'), events.feedback, { model: 'iris', requestId: 'r1', labels: ['virginica'] }, 'k1');
    expect([first.duplicate, again.duplicate, again.sequence]).toEqual([false, true, first.sequence]);
  });

  it('leaves existing streams and their records alone when called again, from any connection', async () => {
    const first = await bus('again');
    await first.ensureStreams();
    await first.publishDurable(first.subjects.prediction('iris'), events.prediction, prediction('r1'));
    const second = await bus('again');
    await Promise.all([second.ensureStreams(), first.ensureStreams()]);
    const jsm = await second.js.jetstreamManager();
    expect((await jsm.streams.info(streamName('again', 'PREDICTIONS'))).state.messages).toBe(1);
  });

  it('creates the streams once when several services start at the same time', async () => {
    const all = await Promise.all([bus('race'), bus('race'), bus('race')]);
    await Promise.all(all.map((b) => b.ensureStreams()));
    const jsm = await all[0].js.jetstreamManager();
    const names: string[] = [];
    for await (const info of jsm.streams.list()) names.push(info.config.name);
    expect(names.filter((n) => n.startsWith('RACE_')).sort()).toEqual(['RACE_FEEDBACK', 'RACE_PREDICTIONS']);
  });

  it('publishDurable resolves once the record is stored', async () => {
    const b = await bus();
    await b.ensureStreams();
    await b.publishDurable(b.subjects.prediction('iris'), events.prediction, prediction('r1'));
    const jsm = await b.js.jetstreamManager();
    expect((await jsm.streams.info(streamName(b.prefix, 'PREDICTIONS'))).state.messages).toBe(1);
  });

  it('stores a record published twice with the same msgId once', async () => {
    const b = await bus();
    await b.ensureStreams();
    await b.publishDurable(b.subjects.prediction('iris'), events.prediction, prediction('r1'), 'r1');
    await b.publishDurable(b.subjects.prediction('iris'), events.prediction, prediction('r1'), 'r1');
    await b.publishDurable(b.subjects.prediction('iris'), events.prediction, prediction('r2'), 'r2');
    const jsm = await b.js.jetstreamManager();
    expect((await jsm.streams.info(streamName(b.prefix, 'PREDICTIONS'))).state.messages).toBe(2);
  });

  it('publishDurable rejects when no stream stores the subject', async () => {
    const b = await bus();
    await expect(b.publishDurable(b.subjects.prediction('iris'), events.prediction, prediction('r1'))).rejects.toThrow();
  });
});
