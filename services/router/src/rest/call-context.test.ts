/**
 * The CallContext a REST request gives the handler, and the time bounds, with stand-in
 * handlers: the client's disconnect and the deadline abort the handler's signal, a client
 * that never finishes its body is cut by the request timeout.
 */
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@infermesh/log';
import type { CallContext, ServiceHandlers } from '@infermesh/grpc';
import { openAccess } from '../auth/index.js';
import { createRestServer, type RestServer } from './http-server.js';

/** What the stand-in ModelMetadata saw: its context, and why its signal was aborted. */
let seen: { ctx: CallContext; reason?: unknown } | undefined;
let entered: () => void = () => {};

const handlers: ServiceHandlers = {
  // Waits for its signal, as a queued inference does.
  ModelMetadata: ((_request: object, ctx: CallContext) => {
    seen = { ctx };
    entered();
    return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => {
      seen!.reason = ctx.signal.reason;
      reject(ctx.signal.reason);
    }));
  }) as never,
};

let server: RestServer;
let base: string;
let port: number;

beforeAll(async () => {
  server = createRestServer({ handlers, access: openAccess, logger: createLogger('test', { level: 'silent' }), version: 'test', maxBodyBytes: 1024, requestTimeoutMs: 300 });
  port = await server.listen('127.0.0.1', 0);
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await server.close(100);
});

describe('the call context of a REST request', () => {
  it('carries the authorization header and traceparent as metadata, and the peer', async () => {
    const controller = new AbortController();
    const started = new Promise<void>((resolve) => (entered = resolve));
    const pending = fetch(`${base}/v2/models/iris`, { headers: { authorization: 'Bearer k', traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, 'x-other': 'not copied' }, signal: controller.signal }).catch(() => undefined);
    await started;
    expect(seen!.ctx.metadata.get('authorization')).toEqual(['Bearer k']);
    expect(seen!.ctx.metadata.get('traceparent')).toHaveLength(1);
    expect(seen!.ctx.metadata.get('x-other')).toEqual([]);
    expect(seen!.ctx.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    controller.abort();
    await pending;
  });

  it('aborts the handler\'s signal as cancelled when the client disconnects', async () => {
    const controller = new AbortController();
    const started = new Promise<void>((resolve) => (entered = resolve));
    const pending = fetch(`${base}/v2/models/iris`, { signal: controller.signal }).catch(() => undefined);
    await started;
    controller.abort();
    await pending;
    await expect.poll(() => (seen?.reason as Error | undefined)?.name).toBe('AbortError');
  });

  it('aborts the handler\'s signal at the client\'s deadline and answers 504 DEADLINE_EXCEEDED', async () => {
    const response = await fetch(`${base}/v2/models/iris`, { headers: { 'infermesh-timeout-ms': '20' } });
    expect(response.status).toBe(504);
    expect(response.headers.get('infermesh-grpc-status')).toBe('DEADLINE_EXCEEDED');
    expect((seen?.reason as Error).name).toBe('TimeoutError');
  });
});

describe('slow clients', () => {
  it('are answered 408 when the body does not arrive within the request timeout', async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        // A body of 100 bytes announced, 3 sent, then nothing.
        socket.write('POST /v2/models/iris/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\ncontent-type: application/json\r\n\r\n{"i');
      });
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString()));
      socket.on('close', () => resolve(received));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe('HTTPS', () => {
  it('serves with the router\'s certificate and, with a client CA, only clients holding a certificate it signed', async () => {
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const https = await import('node:https');
    const { issueDevCertificates } = await import('@infermesh/grpc');
    const dir = mkdtempSync(join(tmpdir(), 'rest-tls-'));
    const certs = issueDevCertificates(dir, [{ stem: 'router', identities: [{ role: 'router', name: 'router' }] }, { stem: 'client', identities: [{ role: 'operator', name: 'client' }] }]);
    const router = certs.issued.get('router')!;
    const client = certs.issued.get('client')!;
    const secure = createRestServer({
      handlers: { ServerLive: (async () => ({ live: true })) as never }, access: openAccess, logger: createLogger('test', { level: 'silent' }), version: 'test',
      maxBodyBytes: 1024, requestTimeoutMs: 5000, tls: { certFile: router.certFile, keyFile: router.keyFile, clientCaFile: certs.caFile },
    });
    const securePort = await secure.listen('127.0.0.1', 0);
    const get = (withCertificate: boolean) => new Promise<number>((resolve, reject) => {
      const request = https.get({
        host: '127.0.0.1', port: securePort, path: '/v2/health/live', ca: readFileSync(certs.caFile),
        ...(withCertificate ? { cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) } : {}),
      }, (response) => {
        response.resume();
        resolve(response.statusCode!);
      });
      request.on('error', reject);
    });
    try {
      expect(await get(true)).toBe(200);
      await expect(get(false)).rejects.toThrow();
    } finally {
      await secure.close(100);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shutdown', () => {
  it('stops taking requests, lets those in flight finish, then resolves', async () => {
    let release: () => void = () => {};
    let inHandler: () => void = () => {};
    const entered = new Promise<void>((resolve) => (inHandler = resolve));
    const closing = createRestServer({
      handlers: {
        ServerMetadata: (() => {
          inHandler();
          return new Promise((resolve) => (release = () => resolve({ name: 'infermesh', version: 'test', extensions: [] })));
        }) as never,
      },
      access: openAccess, logger: createLogger('test', { level: 'silent' }), version: 'test', maxBodyBytes: 1024, requestTimeoutMs: 5000,
    });
    const closingPort = await closing.listen('127.0.0.1', 0);
    const inFlight = fetch(`http://127.0.0.1:${closingPort}/v2`);
    await entered;
    let closed = false;
    const stopped = closing.close(60_000).then(() => (closed = true));
    await expect(fetch(`http://127.0.0.1:${closingPort}/v2/health/live`)).rejects.toThrow();
    expect(closed).toBe(false);
    release();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.headers.get('connection')).toBe('close');
    await stopped;
  });
});
