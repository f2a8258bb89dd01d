/**
 * Alerting end to end inside the monitor's parts, with fake signals and evaluations at set
 * times: ListAlerts and WatchAlerts over real gRPC, transitions published on a real
 * nats-server, the Prometheus series, the status page's listener.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { contracts, monitorService, type Alert__Output, type ListAlertsResponse__Output, type MonitorClient } from '@infermesh/contracts';
import { connectBus, events, type Bus } from '@infermesh/bus';
import { createGrpcServer, type GrpcServer } from '@infermesh/grpc';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { Alerting, WEBHOOK_RESEND_MS } from './alerting.js';
import { alertHandlers } from './alert-api.js';
import { parseAlertRules } from './rules.js';
import type { AlertSignals } from './signals.js';
import type { AlertEvent } from './alert.js';
import { PrometheusText } from '../prometheus-text.js';

const logger = createLogger('alerting-test', { level: 'silent' });
const T0 = 1_700_000_000_000;

/** p99 latency per model, set by each test; every model has one version, '1'. */
const p99 = new Map<string, number>();
const signals: AlertSignals = {
  series: () => [...p99.keys()].sort().map((model) => ({ model, version: '1' })),
  models: () => [...p99.keys()],
  p99LatencyMs: (key) => ({ p99Ms: p99.get(key.model), requests: 100 }),
  errorRate: () => ({ rate: 0, requests: 0 }),
  drift: () => undefined,
  accuracy: () => undefined,
  servingWorkers: () => 1,
};

const rules = parseAlertRules(stringify({ rules: [
  { name: 'slow', kind: 'latency_p99', threshold: 250, window: '1m', for: '0s', severity: 'critical' },
] }), 'rules.yaml');

let nats: NatsServer;
let bus: Bus;
let alerting: Alerting;
let server: GrpcServer | undefined;
let client: MonitorClient | undefined;

async function startAlerting(): Promise<void> {
  alerting = new Alerting({ rules, signals, logger, intervalMs: 1000, bus });
  server = createGrpcServer({ name: 'alerting-test', logger, maxMessageBytes: 1024 * 1024 });
  server.addService('infermesh.v1.Monitor', monitorService(), alertHandlers(alerting));
  const port = await server.listen('127.0.0.1', 0);
  client = new (contracts().infermesh.v1.Monitor)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'alerting-test', prefix: 'infermesh', logger });
}, 30_000);

afterAll(async () => {
  await bus?.drain();
  await nats?.stop();
});

afterEach(async () => {
  p99.clear();
  client?.close();
  client = undefined;
  await alerting?.stop();
  await server?.shutdown(1000);
  server = undefined;
});

/** Reads a WatchAlerts stream: each message as it comes, and how the stream ended. */
function watch(sendFiring: boolean) {
  const messages: Alert__Output[] = [];
  const waiters: (() => void)[] = [];
  const stream = client!.WatchAlerts({ sendFiring });
  stream.on('data', (alert: Alert__Output) => {
    messages.push(alert);
    for (const wake of waiters.splice(0)) wake();
  });
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    stream.on('error', (error: grpc.ServiceError) => resolve({ code: error.code, details: error.details }));
    stream.on('status', (status: grpc.StatusObject) => status.code === grpc.status.OK && resolve({ code: status.code, details: status.details }));
  });
  const received = async (count: number) => {
    while (messages.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    return messages.slice(0, count);
  };
  return { stream, messages, received, ended };
}

/** Resolves once the server has the stream open: WatchAlerts' first transition must not race its opening. */
async function opened(count = 1): Promise<void> {
  while (alerting.watchers.size < count) await new Promise((resolve) => setTimeout(resolve, 5));
}

function listAlerts(includeResolved: boolean): Promise<ListAlertsResponse__Output> {
  return new Promise((resolve, reject) => client!.ListAlerts({ includeResolved }, (error, response) => (error ? reject(error) : resolve(response as ListAlertsResponse__Output))));
}

describe('WatchAlerts over gRPC', () => {
  it('streams an alert firing, then the same alert resolved', async () => {
    await startAlerting();
    const watcher = watch(false);
    await opened();
    p99.set('iris', 300);
    alerting.evaluate(T0);
    p99.set('iris', 100);
    alerting.evaluate(T0 + 1000);
    const [firing, resolved] = await watcher.received(2);
    expect(firing).toMatchObject({ rule: 'slow', kind: 'latency_p99', state: 'firing', severity: 'critical', model: 'iris', version: '1', value: 300, threshold: 250, startedMs: String(T0), resolvedMs: '0' });
    expect(resolved).toMatchObject({ rule: 'slow', state: 'resolved', value: 100, startedMs: String(T0), resolvedMs: String(T0 + 1000), atMs: String(T0 + 1000) });
    expect(resolved.fingerprint).toBe(firing.fingerprint);
    watcher.stream.cancel();
  });

  it('sends the alerts firing now first when asked (send_firing), then each transition', async () => {
    await startAlerting();
    p99.set('iris', 300);
    alerting.evaluate(T0);
    const watcher = watch(true);
    await opened();
    p99.set('resnet', 400);
    alerting.evaluate(T0 + 1000);
    const received = await watcher.received(2);
    expect(received.map((a) => [a.model, a.state, a.atMs])).toEqual([['iris', 'firing', String(T0)], ['resnet', 'firing', String(T0 + 1000)]]);
    watcher.stream.cancel();
  });

  it('ends every stream OK when the monitor stops', async () => {
    await startAlerting();
    const watcher = watch(false);
    await opened();
    await alerting.stop();
    expect(await watcher.ended).toEqual({ code: grpc.status.OK, details: 'OK' });
  });
});

describe('start and stop', () => {
  it('does not start evaluating once stopped (a catch-up that ends while the monitor stops)', async () => {
    let reads = 0;
    const counted: AlertSignals = { ...signals, series: () => (reads++, signals.series()) };
    const stopped = new Alerting({ rules, signals: counted, logger, intervalMs: 1000 });
    await stopped.stop();
    vi.useFakeTimers();
    try {
      stopped.start();
      vi.advanceTimersByTime(5000);
      expect(reads).toBe(0);
    } finally {
      await stopped.stop();
      vi.useRealTimers();
    }
  });
});

describe('ListAlerts over gRPC', () => {
  it('lists the alerts firing by start time, and the resolved ones after them when asked', async () => {
    await startAlerting();
    p99.set('a-resolved', 300);
    alerting.evaluate(T0);
    p99.set('b-late', 300);
    p99.set('c-early', 300);
    alerting.evaluate(T0 + 1000);
    p99.set('a-resolved', 100);
    p99.delete('b-late');
    alerting.evaluate(T0 + 2000);
    p99.set('b-late', 300);
    alerting.evaluate(T0 + 3000);
    const firing = await listAlerts(false);
    expect(firing.alerts.map((a) => [a.model, a.state, a.startedMs])).toEqual([['c-early', 'firing', String(T0 + 1000)], ['b-late', 'firing', String(T0 + 3000)]]);
    const all = await listAlerts(true);
    expect(all.alerts.map((a) => [a.model, a.state])).toEqual([['c-early', 'firing'], ['b-late', 'firing'], ['a-resolved', 'resolved'], ['b-late', 'resolved']]);
  });
});

describe('transitions elsewhere', () => {
  it('publishes each transition on NATS under its severity', async () => {
    await startAlerting();
    const got: { subject: string; alert: Alert__Output }[] = [];
    const sub = bus.subscribe(bus.subjects.alerts, events.alert, ({ subject, message }) => got.push({ subject, alert: message }));
    await bus.nc.flush();
    p99.set('iris', 300);
    alerting.evaluate(T0);
    p99.set('iris', 100);
    alerting.evaluate(T0 + 1000);
    for (let i = 0; got.length < 2 && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    sub.unsubscribe();
    expect(got.map(({ subject, alert }) => [subject, alert.state, alert.model, alert.summary])).toEqual([
      ['infermesh.alerts.critical', 'firing', 'iris', 'p99 latency of iris 1 over 1m is 300 ms, above 250 ms for 0s'],
      ['infermesh.alerts.critical', 'resolved', 'iris', 'p99 latency of iris 1 over 1m is 100 ms, at or below 225 ms for 0s'],
    ]);
  });

  it('writes the firing gauge and the transition counters', async () => {
    await startAlerting();
    p99.set('iris', 300);
    p99.set('resnet', 300);
    alerting.evaluate(T0);
    p99.set('resnet', 100);
    alerting.evaluate(T0 + 1000);
    const out = new PrometheusText();
    alerting.writePrometheus(out);
    const text = out.toString();
    expect(text).toContain('infermesh_alert_firing{alertname="slow",severity="critical",model="iris",version="1"} 1');
    expect(text).not.toContain('infermesh_alert_firing{alertname="slow",severity="critical",model="resnet"');
    expect(text).toContain('infermesh_alert_transitions_total{alertname="slow",state="firing"} 2');
    expect(text).toContain('infermesh_alert_transitions_total{alertname="slow",state="resolved"} 1');
  });

  it('tells the status page of each transition, and lists the alerts firing in the contract\'s shape', async () => {
    await startAlerting();
    const told: Alert__Output[] = [];
    const stop = alerting.onTransition((alert) => told.push(alert));
    p99.set('iris', 300);
    alerting.evaluate(T0);
    stop();
    p99.set('iris', 100);
    alerting.evaluate(T0 + 1000);
    expect(told.map((a) => [a.state, a.startedMs])).toEqual([['firing', String(T0)]]);
    expect(alerting.firing()).toEqual([]);
  });

  it('hands each transition to the webhook, and the alerts still firing again every minute (Alertmanager forgets silent ones)', async () => {
    const sent: AlertEvent[][] = [];
    const webhook = { send: (alerts: readonly AlertEvent[]) => void sent.push([...alerts]), stop: async () => undefined, writePrometheus: () => undefined };
    alerting = new Alerting({ rules, signals, logger, intervalMs: 1000, webhook });
    p99.set('iris', 300);
    alerting.evaluate(T0);
    alerting.evaluate(T0 + 1000);
    alerting.evaluate(T0 + WEBHOOK_RESEND_MS);
    p99.set('iris', 100);
    alerting.evaluate(T0 + WEBHOOK_RESEND_MS + 1000);
    expect(sent.map((batch) => batch.map((a) => [a.state, a.atMs - T0]))).toEqual([
      [['firing', 0]],
      [['firing', 0]],
      [['resolved', WEBHOOK_RESEND_MS + 1000]],
    ]);
  });
});
