/**
 * The Grafana dashboard (deploy/grafana/infermesh-dashboard.json) reads only metrics the
 * monitor exports: every metric name in a panel's expression or a variable's query is one
 * that a running monitor with data serves on /metrics, so renaming a metric fails here
 * instead of leaving an empty panel.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, events, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { createMonitor, monitorConfig, type Monitor } from '@infermesh/monitor';
import { startNatsServer, type NatsServer } from '@infermesh/testing';

const DASHBOARD = join(dirname(fileURLToPath(import.meta.url)), 'grafana/infermesh-dashboard.json');
const logger = createLogger('grafana-test', { level: 'silent' });

interface Target { expr?: string; datasource?: { uid?: string } }
interface Panel { id: number; type: string; title: string; targets?: Target[]; datasource?: { uid?: string }; gridPos: { x: number; y: number; w: number; h: number } }
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const queries = dashboard.panels.filter((p) => p.type !== 'row');

let nats: NatsServer;
let bus: Bus;
let monitor: Monitor;
let exported: Set<string>;

/** Every name a Prometheus query can select from an exposition text: each family, with a histogram's and a summary's series. */
function namesIn(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  for (const [, name] of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) names.add(name);
  return names;
}

/** The infermesh metric names an expression selects (PromQL functions and labels are not named infermesh_*). */
function metricsOf(expr: string): string[] {
  return [...expr.matchAll(/\binfermesh_[a-zA-Z0-9_:]*/g)].map(([name]) => name);
}

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'grafana-test', prefix: 'infermesh', logger });
  monitor = await createMonitor({
    config: monitorConfig({ NATS_URL: nats.url, MONITOR_HOST: '127.0.0.1', MONITOR_PORT: '0', MONITOR_METRICS_PORT: '0', MONITOR_HEARTBEAT_WAIT_MS: '0' }),
    logger,
    bus,
  });
  const { metricsPort } = await monitor.start();
  // A worker announcing iris, and records of it (one failed), so the monitor's families hold series.
  const heartbeat = { workerId: 'worker-0', device: 'cpu', executionProvider: 'cpu', models: [{ name: 'iris', version: '1', ready: true }], queueDepth: 1, inFlight: 1 };
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  let text = '';
  for (let i = 0; i < 100 && !/^infermesh_requests_total\{model="iris",version="1",code="OK"\}/m.test(text); i++) {
    bus.publish(bus.subjects.heartbeat('worker-0'), events.heartbeat, { ...heartbeat, sentAtMs: Date.now() });
    await monitor.caughtUp;
    if (i % 10 === 0) {
      const records = [0, 0, 13].map((statusCode, n) => ({
        requestId: `r-${i}-${n}`, model: 'iris', version: '1', workerId: 'worker-0', statusCode, latencyUs: 1500, queueUs: 100, computeUs: 300, batchSize: 1, items: 1, timestampMs: Date.now(),
      }));
      await bus.publishDurable(bus.subjects.prediction('iris'), events.predictionBatch, { records });
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    text = await (await fetch(metricsUrl)).text();
  }
  expect(text).toMatch(/^infermesh_worker_queue_depth\{worker="worker-0",device="cpu"\} 1$/m);
  exported = namesIn(text);
}, 60_000);

afterAll(async () => {
  await monitor?.stop();
  await bus?.drain();
  await nats?.stop();
});

describe('the Grafana dashboard', () => {
  it('parses, with a Prometheus datasource variable every query uses', () => {
    const variable = dashboard.templating.list.find((v) => v.type === 'datasource');
    expect(variable).toMatchObject({ name: 'datasource', query: 'prometheus' });
    for (const panel of queries) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      for (const target of panel.targets ?? []) expect(target.datasource?.uid, panel.title).toBe('${datasource}');
    }
  });

  it('has a panel for each thing the monitor measures', () => {
    const metrics = new Set(queries.flatMap((p) => (p.targets ?? []).flatMap((t) => metricsOf(t.expr ?? ''))));
    expect([...metrics].sort()).toEqual(expect.arrayContaining([
      'infermesh_alert_firing', 'infermesh_feedback_total', 'infermesh_model_accuracy_recent', 'infermesh_model_drift_psi', 'infermesh_request_duration_seconds_bucket',
      'infermesh_requests_total', 'infermesh_worker_in_flight', 'infermesh_worker_queue_depth',
    ]));
  });

  it('selects only metrics a monitor with data exports', () => {
    const used = [
      ...queries.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr ?? '' }))),
      ...dashboard.templating.list.map((v) => ({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : (v.query?.query ?? '') })),
    ];
    const unknown = used.flatMap(({ where, expr }) => metricsOf(expr).filter((name) => !exported.has(name)).map((name) => `${where}: ${name}`));
    expect(unknown).toEqual([]);
    expect(used.filter(({ expr }) => metricsOf(expr).length > 0).length).toBeGreaterThanOrEqual(queries.length);
  });

  it('lays its panels out without overlaps, within 24 columns, with unique ids', () => {
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    const cells = new Set<string>();
    for (const { title, gridPos: { x, y, w, h } } of dashboard.panels) {
      expect(x + w, title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${title} overlaps another panel at ${i},${j}`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });
});
