/**
 * Alerts across the mesh, every service its own process and each its own NATS user: with a
 * no_worker rule for iris, stopping iris's only worker fires the alert, and starting one
 * resolves it; both transitions reach `infermesh alerts --follow` (the CLI, its own process),
 * a webhook receiver in Alertmanager's shape, and a NATS subscriber (the monitor's user may
 * publish alerts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { connectBus, events, natsConnectOptions, type Bus } from '@infermesh/bus';
import type { Alert__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { ROOT, startMesh, type Mesh } from './helpers/mesh.js';
import { until as waitUntil } from './helpers/until.js';

const logger = createLogger('alerts-e2e', { level: 'silent' });

let mesh: Mesh | undefined;
let bus: Bus | undefined;
let receiver: Server | undefined;
let cli: ChildProcess | undefined;
const webhook: { labels: Record<string, string>; endsAt?: string }[] = [];
const onNats: Alert__Output[] = [];
const cliLines: string[] = [];

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  return waitUntil(what, check, timeoutMs, () => mesh?.service('monitor').output().slice(-4000) ?? '');
}

beforeAll(async () => {
  receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      webhook.push(...(JSON.parse(body) as typeof webhook));
      response.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(0, '127.0.0.1', resolve));
  const dir = mkdtempSync(join(tmpdir(), 'alerts-e2e-'));
  const rules = join(dir, 'rules.yaml');
  writeFileSync(rules, stringify({ rules: [{ name: 'iris-no-worker', kind: 'no_worker', model: 'iris', for: '1s', resolve_for: '0s', severity: 'critical' }] }));
  mesh = await startMesh({
    natsAuth: true, traces: false, workerEnv: { WORKER_MODELS: 'iris' },
    env: {
      MONITOR_ALERT_RULES_FILE: rules, MONITOR_ALERT_INTERVAL_MS: '200',
      MONITOR_ALERT_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/api/v2/alerts`,
    },
  });
  bus = await connectBus({ url: mesh.nats.url, name: 'alerts-e2e', prefix: 'infermesh', logger, connectOptions: natsConnectOptions(mesh.nats.credentials('admin')) });
  bus.subscribe(bus.subjects.alerts, events.alert, ({ message }) => onNats.push(message));
  cli = spawn(process.execPath, [join(ROOT, 'cli', 'bin', 'infermesh.js'), 'alerts', '--follow', '--json', '--monitor', mesh.monitorAddress], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let pending = '';
  cli.stdout?.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString('utf8')).split('\n');
    pending = lines.pop() ?? '';
    cliLines.push(...lines.filter(Boolean));
  });
}, 180_000);

afterAll(async () => {
  cli?.kill('SIGKILL');
  await bus?.drain();
  await mesh?.stop();
  receiver?.close();
}, 60_000);

describe('a no_worker alert across the mesh', () => {
  it('fires when iris loses its only worker and resolves when one serves it again, seen by the CLI, the webhook and NATS', async () => {
    await mesh!.service('worker-0').stop();
    const fired = await until('firing line from the CLI', () => cliLines.map((l) => JSON.parse(l) as Alert__Output).find((a) => a.rule === 'iris-no-worker' && a.state === 'firing'));
    expect(fired).toMatchObject({ kind: 'no_worker', severity: 'critical', model: 'iris', value: 0, summary: 'no worker serves iris (for 1s)' });

    await mesh!.startWorker('worker-1');
    const resolved = await until('resolved line from the CLI', () => cliLines.map((l) => JSON.parse(l) as Alert__Output).find((a) => a.state === 'resolved'));
    expect(resolved).toMatchObject({ rule: 'iris-no-worker', fingerprint: fired.fingerprint, startedMs: fired.startedMs, value: 1 });

    await until('both transitions on NATS', () => (onNats.length >= 2 ? true : undefined), 10_000);
    expect(onNats.map((a) => [a.rule, a.state])).toEqual([['iris-no-worker', 'firing'], ['iris-no-worker', 'resolved']]);
    await until('both transitions at the webhook', () => (webhook.length >= 2 ? true : undefined), 10_000);
    expect(webhook.map((a) => [a.labels.alertname, a.labels.model, a.labels.severity, a.endsAt === undefined ? 'firing' : 'resolved'])).toEqual([
      ['iris-no-worker', 'iris', 'critical', 'firing'],
      ['iris-no-worker', 'iris', 'critical', 'resolved'],
    ]);

    cli!.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => cli!.once('exit', resolve));
    expect(code).toBe(0);
  }, 120_000);
});
