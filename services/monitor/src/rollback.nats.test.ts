/**
 * Automatic rollback in the monitor, against a real nats-server with the mesh's users: an
 * operator sets a 90/10 canary, records of version 2 failing fire an error_rate rule with
 * rollback: true, and the traffic bucket (what every router watches) then sends 100 % to
 * version 1, set by the rule.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { PredictionRecord, TrafficPolicy__Output } from '@infermesh/contracts';
import { connectBus, events, natsConnectOptions, trafficPolicies, type Bus, type TrafficPolicies } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { createMonitor, monitorConfig, type Monitor } from './index.js';

const logger = createLogger('rollback-nats-test', { level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'monitor-rollback-'));

let nats: NatsServer;
const buses: Bus[] = [];
let router: Bus;
let worker: Bus;
let operator: TrafficPolicies;
let monitor: Monitor;

const connectAs = async (role: 'operator' | 'router' | 'worker' | 'monitor') => {
  const bus = await connectBus({ url: nats.url, name: `rollback-test-${role}`, prefix: 'infermesh', logger, connectOptions: natsConnectOptions(nats.credentials(role)) });
  buses.push(bus);
  return bus;
};

beforeAll(async () => {
  nats = await startNatsServer({ auth: true });
  router = await connectAs('router');
  worker = await connectAs('worker');
  operator = await trafficPolicies(await connectAs('operator'));
  const rules = join(dir, 'rules.yaml');
  writeFileSync(rules, stringify({ rules: [{ name: 'iris-canary-errors', kind: 'error_rate', model: 'iris', threshold: 0.5, window: '1m', min_requests: 10, rollback: true }] }));
  const config = monitorConfig({
    NATS_URL: nats.url, MONITOR_HOST: '127.0.0.1', MONITOR_PORT: '0', MONITOR_METRICS_PORT: '0', MONITOR_SNAPSHOT_KEY: 'rollback-test',
    MONITOR_HEARTBEAT_WAIT_MS: '0', MONITOR_ALERT_RULES_FILE: rules, MONITOR_ALERT_INTERVAL_MS: '50',
  });
  monitor = await createMonitor({ config, logger, bus: await connectAs('monitor') });
  await monitor.start();
  await monitor.caughtUp;
}, 30_000);

afterAll(async () => {
  await monitor?.stop();
  for (const bus of buses) await bus.drain();
  await nats?.stop();
}, 30_000);

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; !done(value) && i < 300; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    value = await read();
  }
  return value;
}

describe('automatic rollback on NATS', () => {
  it('rewrites the traffic policy to the serving version when the canary fails, set by the rule', async () => {
    await operator.put({ model: 'iris', weights: [{ version: '1', weight: 90 }, { version: '2', weight: 10 }], shadowVersions: [], setBy: 'bob@host', setAtMs: String(Date.now()), reason: 'canary' });
    worker.publish(worker.subjects.heartbeat('worker-a'), events.heartbeat, { workerId: 'worker-a', models: [{ name: 'iris', version: '1', ready: true }, { name: 'iris', version: '2', ready: true }] });
    await until(async () => monitor.state.known.labelsOf('iris', '2').version, (v) => v === '2');
    const records: PredictionRecord[] = Array.from({ length: 12 }, (_, i) => ({
      requestId: `r${i}`, model: 'iris', version: '2', workerId: 'worker-a', statusCode: 13, latencyUs: 1000, items: 1, timestampMs: Date.now(),
    }));
    await router.publishDurable(router.subjects.prediction('iris'), events.predictionBatch, { records });

    const policy = await until<TrafficPolicy__Output | undefined>(() => operator.get('iris'), (p) => p?.setBy !== 'bob@host');
    expect(policy).toMatchObject({ model: 'iris', weights: [{ version: '1', weight: 100 }], setBy: 'rule:iris-canary-errors' });
    expect(policy?.reason).toBe('rolled back from version 2 to 1: error rate of iris 2 over 1m is 100.0 %, above 50.0 % for 0s');
  });
});
