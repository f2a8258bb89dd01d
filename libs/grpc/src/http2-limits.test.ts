/**
 * Per-connection bounds of createGrpcServer, seen from raw TCP sockets and raw HTTP/2
 * sessions (what an attacker holds), and from a grpc-js client (what a user sees).
 */
import * as net from 'node:net';
import * as http2 from 'node:http2';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { contracts, inferenceService, type GRPCInferenceServiceClient, type ModelInferResponse } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createGrpcServer, DEFAULT_HTTP2_LIMITS, issueDevCertificates, type GrpcServer, type Http2Limits, type ServiceHandlers } from './index.js';

const logger = createLogger('http2-limits-test', { level: 'silent' });
const servers: GrpcServer[] = [];
const sessions: http2.ClientHttp2Session[] = [];

afterEach(() => {
  for (const session of sessions.splice(0)) session.destroy();
  for (const server of servers.splice(0)) server.server.forceShutdown();
});

async function start(limits: Partial<Http2Limits>, handlers: ServiceHandlers = { ServerLive: async () => ({ live: true }) }, credentials?: grpc.ServerCredentials): Promise<number> {
  const server = createGrpcServer({ name: 'test', logger, maxMessageBytes: 1024 * 1024, http2: { ...DEFAULT_HTTP2_LIMITS, ...limits }, credentials });
  server.addService('inference.GRPCInferenceService', inferenceService(), handlers);
  servers.push(server);
  return server.listen('127.0.0.1', 0);
}

/** A TCP connection that never says anything (but reads, so it sees the close); resolves once it is open. */
function silentSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.resume();
    socket.on('error', reject);
  });
}

/** A raw HTTP/2 client session; the server's GOAWAY or shutdown ends it with an error here, which is expected. */
function rawSession(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  sessions.push(session);
  return session;
}

/** A port free now (the health port is bound by listen(), so a test must choose it first). */
function freePortOf(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

const closed = (socket: net.Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

describe('HTTP/2 handshake timeout', () => {
  it('closes connections that never send the HTTP/2 preface', async () => {
    const port = await start({ handshakeTimeoutMs: 200 });
    const sockets = await Promise.all(Array.from({ length: 50 }, () => silentSocket(port)));
    await Promise.all(sockets.map(closed));
    expect(sockets.every((socket) => socket.destroyed)).toBe(true);
  });

  it('closes connections to the plaintext health port that never send the preface too', async () => {
    const healthPort = await freePortOf();
    const server = createGrpcServer({ name: 'test', logger, maxMessageBytes: 1024 * 1024, http2: { ...DEFAULT_HTTP2_LIMITS, handshakeTimeoutMs: 200 }, healthPort });
    server.addService('inference.GRPCInferenceService', inferenceService(), { ServerLive: async () => ({ live: true }) });
    servers.push(server);
    await server.listen('127.0.0.1', 0);
    const sockets = await Promise.all(Array.from({ length: 20 }, () => silentSocket(healthPort)));
    await Promise.all(sockets.map(closed));
    expect(sockets.every((socket) => socket.destroyed)).toBe(true);
  });

  it('closes a connection that sends half the preface and stops', async () => {
    const port = await start({ handshakeTimeoutMs: 200 });
    const socket = await silentSocket(port);
    socket.write('PRI * HTTP/2.0\r\n');
    await closed(socket);
    expect(socket.destroyed).toBe(true);
  });

  it('keeps a connection that greeted, past the handshake timeout', async () => {
    const port = await start({ handshakeTimeoutMs: 100 });
    const session = rawSession(port);
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(session.closed || session.destroyed).toBe(false);
  });
});

describe('HTTP/2 handshake timeout under TLS', () => {
  const certs = issueDevCertificates(mkdtempSync(join(tmpdir(), 'http2-limits-')), [{ stem: 'server', identities: [{ role: 'router', name: 'test' }] }]);
  const { certFile, keyFile } = certs.issued.get('server')!;
  const tls = () => grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(certFile), private_key: readFileSync(keyFile) }], false);

  it('closes connections that never start the TLS handshake', async () => {
    const port = await start({ handshakeTimeoutMs: 200 }, undefined, tls());
    const sockets = await Promise.all(Array.from({ length: 20 }, () => silentSocket(port)));
    await Promise.all(sockets.map(closed));
    expect(sockets.every((socket) => socket.destroyed)).toBe(true);
  });

  it('keeps a TLS client that greeted, past the handshake timeout', async () => {
    const port = await start({ handshakeTimeoutMs: 100 }, undefined, tls());
    const client: GRPCInferenceServiceClient = new (contracts().inference.GRPCInferenceService)(`localhost:${port}`, grpc.credentials.createSsl(readFileSync(certs.caFile)));
    const live = () => new Promise((resolve, reject) => client.ServerLive({}, { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r))));
    await live();
    const channel = client.getChannel();
    await new Promise((resolve) => setTimeout(resolve, 400));
    // Still the first connection: a closed one would have taken the channel out of READY.
    expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.READY);
    await live();
    client.close();
  });
});

describe('HTTP/2 idle timeout', () => {
  it('sends GOAWAY to a connection with no call open for the idle timeout', async () => {
    const port = await start({ idleTimeoutMs: 200 });
    const session = rawSession(port);
    await new Promise((resolve) => session.once('goaway', resolve));
  });
});

describe('HTTP/2 concurrent streams', () => {
  it('announces the limit in its SETTINGS', async () => {
    const port = await start({ maxConcurrentStreams: 7 });
    const session = rawSession(port);
    const settings = await new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve));
    expect(settings.maxConcurrentStreams).toBe(7);
  });

  it('runs at most that many calls of one connection at once; the rest wait and succeed', async () => {
    let inHandler = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    const port = await start({ maxConcurrentStreams: 2 }, {
      ModelInfer: async (): Promise<ModelInferResponse> => {
        peak = Math.max(peak, ++inHandler);
        await new Promise<void>((resolve) => release.push(resolve));
        inHandler--;
        return { modelName: 'm' };
      },
    });
    const client: GRPCInferenceServiceClient = new (contracts().inference.GRPCInferenceService)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const calls = Array.from({ length: 5 }, () => new Promise((resolve, reject) => client.ModelInfer({ modelName: 'm' }, { deadline: Date.now() + 20_000 }, (e, r) => (e ? reject(e) : resolve(r)))));
    // Release handlers one at a time as they arrive, until all five calls were answered.
    const answered = Promise.all(calls);
    let done = false;
    void answered.finally(() => (done = true));
    while (!done) {
      release.shift()?.();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await answered).toHaveLength(5);
    expect(peak).toBeLessThanOrEqual(2);
    client.close();
  });
});
