/**
 * Server-streaming handlers ({ serverStream }) against a real @grpc/grpc-js client over TCP:
 * what the handler writes arrives in order, the stream ends OK when the handler resolves and
 * with the mapped status when it throws, and a client's cancel aborts the handler's signal.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { contracts, monitorService, type Alert, type Alert__Output, type MonitorClient, type WatchAlertsRequest__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createGrpcServer, resourceExhausted, type GrpcServer, type ServerStreamHandler } from './index.js';

const logger = createLogger('grpc-server-stream-test', { level: 'silent' });
const running: { server: GrpcServer; client: MonitorClient }[] = [];

async function start(handler: ServerStreamHandler<WatchAlertsRequest__Output, Alert>): Promise<MonitorClient> {
  const server = createGrpcServer({ name: 'test', logger, maxMessageBytes: 1024 * 1024 });
  server.addService('infermesh.v1.Monitor', monitorService(), { WatchAlerts: { serverStream: handler } });
  const port = await server.listen('127.0.0.1', 0);
  const client = new (contracts().infermesh.v1.Monitor)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  running.push({ server, client });
  return client;
}

afterEach(() => {
  for (const { server, client } of running.splice(0)) {
    client.close();
    server.server.forceShutdown();
  }
});

/** Every message of the stream, and how it ended. */
function read(stream: grpc.ClientReadableStream<Alert__Output>): Promise<{ messages: Alert__Output[]; status: grpc.StatusObject | grpc.ServiceError }> {
  const messages: Alert__Output[] = [];
  return new Promise((resolve) => {
    stream.on('data', (message: Alert__Output) => messages.push(message));
    stream.on('error', (error: grpc.ServiceError) => resolve({ messages, status: error }));
    stream.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) resolve({ messages, status });
    });
  });
}

describe('server-streaming handlers', () => {
  it('sends what the handler writes, in order, and ends OK when it resolves', async () => {
    const client = await start(async (request, call) => {
      call.write({ rule: 'first', state: request.sendFiring ? 'firing' : 'resolved' });
      call.write({ rule: 'second' });
    });
    const { messages, status } = await read(client.WatchAlerts({ sendFiring: true }));
    expect(messages.map((m) => [m.rule, m.state])).toEqual([['first', 'firing'], ['second', '']]);
    expect(status.code).toBe(grpc.status.OK);
  });

  it('ends the stream with the mapped status when the handler throws, after what it wrote', async () => {
    const client = await start(async (_request, call) => {
      call.write({ rule: 'before' });
      throw resourceExhausted('the stream fell behind');
    });
    const { messages, status } = await read(client.WatchAlerts({}));
    expect(messages.map((m) => m.rule)).toEqual(['before']);
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toBe('the stream fell behind');
  });

  it('aborts the handler\'s signal when the client cancels', async () => {
    let aborted: () => void = () => undefined;
    const sawAbort = new Promise<void>((resolve) => (aborted = resolve));
    const client = await start(async (_request, call, ctx) => {
      call.write({ rule: 'hello' });
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted();
    });
    const stream = client.WatchAlerts({});
    stream.on('error', () => undefined);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.cancel();
    await sawAbort;
  });
});
