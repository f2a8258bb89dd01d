/**
 * The monitor against a real nats-server (JetStream) and a real gRPC client: records go
 * in through the PREDICTIONS stream, statistics come out over GetModelStats,
 * GetClientUsage and /metrics, and a monitor started again shows the same counts.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { SpanKind, context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { contracts, type GetClientUsageRequest, type GetClientUsageResponse__Output, type GetModelStatsRequest, type GetModelStatsResponse__Output, type PredictionRecord } from '@infermesh/contracts';
import type { MonitorClient } from '@infermesh/contracts';
import { connectBus, events, snapshotStore, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { createMonitor, monitorConfig, MonitorState, type Monitor } from './index.js';
import { CONSUME_SPAN_NAME } from './prediction-consumer.js';

const logger = createLogger('monitor-test', { level: 'silent' });
const spans = new InMemorySpanExporter();

let nats: NatsServer;
let publisher: Bus;
let monitorBus: Bus;
let monitor: Monitor;
let client: MonitorClient;
let metricsUrl: string;
let heartbeats: NodeJS.Timeout;

/** The model versions a worker announces in these tests; records of others count under `_unknown`. */
const SERVED = [['iris', '1'], ['resnet', '3'], ['traced', '1'], ['reused-ids', '1'], ['reused-ids', 'marker'], ['poisoned', '1'], ['offline', '1'], ['restarted', '1'], ['crashed', '1'], ['billed', '1']];

async function startMonitor(env: Record<string, string> = {}): Promise<Monitor> {
  const config = monitorConfig({
    NATS_URL: nats.url, MONITOR_HOST: '127.0.0.1', MONITOR_PORT: '0', MONITOR_METRICS_PORT: '0', MONITOR_SNAPSHOT_KEY: 'monitor-test',
    MONITOR_HEARTBEAT_WAIT_MS: '300', ...env,
  });
  monitor = await createMonitor({ config, logger, bus: monitorBus });
  const { grpcPort, metricsPort } = await monitor.start();
  await monitor.caughtUp;
  client?.close();
  const { Monitor: MonitorClientConstructor } = contracts().infermesh.v1;
  client = new MonitorClientConstructor(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  return monitor;
}

let sequence = 0;

function publish(overrides: PredictionRecord): Promise<void> {
  return publishBatch([overrides]);
}

/** One PredictionBatch message, as a router publishes the records it has gathered. */
function publishBatch(records: PredictionRecord[]): Promise<void> {
  const batch = records.map(withDefaults);
  return publisher.publishDurable(publisher.subjects.prediction(batch[0].model ?? ''), events.predictionBatch, { records: batch }).then(() => undefined);
}

function withDefaults(overrides: PredictionRecord): PredictionRecord {
  sequence += 1;
  return {
    requestId: `req-${sequence}`,
    model: 'iris',
    version: '1',
    workerId: 'worker-a',
    statusCode: 0,
    latencyUs: 1000,
    queueUs: 100,
    computeUs: 200,
    batchSize: 1,
    items: 1,
    timestampMs: Date.now(),
    ...overrides,
  };
}

function getModelStats(request: GetModelStatsRequest): Promise<GetModelStatsResponse__Output> {
  return new Promise((resolve, reject) => {
    client.GetModelStats(request, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response as GetModelStatsResponse__Output)));
  });
}

function getClientUsage(request: GetClientUsageRequest): Promise<GetClientUsageResponse__Output> {
  return new Promise((resolve, reject) => {
    client.GetClientUsage(request, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response as GetClientUsageResponse__Output)));
  });
}

async function refusal(request: GetModelStatsRequest): Promise<grpc.ServiceError> {
  try {
    await getModelStats(request);
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error(`GetModelStats(${JSON.stringify(request)}) succeeded`);
}

/** Retries `check` until it stops throwing: records arrive asynchronously. */
async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
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

async function requestCountOf(model: string): Promise<number> {
  const { stats } = await getModelStats({ model });
  return stats.reduce((sum, s) => sum + Number(s.requestCount), 0);
}

beforeAll(async () => {
  // A real SDK in-process, so the consumer span and its parent can be inspected.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));

  nats = await startNatsServer();
  publisher = await connectBus({ url: nats.url, name: 'test-publisher', prefix: 'infermesh', logger });
  monitorBus = await connectBus({ url: nats.url, name: 'test-monitor', prefix: 'infermesh', logger });
  await publisher.ensureStreams();
  // A worker announcing its models every 100 ms (workers do every second).
  const heartbeat = { workerId: 'worker-a', models: SERVED.map(([name, version]) => ({ name, version, ready: true })) };
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
  trace.disable();
  propagation.disable();
  context.disable();
}, 30_000);

describe('monitor', () => {
  it('counts published records and reports exact percentiles per model version', async () => {
    // iris v1: latencies 1..100 ms; the last ten fail, so queue/compute come from 1..90.
    const published: Promise<void>[] = [];
    for (let i = 1; i <= 100; i++) {
      const failed = i > 90;
      published.push(publish({ latencyUs: i * 1000, queueUs: failed ? 0 : i * 100, computeUs: failed ? 0 : i * 200, statusCode: failed ? 14 : 0, items: 2, batchSize: 4 }));
    }
    published.push(publish({ model: 'resnet', version: '3', latencyUs: 25_000 }));
    await Promise.all(published);

    await eventually(async () => expect(await requestCountOf('iris')).toBe(100));
    const { stats } = await getModelStats({ model: 'iris', version: '1' });
    expect(stats).toHaveLength(1);
    const [iris] = stats;
    expect(iris).toMatchObject({ model: 'iris', version: '1', requestCount: '100', errorCount: '10', items: '200' });
    expect(Number(iris.lastRequestMs)).toBeGreaterThan(Date.now() - 60_000);
    expect(iris.latency).toEqual({ p50Ms: 50, p90Ms: 90, p99Ms: 99 });
    expect(iris.queue?.p50Ms).toBeCloseTo(4.5);
    expect(iris.queue?.p90Ms).toBeCloseTo(8.1);
    expect(iris.queue?.p99Ms).toBeCloseTo(9.0);
    expect(iris.compute?.p50Ms).toBeCloseTo(9.0);
    expect(iris.compute?.p99Ms).toBeCloseTo(18.0);

    await eventually(async () => expect(await requestCountOf('resnet')).toBe(1));
    const all = await getModelStats({});
    expect(all.stats.map((s) => `${s.model}:${s.version}`)).toEqual(['iris:1', 'resnet:3']);
  });

  it('answers NOT_FOUND naming the model when it has no records', async () => {
    const error = await refusal({ model: 'never-seen' });
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toContain('never-seen');

    const version = await refusal({ model: 'iris', version: '42' });
    expect(version.code).toBe(grpc.status.NOT_FOUND);
    expect(version.details).toContain('iris');
  });

  it('refuses a version without a model as INVALID_ARGUMENT', async () => {
    const error = await refusal({ version: '1' });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('serves the Prometheus series on GET /metrics, ok on /healthz and 404 elsewhere', async () => {
    const response = await fetch(`${metricsUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    expect(text).toContain('infermesh_requests_total{model="iris",version="1",code="OK"} 90');
    expect(text).toContain('infermesh_requests_total{model="iris",version="1",code="UNAVAILABLE"} 10');
    expect(text).toContain('infermesh_items_total{model="iris",version="1"} 200');
    expect(text).toContain('infermesh_request_duration_seconds_bucket{le="0.05",model="iris",version="1"} 50');
    expect(text).toContain('infermesh_queue_duration_seconds_count{model="iris",version="1"} 90');
    expect(text).toContain('infermesh_compute_duration_seconds_count{model="iris",version="1"} 90');
    expect(text).toContain('infermesh_batch_size_bucket{le="4",model="iris",version="1"} 90');
    expect(text).toMatch(/infermesh_request_latency_seconds\{quantile="0\.99",model="iris",version="1"\} /);
    expect(text).toContain('process_cpu_user_seconds_total');

    const health = await fetch(`${metricsUrl}/healthz`);
    expect(health.status).toBe(200);
    expect((await health.text()).trim()).toBe('ok');
    expect((await fetch(`${metricsUrl}/nothing-here`)).status).toBe(404);
  });

  it("records a CONSUMER span per record inside the publisher's trace", async () => {
    const tracer = trace.getTracer('monitor-test');
    const parent = tracer.startSpan('router infer', { kind: SpanKind.SERVER });
    await context.with(trace.setSpan(context.active(), parent), () => publish({ requestId: 'traced-request', model: 'traced' }));
    parent.end();

    const consumed = await eventually(() => {
      const span = spans.getFinishedSpans().find((s) => s.name === CONSUME_SPAN_NAME && s.attributes['infermesh.request_id'] === 'traced-request');
      if (!span) throw new Error('no consumer span yet');
      return span;
    });
    expect(consumed.kind).toBe(SpanKind.CONSUMER);
    expect(consumed.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(consumed.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(consumed.attributes['infermesh.record.outcome']).toBe('counted');
  });

  it('counts every request of a client that reuses request ids or sends none, within a batch and across batches', async () => {
    await publishBatch([
      { requestId: 'reused', model: 'reused-ids' },
      { requestId: 'reused', model: 'reused-ids' },
      { requestId: '', model: 'reused-ids' },
      { requestId: '', model: 'reused-ids' },
    ]);
    await publishBatch([{ requestId: 'reused', model: 'reused-ids' }, { requestId: '', model: 'reused-ids' }]);
    // Messages of one consumer are handled in order: once the marker counts, so did the batches before it.
    await publish({ model: 'reused-ids', version: 'marker' });
    await eventually(async () => expect((await getModelStats({ model: 'reused-ids', version: 'marker' })).stats).toHaveLength(1));
    const { stats } = await getModelStats({ model: 'reused-ids', version: '1' });
    expect(stats[0].requestCount).toBe('6');
  });

  it('counts the records after an undecodable message and after a record it cannot count', async () => {
    const count = monitor.state.count.bind(monitor.state);
    const spy = vi.spyOn(monitor.state, 'count').mockImplementation((r) => {
      if (r.workerId === 'poison') throw new Error('cannot count this record');
      return count(r);
    });
    try {
      await publisher.js.publish(publisher.subjects.prediction('poisoned'), new TextEncoder().encode('not a PredictionBatch'));
      await publishBatch([{ model: 'poisoned' }, { model: 'poisoned', workerId: 'poison' }, { model: 'poisoned' }]);
      await publish({ model: 'poisoned' });
      await eventually(async () => expect(await requestCountOf('poisoned')).toBe(3));
      const text = await (await fetch(`${metricsUrl}/metrics`)).text();
      expect(text).toContain('infermesh_monitor_messages_undecodable_total 1');
      expect(text).toContain('infermesh_monitor_records_dropped_total{reason="failed"} 1');
    } finally {
      spy.mockRestore();
    }
  });

  it('answers usage per client and model over GetClientUsage, requests without a key as anonymous', async () => {
    await publishBatch([
      { model: 'billed', clientId: 'key-b', items: 2 },
      { model: 'billed', clientId: 'key-b', items: 2, statusCode: 8 },
      { model: 'billed', clientId: 'key-b', items: 2 },
      { model: 'billed', clientId: '', items: 1 },
    ]);
    await eventually(async () => expect(await requestCountOf('billed')).toBe(4));
    expect((await getClientUsage({ clientId: 'key-b' })).usage).toEqual([{ clientId: 'key-b', model: 'billed', requestCount: '3', errorCount: '1', items: '6' }]);
    expect((await getClientUsage({ model: 'billed' })).usage.map((u) => [u.clientId, u.requestCount])).toEqual([['anonymous', '1'], ['key-b', '3']]);
    const text = await (await fetch(`${metricsUrl}/metrics`)).text();
    expect(text).toContain('infermesh_client_requests_total{client="key-b",model="billed"} 3');
    expect(text).toContain('infermesh_client_items_total{client="key-b",model="billed"} 6');
  });

  it('refuses a client id longer than any id as INVALID_ARGUMENT, and answers NOT_FOUND for a client without records', async () => {
    const long = await getClientUsage({ clientId: 'k'.repeat(10_000) }).catch((e: grpc.ServiceError) => e);
    expect((long as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((long as grpc.ServiceError).details.length).toBeLessThan(200);
    const missing = await getClientUsage({ clientId: 'never-seen' }).catch((e: grpc.ServiceError) => e);
    expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it('shows the same counts, percentiles and client usage after a restart, and counts the records stored while it was down', async () => {
    for (let i = 1; i <= 20; i++) await publish({ model: 'restarted', latencyUs: i * 1000, clientId: 'key-r' });
    await eventually(async () => expect(await requestCountOf('restarted')).toBe(20));
    const before = await getModelStats({ model: 'restarted' });
    const usageBefore = await getClientUsage({ clientId: 'key-r' });

    await monitor.stop();
    // The windows came with the snapshot: nothing stored before it is read again.
    const recall = vi.spyOn(MonitorState.prototype, 'recall');
    await startMonitor();
    expect(recall).not.toHaveBeenCalled();
    recall.mockRestore();
    expect(await getModelStats({ model: 'restarted' })).toEqual(before);
    expect(await getClientUsage({ clientId: 'key-r' })).toEqual(usageBefore);
    expect(before.stats[0].latency).toEqual({ p50Ms: 10, p90Ms: 18, p99Ms: 20 });

    await monitor.stop();
    for (let i = 0; i < 5; i++) await publish({ model: 'restarted', clientId: 'key-r' });
    await startMonitor();
    expect(await requestCountOf('restarted')).toBe(25);
    expect((await getClientUsage({ clientId: 'key-r' })).usage[0].requestCount).toBe('25');
  });

  it('counts once, from the sequence its snapshot covers, the records after a snapshot that is not its last (a crash)', async () => {
    for (let i = 1; i <= 5; i++) await publish({ model: 'crashed', latencyUs: i * 1000 });
    await eventually(async () => expect(await requestCountOf('crashed')).toBe(5));
    // What a monitor killed after its last periodic snapshot leaves behind; without the
    // windows, as a snapshot too large for one message is saved: they are refilled from the stream.
    const snapshot = monitor.state.encode({ windows: false });
    const covered = monitor.state.mark.sequence;
    await (await snapshotStore(publisher, 'crash-test')).save(snapshot);
    for (let i = 6; i <= 10; i++) await publish({ model: 'crashed', latencyUs: i * 1000 });
    await eventually(async () => expect(await requestCountOf('crashed')).toBe(10));
    const before = await getModelStats({ model: 'crashed' });

    const running = monitor;
    await startMonitor({ MONITOR_SNAPSHOT_KEY: 'crash-test' });
    expect(covered).toBeGreaterThan(0);
    expect(await getModelStats({ model: 'crashed' })).toEqual(before);
    expect(before.stats[0].latency).toEqual({ p50Ms: 5, p90Ms: 9, p99Ms: 10 });
    expect(await requestCountOf('restarted')).toBe(25);
    // The undecodable message of an earlier test was read again for the windows, and is counted once.
    expect(await (await fetch(`${metricsUrl}/metrics`)).text()).toContain('infermesh_monitor_messages_undecodable_total 1\n');
    await running.stop();
  });

  it('counts the records stored before it started without a span each: a first start may read days of them', async () => {
    const tracedSpans = () => spans.getFinishedSpans().filter((s) => s.name === CONSUME_SPAN_NAME && s.attributes['infermesh.request_id'] === 'traced-request').length;
    expect(tracedSpans()).toBe(1);
    const running = monitor;
    await startMonitor({ MONITOR_SNAPSHOT_KEY: 'first-start' });
    expect(await requestCountOf('traced')).toBe(1);
    expect(tracedSpans()).toBe(1);
    await running.stop();
  });

  it('counts records of models no worker announced under _unknown, and keeps /metrics small', async () => {
    const unknownBefore = (await getModelStats({ model: '_unknown' }).catch(() => ({ stats: [] }))).stats.reduce((sum, s) => sum + Number(s.requestCount), 0);
    for (let batch = 0; batch < 20; batch++) {
      await publishBatch(Array.from({ length: 250 }, (_, i) => ({ model: `made-up-${batch * 250 + i}`, version: String(i) })));
    }
    await eventually(async () => expect(await requestCountOf('_unknown')).toBe(unknownBefore + 5000));
    const text = await (await fetch(`${metricsUrl}/metrics`)).text();
    expect(text).not.toContain('made-up');
    expect(text.length).toBeLessThan(256 * 1024);
  });
});
