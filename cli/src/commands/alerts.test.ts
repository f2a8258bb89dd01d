/** How `infermesh alerts` shows alerts, and how --follow keeps following a monitor that restarts (a real gRPC server in-process). */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { contracts, monitorService, type Alert, type Alert__Output } from '@infermesh/contracts';
import { createGrpcServer, type GrpcServer } from '@infermesh/grpc';
import { createLogger } from '@infermesh/log';
import { ago, alertLine, alertTable, alerts, valueVsThreshold } from './alerts.js';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);

function alert(overrides: Partial<Alert__Output> = {}): Alert__Output {
  return {
    rule: 'iris-slow', kind: 'latency_p99', state: 'firing', severity: 'critical', model: 'iris', version: '1', feature: '', value: 312, threshold: 250,
    summary: 'p99 latency of iris 1 over 1m is 312 ms, above 250 ms for 30s', startedMs: String(T0), resolvedMs: '0', atMs: String(T0), fingerprint: 'f1',
    ...overrides,
  };
}

describe('alert table and lines', () => {
  it('shows rule, model:version, feature, value against threshold and since when, in aligned columns', () => {
    const lines = alertTable([alert(), alert({ rule: 'drift', kind: 'drift', severity: 'warning', feature: 'sepal_length', value: 0.31, threshold: 0.25, startedMs: String(T0 + 60_000) })], T0 + 192_000, false);
    expect(lines).toEqual([
      'SEVERITY  RULE       MODEL   FEATURE       VALUE            SINCE',
      'critical  iris-slow  iris:1  -             312 ms > 250 ms  3m12s ago',
      'warning   drift      iris:1  sepal_length  PSI 0.31 > 0.25  2m12s ago',
    ]);
  });

  it('adds the state, and when a resolved alert resolved, with --all', () => {
    const lines = alertTable([alert({ state: 'resolved', value: 180, resolvedMs: String(T0 + 5000) })], T0 + 47_000, true);
    expect(lines[0].startsWith('STATE     SEVERITY')).toBe(true);
    expect(lines[1]).toMatch(/^resolved  critical  iris-slow .* 180 ms <= 250 ms {2}resolved 42s ago$/);
  });

  it('says there is nothing firing', () => {
    expect(alertTable([], T0, false)).toEqual(['no alerts firing']);
  });

  it('reads each kind\'s value the way its rule does', () => {
    expect(valueVsThreshold({ kind: 'error_rate', value: 0.12, threshold: 0.05 })).toBe('12.0 % > 5.0 %');
    expect(valueVsThreshold({ kind: 'accuracy', value: 0.81, threshold: 0.9 })).toBe('81.0 % < 90.0 %');
    expect(valueVsThreshold({ kind: 'shadow_agreement', value: 0.333, threshold: 0.9 })).toBe('33.3 % < 90.0 %');
    expect(valueVsThreshold({ kind: 'no_worker', value: 0, threshold: 1 })).toBe('0 workers');
    expect([ago(5_000), ago(7_530_000)]).toEqual(['5s ago', '2h05m ago']);
  });

  it('prints a transition as one line', () => {
    expect(alertLine(alert({ state: 'resolved', atMs: String(T0 + 1000), model: 'iris', version: '', kind: 'no_worker', rule: 'nobody', value: 2, summary: 'iris is served by 2 workers again' }))).toBe(
      '2026-01-02T03:04:06.000Z  RESOLVED  critical  nobody  iris  2 workers  iris is served by 2 workers again',
    );
  });
});

/** A monitor's alert API: the alerts firing, and the streams open, to which a test sends transitions. */
class FakeMonitor {
  firing: Alert[] = [];
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, Alert>>();
  private readonly ends = new Set<() => void>();
  server: GrpcServer | undefined;
  port = 0;

  async start(): Promise<void> {
    const server = createGrpcServer({ name: 'fake-monitor', logger: createLogger('fake-monitor', { level: 'silent' }), maxMessageBytes: 1024 * 1024 });
    server.addService('infermesh.v1.Monitor', monitorService(), {
      ListAlerts: async () => ({ alerts: this.firing }),
      WatchAlerts: {
        serverStream: (request: { sendFiring: boolean }, call: grpc.ServerWritableStream<unknown, Alert>, ctx) => new Promise<void>((resolve) => {
          if (request.sendFiring) for (const a of this.firing) call.write(a);
          this.streams.add(call);
          const end = () => {
            this.streams.delete(call);
            this.ends.delete(end);
            resolve();
          };
          this.ends.add(end);
          ctx.signal.addEventListener('abort', end, { once: true });
        }),
      },
    });
    this.port = await server.listen('127.0.0.1', this.port);
    this.server = server;
  }

  get watching(): number {
    return this.streams.size;
  }

  send(a: Alert): void {
    if (a.state === 'firing') this.firing.push(a);
    else this.firing = this.firing.filter((f) => f.fingerprint !== a.fingerprint);
    for (const s of this.streams) s.write(a);
  }

  /** Ends the streams OK and shuts down, as a monitor stopping does. */
  async stop(): Promise<void> {
    for (const end of [...this.ends]) end();
    await this.server?.shutdown(1000);
    this.server = undefined;
  }
}

const monitors: FakeMonitor[] = [];
afterEach(async () => {
  for (const m of monitors.splice(0)) await m.stop();
});

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; !check(); i++) {
    if (i > 500) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('infermesh alerts --follow', () => {
  it('prints the table, then each transition, and follows the monitor through a restart without repeating what it showed', async () => {
    const monitor = new FakeMonitor();
    monitors.push(monitor);
    monitor.firing = [alert({ fingerprint: 'old', model: 'resnet', version: '3' })];
    await monitor.start();
    const printed: string[] = [];
    const notes: string[] = [];
    const stop = new AbortController();
    const client = (address: string) => new (contracts().infermesh.v1.Monitor)(address, grpc.credentials.createInsecure());
    const following = alerts({
      address: `127.0.0.1:${monitor.port}`, all: false, follow: true, json: true, print: (l) => printed.push(l), note: (l) => notes.push(l),
      signal: stop.signal, retryMs: 20, maxRetryMs: 50, client, now: () => T0,
    });
    await until(() => monitor.watching === 1 && printed.length === 1);
    monitor.send(alert({ fingerprint: 'new', atMs: String(T0 + 1000), startedMs: String(T0 + 1000) }));
    await until(() => printed.length === 2);

    await monitor.stop();
    await until(() => notes.length > 0);
    monitor.send(alert({ fingerprint: 'during-restart', model: 'bert', atMs: String(T0 + 2000), startedMs: String(T0 + 2000) }));
    await monitor.start();
    await until(() => printed.length === 3);
    monitor.send(alert({ fingerprint: 'new', state: 'resolved', atMs: String(T0 + 3000), resolvedMs: String(T0 + 3000), startedMs: String(T0 + 1000) }));
    await until(() => printed.length === 4);
    stop.abort();
    await following;

    const shown = printed.map((l) => JSON.parse(l) as Alert__Output).map((a) => [a.fingerprint, a.state]);
    // The table (one JSON line per alert), the new alert, then after the restart only what was news: the old and new alerts firing are not shown again.
    expect(shown).toEqual([['old', 'firing'], ['new', 'firing'], ['during-restart', 'firing'], ['new', 'resolved']]);
    expect(notes[0]).toBe('infermesh: the monitor closed the stream (stopping?); reconnecting');
  });

  it('prints the firing alerts once and returns without --follow', async () => {
    const monitor = new FakeMonitor();
    monitors.push(monitor);
    monitor.firing = [alert()];
    await monitor.start();
    const printed: string[] = [];
    const client = (address: string) => new (contracts().infermesh.v1.Monitor)(address, grpc.credentials.createInsecure());
    await alerts({ address: `127.0.0.1:${monitor.port}`, all: false, follow: false, json: false, print: (l) => printed.push(l), client, now: () => T0 + 5000 });
    expect(printed).toHaveLength(2);
    expect(printed[1]).toContain('iris-slow');
  });
});
