/** The plain HTTP side meets a request it cannot parse with 400 and keeps serving. */
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { createLogger } from '@infermesh/log';
import { createMetricsHttpServer, type MetricsHttpServer } from './metrics-http.js';

const logger = createLogger('metrics-http-test', { level: 'silent' });
const servers: MetricsHttpServer[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** Sends `request` as raw bytes and resolves with everything the server answers until it closes. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('metrics HTTP server', () => {
  it('answers 400 to a request target that is not a URL, and serves /metrics after', async () => {
    const server = createMetricsHttpServer(async () => 'metric_total 1\n', 'text/plain; version=0.0.4', logger);
    servers.push(server);
    const port = await server.listen('127.0.0.1', 0);
    const bad = await rawRequest(port, 'GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toBe('metric_total 1\n');
  });
});
