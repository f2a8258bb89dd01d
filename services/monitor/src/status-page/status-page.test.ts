/** The status page over HTTP: the page and its assets, its JSON, live updates over SSE, bounded clients. */
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import type { Alert__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createMetricsHttpServer, type MetricsHttpServer } from '../metrics-http.js';
import { ModelMetrics } from '../model-metrics.js';
import { WorkerRoster } from '../workers.js';
import { createStatusPage, type StatusPage, type StatusPageOptions } from './status-page.js';
import type { StatusData } from './status-data.js';
import type { AlertSource, StatusSources } from './sources.js';

const logger = createLogger('status-page-test', { level: 'silent' });
const running: { http: MetricsHttpServer; page: StatusPage }[] = [];

afterEach(async () => {
  for (const { http, page } of running.splice(0)) {
    page.stop();
    await http.close();
  }
});

/** A page on a free port with an hour between its own updates, unless a test says otherwise. */
async function serve(sources: Partial<StatusSources> = {}, options: Partial<StatusPageOptions> = {}): Promise<string> {
  const page = createStatusPage({ sources: { counts: new ModelMetrics(), workers: new WorkerRoster(), ...sources }, logger, updateMs: 3_600_000, ...options });
  const http = createMetricsHttpServer(async () => '', 'text/plain', logger, [page.handle]);
  running.push({ http, page });
  page.start();
  const port = await http.listen('127.0.0.1', 0);
  return `http://127.0.0.1:${port}`;
}

/** A live client: reads events from /status/events until closed. */
function follow(url: string): Promise<{ status: number; events: () => { event: string; data: string }[]; next: (count: number) => Promise<void>; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/status/events`, (res) => {
      let buffer = '';
      const received: { event: string; data: string }[] = [];
      const waiters: (() => void)[] = [];
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          if (event) received.push({ event, data: block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n') });
          for (const wake of waiters.splice(0)) wake();
        }
      });
      resolve({
        status: res.statusCode ?? 0,
        events: () => received,
        next: (count) => new Promise<void>((done) => {
          const check = () => (received.length >= count ? done() : waiters.push(check));
          check();
        }),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function alerts(): AlertSource & { fire(alert: Partial<Alert__Output>): void } {
  const firing: Alert__Output[] = [];
  const listeners = new Set<(alert: Alert__Output) => void>();
  return {
    firing: () => [...firing],
    onTransition(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    fire(overrides) {
      const alert: Alert__Output = {
        rule: 'iris-slow', kind: 'latency_p99', state: 'firing', severity: 'critical', model: 'iris', version: '1', feature: '', value: 300, threshold: 250,
        summary: 'p99 latency of iris 1 is 300 ms', startedMs: String(Date.now()), resolvedMs: '0', atMs: String(Date.now()), fingerprint: 'f1', ...overrides,
      };
      firing.push(alert);
      for (const listener of listeners) listener(alert);
    },
  };
}

describe('the status page', () => {
  it('serves the page at / and /status, with a policy that runs only its own script', async () => {
    const url = await serve();
    for (const path of ['/', '/status']) {
      const response = await fetch(`${url}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await response.text()).toContain('<script src="status/status.js" defer></script>');
    }
  });

  it('serves its script and stylesheet from the package, and 404 for any other path under /status', async () => {
    const url = await serve();
    const script = await fetch(`${url}/status/status.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await script.text()).toContain("new EventSource('status/events')");
    expect((await fetch(`${url}/status/status.css`)).status).toBe(200);
    expect((await fetch(`${url}/status/../package.json`)).status).toBe(404);
    expect((await fetch(`${url}/status/nothing`)).status).toBe(404);
    const slash = await fetch(`${url}/status/`, { redirect: 'manual' });
    expect([slash.status, slash.headers.get('location')]).toEqual([301, '../status']);
  });

  it('answers /status/data with the models, workers and what it measures', async () => {
    const counts = new ModelMetrics();
    counts.record({ model: 'iris', version: '1' }, { statusCode: 0, items: 2, latencyUs: 1500, queueUs: 0, computeUs: 0, batchSize: 1, atMs: Date.now() });
    const workers = new WorkerRoster();
    workers.observe({ workerId: 'worker-0', device: 'cpu', executionProvider: 'cpu', models: [{ name: 'iris', version: '1', ready: true }], queueDepth: 2, inFlight: 1, draining: false, rssBytes: '222703616' });
    const url = await serve({ counts, workers });
    const response = await fetch(`${url}/status/data`);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const data = (await response.json()) as StatusData;
    expect(data.models).toMatchObject([{ model: 'iris', version: '1', totals: { requests: 1, items: 2 } }]);
    expect(data.workers).toMatchObject([{ id: 'worker-0', device: 'cpu', provider: 'cpu', queueDepth: 2, inFlight: 1, rssBytes: 222703616 }]);
    expect(data.measured).toEqual({ timeline: false, drift: false, accuracy: false, alerts: false });
  });

  it('sends a live client the data at once, then every update', async () => {
    const url = await serve({}, { updateMs: 50 });
    const client = await follow(url);
    expect(client.status).toBe(200);
    await client.next(2);
    expect(client.events().every((e) => e.event === 'status')).toBe(true);
    expect((JSON.parse(client.events()[0].data) as StatusData).models).toEqual([]);
    client.close();
  });

  it('sends an alert transition at once, without waiting for the next update', async () => {
    const source = alerts();
    const url = await serve({ alerts: source });
    const client = await follow(url);
    await client.next(1);
    source.fire({ rule: 'iris-slow' });
    await client.next(2);
    const data = JSON.parse(client.events()[1].data) as StatusData;
    expect(data.alerts.map((a) => a.rule)).toEqual(['iris-slow']);
    client.close();
  });

  it('refuses live clients past its bound with 503', async () => {
    const url = await serve({}, { maxClients: 2 });
    const clients = [await follow(url), await follow(url)];
    const refused = await follow(url);
    expect(clients.map((c) => c.status)).toEqual([200, 200]);
    expect(refused.status).toBe(503);
    clients[0].close();
    // The slot is free once the server has seen the client go.
    for (let i = 0; i < 100; i++) {
      const again = await follow(url);
      again.close();
      if (again.status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('a closed client never freed its slot');
  });
});
