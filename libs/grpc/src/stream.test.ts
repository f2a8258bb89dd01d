/** serveStream against a real grpc-js client: back-pressure, and ending when the client goes away. */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { workerService, type InferBatchRequest, type InferBatchRequest__Output, type InferBatchResponse, type InferBatchResponse__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createGrpcServer, serveStream, type GrpcServer } from './index.js';

const logger = createLogger('stream-test', { level: 'silent' });
const servers: GrpcServer[] = [];

afterEach(() => {
  for (const server of servers.splice(0)) server.server.forceShutdown();
});

describe('serveStream', () => {
  it('ends when the client cancels while its answers are backed up (a cancelled call never drains)', async () => {
    let ended = false;
    let serverCall: grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse> | undefined;
    const server = createGrpcServer({ name: 'stream-test', logger, maxMessageBytes: 64 * 1024 * 1024 });
    servers.push(server);
    server.addService('infermesh.v1.Worker', workerService(), {
      InferBatches: {
        bidi: (call, ctx) => {
          serverCall = call as unknown as grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>;
          return serveStream<InferBatchRequest__Output, InferBatchResponse>(serverCall, ctx, {
            window: 64,
            logger,
            // Answers of 1 MiB each: far more than the transport buffers for a client that stops reading.
            handle: async (batch) => ({ batchId: batch.batchId, errorMessage: 'x'.repeat(1 << 20) }),
            failure: (batch) => ({ batchId: batch.batchId }),
          }).then(() => {
            ended = true;
          });
        },
      },
    }, { untraced: ['InferBatches'] });
    const port = await server.listen('127.0.0.1', 0);
    const method = workerService().InferBatches as unknown as grpc.MethodDefinition<InferBatchRequest, InferBatchResponse__Output>;
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
    call.on('error', () => {});
    // Reads one answer, then stops reading.
    call.once('data', () => call.pause());
    for (let i = 1; i <= 40; i++) call.write({ batchId: String(i), modelName: 'm' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(serverCall?.writableNeedDrain).toBe(true);
    call.cancel();
    for (let i = 0; i < 40 && !ended; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    client.close();
    expect(ended).toBe(true);
  });

  it('reads nothing more once `until` aborts, even when a write was waiting for the client to read', async () => {
    const until = new AbortController();
    let handled = 0;
    let serverCall: grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse> | undefined;
    const server = createGrpcServer({ name: 'stream-test', logger, maxMessageBytes: 64 * 1024 * 1024 });
    servers.push(server);
    server.addService('infermesh.v1.Worker', workerService(), {
      InferBatches: {
        bidi: (call, ctx) => {
          serverCall = call as unknown as grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>;
          return serveStream<InferBatchRequest__Output, InferBatchResponse>(serverCall, ctx, {
            window: 1,
            logger,
            until: until.signal,
            handle: async (batch) => {
              handled++;
              return { batchId: batch.batchId, errorMessage: 'x'.repeat(1 << 20) };
            },
            failure: (batch) => ({ batchId: batch.batchId }),
          });
        },
      },
    }, { untraced: ['InferBatches'] });
    const port = await server.listen('127.0.0.1', 0);
    const method = workerService().InferBatches as unknown as grpc.MethodDefinition<InferBatchRequest, InferBatchResponse__Output>;
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
    const ended = new Promise<void>((resolve) => {
      call.on('end', resolve);
      call.on('error', () => resolve());
    });
    // The client does not read yet: the server's answers back up until a write waits for 'drain'.
    call.pause();
    for (let i = 1; i <= 200; i++) call.write({ batchId: String(i), modelName: 'm' });
    for (let i = 0; i < 100 && !serverCall?.writableNeedDrain; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(serverCall?.writableNeedDrain).toBe(true);
    until.abort();
    const atStop = handled;
    call.on('data', () => {});
    call.resume();
    await ended;
    client.close();
    expect(atStop).toBeLessThan(200);
    expect(handled).toBe(atStop);
  });
});
