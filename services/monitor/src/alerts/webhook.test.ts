/** The alert webhook against a real local HTTP server: Alertmanager's v2 body, retries, bounds. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@infermesh/log';
import { AlertWebhook } from './webhook.js';
import type { AlertEvent } from './alert.js';
import { PrometheusText } from '../prometheus-text.js';

const logger = createLogger('webhook-test', { level: 'silent' });
const servers: Server[] = [];
const webhooks: AlertWebhook[] = [];

interface Received {
  method: string;
  contentType: string;
  body: unknown;
}

/** A receiver answering each POST with the next status of `statuses` (the last one repeats); `hang` never answers. */
async function receiver(statuses: (number | 'hang')[] = [200]): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  let i = 0;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    request.on('end', () => {
      received.push({ method: request.method ?? '', contentType: request.headers['content-type'] ?? '', body: JSON.parse(text) });
      const status = statuses[Math.min(i++, statuses.length - 1)];
      if (status === 'hang') return;
      response.writeHead(status).end('{}');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2/alerts`, received };
}

function webhook(url: string, options: Partial<ConstructorParameters<typeof AlertWebhook>[0]> = {}): AlertWebhook {
  const w = new AlertWebhook({ url, generatorUrl: 'http://monitor:8002/status', logger, backoffMs: 5, timeoutMs: 2000, ...options });
  webhooks.push(w);
  return w;
}

afterEach(async () => {
  for (const w of webhooks.splice(0)) await w.stop();
  for (const s of servers.splice(0)) s.closeAllConnections(), s.close();
});

const STARTED = Date.UTC(2026, 0, 2, 3, 4, 5);

function alert(overrides: Partial<AlertEvent> = {}): AlertEvent {
  return {
    rule: 'iris-slow', kind: 'latency_p99', state: 'firing', severity: 'critical', model: 'iris', version: '1', feature: '', value: 312, threshold: 250,
    summary: 'p99 latency of iris 1 over 1m is 312 ms, above 250 ms for 30s', startedMs: STARTED, resolvedMs: 0, atMs: STARTED, fingerprint: '0123456789abcdef',
    ...overrides,
  };
}

describe('alert webhook', () => {
  it('POSTs Alertmanager v2 alerts: labels, annotations.summary, startsAt, generatorURL, and endsAt once resolved', async () => {
    const { url, received } = await receiver();
    const w = webhook(url);
    w.send([alert(), alert({ state: 'resolved', resolvedMs: STARTED + 60_000, kind: 'drift', rule: 'drift', feature: 'sepal_length', severity: 'warning' })]);
    await w.idle();
    expect(received).toEqual([{
      method: 'POST',
      contentType: 'application/json',
      body: [
        {
          labels: { alertname: 'iris-slow', severity: 'critical', model: 'iris', version: '1' },
          annotations: { summary: 'p99 latency of iris 1 over 1m is 312 ms, above 250 ms for 30s' },
          startsAt: '2026-01-02T03:04:05.000Z',
          generatorURL: 'http://monitor:8002/status',
        },
        {
          labels: { alertname: 'drift', severity: 'warning', model: 'iris', version: '1', feature: 'sepal_length' },
          annotations: { summary: 'p99 latency of iris 1 over 1m is 312 ms, above 250 ms for 30s' },
          startsAt: '2026-01-02T03:04:05.000Z',
          endsAt: '2026-01-02T03:05:05.000Z',
          generatorURL: 'http://monitor:8002/status',
        },
      ],
    }]);
  });

  it('leaves out a label with no value (a no_worker alert has no version)', async () => {
    const { url, received } = await receiver();
    const w = webhook(url);
    w.send([alert({ kind: 'no_worker', rule: 'nobody', version: '' })]);
    await w.idle();
    expect((received[0].body as { labels: object }[])[0].labels).toEqual({ alertname: 'nobody', severity: 'critical', model: 'iris' });
  });

  it('retries a 5xx answer with backoff until it is taken', async () => {
    const { url, received } = await receiver([503, 500, 200]);
    const w = webhook(url, { retries: 3 });
    w.send([alert()]);
    await w.idle();
    expect(received).toHaveLength(3);
    expect(w.failureCounts()).toEqual({ queue_full: 0, undelivered: 0 });
  });

  it('retries a POST that times out', async () => {
    const { url, received } = await receiver(['hang', 200]);
    const w = webhook(url, { timeoutMs: 100 });
    w.send([alert()]);
    await w.idle();
    expect(received).toHaveLength(2);
    expect(w.failureCounts().undelivered).toBe(0);
  });

  it('gives up after the retries, counting the alerts it could not deliver', async () => {
    const { url, received } = await receiver([500]);
    const w = webhook(url, { retries: 2 });
    w.send([alert(), alert({ fingerprint: 'fedcba9876543210' })]);
    await w.idle();
    expect(received).toHaveLength(3);
    expect(w.failureCounts()).toEqual({ queue_full: 0, undelivered: 2 });
    const out = new PrometheusText();
    w.writePrometheus(out);
    expect(out.toString()).toContain('infermesh_alert_webhook_failures_total{reason="undelivered"} 2');
  });

  it('does not retry an answer that says the alerts are wrong (4xx)', async () => {
    const { url, received } = await receiver([400, 200]);
    const w = webhook(url);
    w.send([alert()]);
    await w.idle();
    expect(received).toHaveLength(1);
    expect(w.failureCounts().undelivered).toBe(1);
  });

  it('counts the alerts undelivered when the receiver is not there at all', async () => {
    const { url } = await receiver();
    servers[0].close();
    await new Promise((resolve) => servers[0].once('close', resolve));
    const w = webhook(url, { retries: 1 });
    w.send([alert()]);
    await w.idle();
    expect(w.failureCounts().undelivered).toBe(1);
  });

  it('queues at most maxQueued alerts without waiting, dropping (and counting) the rest', async () => {
    const { url, received } = await receiver(['hang', 200]);
    const w = webhook(url, { maxQueued: 2, maxBatch: 10, timeoutMs: 200 });
    w.send([alert({ rule: 'first' })]); // taken at once, its POST hangs
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Counted as send returns, while the first POST still hangs: nothing waited for it.
    w.send(['a', 'b', 'c', 'd'].map((rule) => alert({ rule })));
    expect(w.failureCounts().queue_full).toBe(2);
    expect(received).toHaveLength(1);
    await w.idle();
    const rules = received.map((r) => (r.body as { labels: { alertname: string } }[]).map((a) => a.labels.alertname));
    expect(rules).toEqual([['first'], ['first'], ['a', 'b']]);
  });

  it('sends at most maxBatch alerts in one POST', async () => {
    const { url, received } = await receiver();
    const w = webhook(url, { maxBatch: 2 });
    w.send(['a', 'b', 'c'].map((rule) => alert({ rule })));
    await w.idle();
    expect(received.map((r) => (r.body as unknown[]).length)).toEqual([2, 1]);
  });
});
