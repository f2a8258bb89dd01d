/** serveStream against a real grpc-js client: back-pressure, ending when the client goes away, and messages that do not decode. */
import { afterEach, describe, expect, it } from 'vitest';
import { EventEmitter, getEventListeners } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import {
  inferenceService, workerService,
  type InferBatchRequest, type InferBatchRequest__Output, type InferBatchResponse, type InferBatchResponse__Output, type ModelInferRequest, type ModelStreamInferResponse__Output,
} from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createGrpcServer, notFound, serveInferStream, serveStream, UndecodableMessage, type CallContext, type GrpcServer } from './index.js';

const logger = createLogger('stream-test', { level: 'silent' });
const servers: GrpcServer[] = [];

afterEach(() => {
  for (const server of servers.splice(0)) server.server.forceShutdown();
});

type ServerCall = grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>;
type Options = Omit<Parameters<typeof serveStream<InferBatchRequest__Output, InferBatchResponse>>[2], 'logger' | 'failure'>;
const method = workerService().InferBatches as unknown as grpc.MethodDefinition<InferBatchRequest, InferBatchResponse__Output>;

/** A server whose InferBatches is `serveStream` with `options`, a client and an open call to it. */
async function streamServer(options: Options) {
  const served: { call?: ServerCall; ended: boolean } = { ended: false };
  const server = createGrpcServer({ name: 'stream-test', logger, maxMessageBytes: 64 * 1024 * 1024 });
  servers.push(server);
  server.addService('infermesh.v1.Worker', workerService(), {
    InferBatches: {
      bidi: (call, ctx) => {
        served.call = call as unknown as ServerCall;
        return serveStream<InferBatchRequest__Output, InferBatchResponse>(served.call, ctx, { ...options, logger, failure: (batch) => ({ batchId: batch.batchId }) }).then(() => {
          served.ended = true;
        });
      },
    },
  }, { untraced: ['InferBatches'] });
  const port = await server.listen('127.0.0.1', 0);
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
  return { served, client, call };
}

describe('serveStream', () => {
  it('ends when the client cancels while its answers are backed up (a cancelled call never drains)', async () => {
    // Answers of 1 MiB each: far more than the transport buffers for a client that stops reading.
    const { served, client, call } = await streamServer({ window: 64, handle: async (batch) => ({ batchId: batch.batchId, errorMessage: 'x'.repeat(1 << 20) }) });
    call.on('error', () => {});
    // Reads one answer, then stops reading.
    call.once('data', () => call.pause());
    for (let i = 1; i <= 40; i++) call.write({ batchId: String(i), modelName: 'm' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(served.call?.writableNeedDrain).toBe(true);
    call.cancel();
    for (let i = 0; i < 40 && !served.ended; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    client.close();
    expect(served.ended).toBe(true);
  });

  it('reads nothing more once `until` aborts, even when a write was waiting for the client to read', async () => {
    const until = new AbortController();
    let handled = 0;
    const { served, client, call } = await streamServer({
      window: 1,
      until: until.signal,
      handle: async (batch) => {
        handled++;
        return { batchId: batch.batchId, errorMessage: 'x'.repeat(1 << 20) };
      },
    });
    const ended = new Promise<void>((resolve) => {
      call.on('end', resolve);
      call.on('error', () => resolve());
    });
    // The client does not read yet: the server's answers back up until a write waits for 'drain'.
    call.pause();
    for (let i = 1; i <= 200; i++) call.write({ batchId: String(i), modelName: 'm' });
    for (let i = 0; i < 100 && !served.call?.writableNeedDrain; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(served.call?.writableNeedDrain).toBe(true);
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

describe('a stream with a message that does not decode', () => {
  // Field 100 with wire type 7, which protobuf does not have.
  const garbage = Buffer.from([0xa7, 0x06]);
  const slowly = () => new Promise((resolve) => setTimeout(resolve, 100));

  /** Sends `messages` as they are (bytes) on a raw call; resolves with every answer and the final status. */
  function exchange(port: number, path: string, messages: Buffer[], decode: (bytes: Buffer) => unknown) {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(path, (bytes: Buffer) => bytes, decode);
    const answers: unknown[] = [];
    call.on('data', (answer) => answers.push(answer));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    for (const message of messages) call.write(message);
    call.end();
    return status.then((final) => {
      client.close();
      return { answers, status: final };
    });
  }

  it('answers the items before it, answers it as INVALID_ARGUMENT, and goes on (ModelStreamInfer, as Triton answers a request it cannot run)', async () => {
    const server = createGrpcServer({ name: 'stream-test', logger, maxMessageBytes: 1 << 20 });
    servers.push(server);
    server.addService('inference.GRPCInferenceService', inferenceService(), {
      ModelStreamInfer: {
        bidi: (call, ctx) => serveInferStream(call as never, ctx, {
          window: 8,
          logger,
          infer: async (request) => {
            await slowly();
            return { id: request.id, modelName: request.modelName };
          },
        }),
      },
    });
    const port = await server.listen('127.0.0.1', 0);
    const method = inferenceService().ModelStreamInfer as unknown as grpc.MethodDefinition<ModelInferRequest, ModelStreamInferResponse__Output>;
    const request = (id: string) => method.requestSerialize({ id, modelName: 'iris' });
    const { answers, status } = await exchange(port, method.path, [request('before'), garbage, request('after')], method.responseDeserialize);
    const read = (answers as ModelStreamInferResponse__Output[]).map((a) => a.errorMessage || a.inferResponse?.id);
    expect(read.sort()).toEqual(['INVALID_ARGUMENT: message 2 of the stream does not decode as ModelInferRequest: invalid wire type 7 at offset 2', 'after', 'before'].sort());
    expect(grpc.status[status.code]).toBe('OK');
  });

  it('answers the items before it, then ends with INVALID_ARGUMENT where an answer must name its item', async () => {
    const server = createGrpcServer({ name: 'stream-test', logger, maxMessageBytes: 1 << 20 });
    servers.push(server);
    server.addService('infermesh.v1.Worker', workerService(), {
      InferBatches: {
        bidi: (call, ctx) => serveStream<InferBatchRequest__Output, InferBatchResponse>(call as never, ctx, {
          window: 8, logger, handle: async (batch) => (await slowly(), { batchId: batch.batchId }), failure: (batch) => ({ batchId: batch.batchId }),
        }),
      },
    }, { untraced: ['InferBatches'] });
    const port = await server.listen('127.0.0.1', 0);
    const batch = (batchId: string) => method.requestSerialize({ batchId, modelName: 'm' });
    const { answers, status } = await exchange(port, method.path, [batch('1'), batch('2'), garbage, batch('4')], method.responseDeserialize);
    expect((answers as InferBatchResponse__Output[]).map((a) => a.batchId).sort()).toEqual(['1', '2']);
    expect(grpc.status[status.code]).toBe('INVALID_ARGUMENT');
    expect(status.details).toMatch(/^message 3 of the stream does not decode as InferBatchRequest: /);
  });
});

/**
 * A call whose transport never takes a write (each write says "wait for 'drain'"), with a
 * client that sends its items only while the server reads: how many items the server
 * reads is how far its answers can pile up.
 */
class BackedUpCall extends EventEmitter {
  destroyed = false;
  writes = 0;
  paused = false;
  write(): boolean {
    this.writes++;
    return false;
  }
  pause() {
    this.paused = true;
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  /** Sends up to `count` items, each once the server reads and has handled the one before. */
  async send(count: number, item: () => unknown): Promise<number> {
    let sent = 0;
    while (sent < count && !this.paused) {
      this.emit('data', item());
      sent++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return sent;
  }
}

function backedUpStream(options: Partial<Options> = {}) {
  const call = new BackedUpCall();
  const cancel = new AbortController();
  const ctx = { metadata: new grpc.Metadata(), signal: cancel.signal, deadline: Infinity, span: trace.getTracer('stream-test').startSpan('stream'), peer: 'test', callers: [] } as CallContext;
  const served = serveStream<InferBatchRequest__Output, InferBatchResponse>(call as unknown as ServerCall, ctx, {
    window: 64,
    logger,
    handle: async (batch) => {
      throw notFound(`model ${batch.modelName} is not served`);
    },
    failure: (batch) => ({ batchId: batch.batchId }),
    undecodable: () => ({ batchId: '' }),
    ...options,
  });
  const end = () => {
    cancel.abort();
    return served;
  };
  return { call, end };
}

describe('serveStream writing to a transport that is backed up', () => {
  const batch = () => ({ batchId: '1', modelName: 'absent' }) as InferBatchRequest__Output;

  it('stops reading while an answer waits for drain, though items that fail at once never fill the window', async () => {
    const { call, end } = backedUpStream();
    const sent = await call.send(10_000, batch);
    expect(call.paused).toBe(true);
    expect(sent).toBe(1);
    expect(call.writes).toBe(1);
    await end();
  });

  it('stops reading while the answer to a message that does not decode waits for drain', async () => {
    const { call, end } = backedUpStream();
    const sent = await call.send(10_000, () => new UndecodableMessage('InferBatchRequest', 'invalid wire type 7'));
    expect(call.paused).toBe(true);
    expect(sent).toBe(1);
    await end();
  });

  it('reads again once the transport drains', async () => {
    const { call, end } = backedUpStream();
    await call.send(10_000, batch);
    call.emit('drain');
    expect(call.paused).toBe(false);
    const sent = await call.send(10_000, batch);
    expect(sent).toBe(1);
    expect(call.writes).toBe(2);
    await end();
  });
});

describe('serveStream with a long-lived `until` signal', () => {
  it('leaves no listener on `until` once the stream has ended', async () => {
    const until = new AbortController();
    const { call, end } = backedUpStream({ until: until.signal });
    expect(getEventListeners(until.signal, 'abort')).toHaveLength(1);
    call.emit('end');
    call.emit('close');
    await end();
    expect(getEventListeners(until.signal, 'abort')).toHaveLength(0);
  });
});
