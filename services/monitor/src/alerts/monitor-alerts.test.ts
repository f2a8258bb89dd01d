/**
 * The monitor with an alert rules file, against a real nats-server and a real gRPC client:
 * records published on PREDICTIONS fire an alert seen over WatchAlerts, ListAlerts, NATS and
 * /metrics; a worker's heartbeats resolve a no_worker alert; a wrong rule stops the monitor
 * before it starts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { contracts, type Alert__Output, type ListAlertsResponse__Output, type MonitorClient, type PredictionRecord } from '@infermesh/contracts';
import { connectBus, events, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { createMonitor, monitorConfig, type Monitor } from '../index.js';
import { AlertRulesError } from './rules.js';

const logger = createLogger('monitor-alerts-test', { level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'monitor-alerts-'));

let nats: NatsServer;
let publisher: Bus;
let monitorBus: Bus;
let monitor: Monitor;
let client: MonitorClient;
let metricsUrl: string;

function rulesFile(name: string, rules: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, stringify({ rules }));
  return path;
}

function config(rulesPath: string) {
  return monitorConfig({
    NATS_URL: nats.url, MONITOR_HOST: '127.0.0.1', MONITOR_PORT: '0', MONITOR_METRICS_PORT: '0', MONITOR_SNAPSHOT_KEY: 'monitor-alerts-test',
    MONITOR_HEARTBEAT_WAIT_MS: '0', MONITOR_ALERT_RULES_FILE: rulesPath, MONITOR_ALERT_INTERVAL_MS: '50',
  });
}

function heartbeat(models: string[]): void {
  publisher.publish(publisher.subjects.heartbeat('worker-a'), events.heartbeat, { workerId: 'worker-a', models: models.map((name) => ({ name, version: '1', ready: true })) });
}

function failedRequests(count: number): Promise<unknown> {
  const records: PredictionRecord[] = Array.from({ length: count }, (_, i) => ({
    requestId: `r${i}`, model: 'iris', version: '1', workerId: 'worker-a', statusCode: 14, latencyUs: 1000, items: 1, timestampMs: Date.now(),
  }));
  return publisher.publishDurable(publisher.subjects.prediction('iris'), events.predictionBatch, { records });
}

function listAlerts(): Promise<ListAlertsResponse__Output> {
  return new Promise((resolve, reject) => client.ListAlerts({ includeResolved: true }, (error, response) => (error ? reject(error) : resolve(response as ListAlertsResponse__Output))));
}

beforeAll(async () => {
  nats = await startNatsServer();
  publisher = await connectBus({ url: nats.url, name: 'test-publisher', prefix: 'infermesh', logger });
  monitorBus = await connectBus({ url: nats.url, name: 'test-monitor', prefix: 'infermesh', logger });
  await publisher.ensureStreams();
  const rules = rulesFile('rules.yaml', [
    { name: 'iris-errors', kind: 'error_rate', model: 'iris', threshold: 0.5, window: '1m', min_requests: 10, for: '0s', severity: 'critical' },
    { name: 'no-resnet', kind: 'no_worker', model: 'resnet', for: '0s', resolve_for: '0s' },
  ]);
  monitor = await createMonitor({ config: config(rules), logger, bus: monitorBus });
  const { grpcPort, metricsPort } = await monitor.start();
  await monitor.caughtUp;
  client = new (contracts().infermesh.v1.Monitor)(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
}, 30_000);

afterAll(async () => {
  client?.close();
  await monitor?.stop();
  await monitorBus?.drain();
  await publisher?.drain();
  await nats?.stop();
}, 30_000);

describe('the monitor\'s alerts', () => {
  it('fires an error_rate alert from the records it counts, seen over WatchAlerts, ListAlerts, NATS and /metrics', async () => {
    const onNats: Alert__Output[] = [];
    const sub = publisher.subscribe(publisher.subjects.alert('critical'), events.alert, ({ message }) => onNats.push(message));
    await publisher.nc.flush();
    const stream = client.WatchAlerts({ sendFiring: true });
    stream.on('error', () => undefined);
    const firing = new Promise<Alert__Output>((resolve) => stream.on('data', (alert: Alert__Output) => alert.rule === 'iris-errors' && resolve(alert)));

    // Records count under their names once a worker has announced them.
    heartbeat(['iris']);
    for (let i = 0; monitor.state.known.labelsOf('iris', '1').version !== '1' && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    await failedRequests(12);
    const alert = await firing;
    expect(alert).toMatchObject({ rule: 'iris-errors', kind: 'error_rate', state: 'firing', severity: 'critical', model: 'iris', version: '1', value: 1, threshold: 0.5 });
    stream.cancel();

    expect((await listAlerts()).alerts.filter((a) => a.rule === 'iris-errors').map((a) => a.state)).toEqual(['firing']);
    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics).toContain('infermesh_alert_firing{alertname="iris-errors",severity="critical",model="iris",version="1"} 1');
    for (let i = 0; onNats.length === 0 && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    sub.unsubscribe();
    expect(onNats.map((a) => [a.rule, a.state])).toEqual([['iris-errors', 'firing']]);
  });

  it('fires no_worker for a model no worker serves, and resolves it once one does', async () => {
    const states = async () => (await listAlerts()).alerts.filter((a) => a.rule === 'no-resnet').map((a) => a.state);
    for (let i = 0; !(await states()).includes('firing') && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await states()).toEqual(['firing']);
    const beating = setInterval(() => heartbeat(['iris', 'resnet']), 50);
    try {
      for (let i = 0; (await states()).includes('firing') && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      clearInterval(beating);
    }
    expect(await states()).toEqual(['resolved']);
  });

  it('refuses to start with a wrong rule, naming it', async () => {
    const wrong = rulesFile('wrong.yaml', [{ name: 'ok', kind: 'no_worker' }, { name: 'typo', kind: 'latency_p99', threshold: 100, windw: '1m' }]);
    const refused = await createMonitor({ config: config(wrong), logger, bus: monitorBus }).then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(AlertRulesError);
    expect((refused as Error).message).toMatch(/^\S+wrong\.yaml rule 2 \('typo'\): unknown field 'windw'/);
  });
});
