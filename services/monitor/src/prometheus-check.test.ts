/**
 * What the monitor serves on /metrics passes `promtool check metrics` (Prometheus's own
 * linter: HELP and TYPE for every family, `_total` only on counters, no family twice,
 * units in names), with data in every family a running mesh fills.
 *
 * promtool is required, as nats-server is: the test fails when it is missing (CI installs
 * Debian's `prometheus` package, which ships /usr/bin/promtool; PROMTOOL names another).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { connectBus, events, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { createMonitor, monitorConfig, type Monitor } from './index.js';
import { record } from './records.fixture.js';

const logger = createLogger('prometheus-check-test', { level: 'silent' });

let nats: NatsServer;
let bus: Bus;
let monitor: Monitor;
let metricsUrl: string;

function promtoolBinary(): string {
  const candidates = [process.env.PROMTOOL, ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'promtool')), '/usr/bin/promtool'];
  const found = candidates.find((candidate) => candidate && existsSync(candidate));
  if (!found) throw new Error('promtool was not found: install it (Debian: apt-get install prometheus) or set PROMTOOL');
  return found;
}

/** promtool's verdict on an exposition text: its exit code and what it printed. */
function promtoolCheck(text: string): { status: number | null; output: string } {
  const result = spawnSync(promtoolBinary(), ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'prometheus-check-test', prefix: 'infermesh', logger });
  // Rules the data below breaks at once, so alert series are linted too.
  const rules = join(mkdtempSync(join(tmpdir(), 'infermesh-promtool-')), 'rules.yaml');
  writeFileSync(rules, 'rules:\n  - {name: slow, kind: latency_p99, threshold: 0.1, window: 1m}\n  - {name: drifting, kind: drift, threshold: 0.25, severity: critical}\n');
  const config = monitorConfig({
    NATS_URL: nats.url, MONITOR_HOST: '127.0.0.1', MONITOR_PORT: '0', MONITOR_METRICS_PORT: '0', MONITOR_HEARTBEAT_WAIT_MS: '0',
    MONITOR_ALERT_RULES_FILE: rules, MONITOR_ALERT_INTERVAL_MS: '50',
  });
  monitor = await createMonitor({ config, logger, bus });
  const { metricsPort } = await monitor.start();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  fillWithData(monitor);
  await monitor.caughtUp;
}, 60_000);

afterAll(async () => {
  await monitor?.stop();
  await bus?.drain();
  await nats?.stop();
});

/** A reference profile of two features, two bins each. */
const REFERENCE = {
  profileId: 'profile-1', rows: '100',
  features: [{ name: 'sepal_length', edges: [5.8], expected: [0.5, 0.5] }, { name: 'petal_width', edges: [1.3], expected: [0.5, 0.5] }],
};

/**
 * Several models and versions, errors, clients, an unknown model, drift with enough inputs,
 * accuracy from feedback (joined and not), workers (one draining): every family has samples.
 */
function fillWithData(m: Monitor): void {
  const now = Date.now();
  const models = [{ name: 'iris', version: '1', ready: true }, { name: 'iris', version: '2', ready: true }, { name: 'text-direction', version: '1', ready: true }];
  m.workers.observe({ workerId: 'worker-cpu0', device: 'cpu', executionProvider: 'cpu', models, queueDepth: 3, inFlight: 1, draining: false });
  m.workers.observe({ workerId: 'worker-gpu0', device: 'gpu0', executionProvider: 'cuda', models: models.slice(2), queueDepth: 0, inFlight: 0, draining: true });
  // Through the codec, as a heartbeat arrives: every field of the message present.
  const announced = models.map((model) => ({ ...model, driftReference: model.name === 'iris' ? REFERENCE : null, classLabels: ['setosa', 'versicolor', 'virginica'] }));
  m.state.announce(events.heartbeat.decode(events.heartbeat.encode({ workerId: 'worker-cpu0', models: announced })));
  for (let i = 0; i < 200; i++) {
    const model = models[i % models.length];
    m.state.count(record({
      model: model.name, version: model.version, timestampMs: String(now - i), latencyUs: String(500 + i * 300), items: 1, batchSize: 1 + (i % 8),
      statusCode: i % 7 === 0 ? 3 : 0, clientId: i % 2 === 0 ? 'key-a' : '',
      ...(model.name === 'iris' ? { driftBins: Buffer.from([i % 2, 1]), profileId: REFERENCE.profileId } : {}),
    }));
  }
  m.state.count(record({ model: 'not-announced', timestampMs: String(now) }));
  m.state.count(record({ model: '', timestampMs: String(now) }));
  m.state.accuracy.apply({ model: 'iris', version: '1', predictedLabels: ['setosa', 'virginica'] }, ['setosa', 'versicolor']);
  m.state.accuracy.apply({ model: 'iris', version: '1', predictedLabels: ['setosa'] }, ['setosa', 'setosa']);
  m.state.accuracy.unjoined('iris', 'unknown');
}

describe('/metrics', () => {
  it('passes promtool check metrics', async () => {
    let text = '';
    // The alert rules are evaluated every 50 ms once the monitor has caught up.
    for (let i = 0; i < 100 && !/^infermesh_alert_firing\{alertname="drifting"/m.test(text); i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      const response = await fetch(metricsUrl);
      expect(response.status).toBe(200);
      text = await response.text();
    }
    expect(text).toMatch(/^infermesh_alert_firing\{alertname="slow",severity="warning",model="iris",version="1"\} 1$/m);
    expect(text).toMatch(/^infermesh_alert_firing\{alertname="drifting",severity="critical",model="iris",version="1"\} 1$/m);
    // The data is there, so promtool checks real samples, not only HELP and TYPE lines.
    expect(text).toMatch(/^infermesh_request_duration_seconds_bucket\{le="\+Inf",model="iris",version="1"\} \d+$/m);
    expect(text).toMatch(/^infermesh_worker_queue_depth\{worker="worker-cpu0",device="cpu"\} 3$/m);
    expect(text).toMatch(/^infermesh_model_drift_psi\{model="iris",version="1",feature="petal_width"\} [\d.e-]+$/m);
    expect(text).toMatch(/^infermesh_model_accuracy_recent\{model="iris",version="1"\} 0\.5$/m);
    expect(promtoolCheck(text)).toEqual({ status: 0, output: '' });
  });

  it('is checked by a promtool that does reject a gauge named as a counter', () => {
    const verdict = promtoolCheck('# HELP queue_total Not a counter.\n# TYPE queue_total gauge\nqueue_total 1\n');
    expect(verdict.status).not.toBe(0);
    expect(verdict.output).toContain('non-counter metrics should not have "_total" suffix');
  });
});
