/**
 * createGrpcServer against a real @grpc/grpc-js client over TCP: error → status mapping,
 * grpc.health.v1, reflection, message size limits, call context and graceful shutdown.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { contracts, inferenceService } from '@infermesh/contracts';
import type {
  GRPCInferenceServiceClient, ModelInferRequest, ModelInferRequest__Output, ModelInferResponse, ModelInferResponse__Output,
  ModelMetadataRequest__Output, ModelMetadataResponse, ModelStreamInferResponse, ModelStreamInferResponse__Output,
  ServerLiveResponse__Output,
} from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { decodeInputs } from '@infermesh/tensor';
import { ServiceError, Status, createGrpcServer, notFound, type CallContext, type GrpcServer, type ServiceHandlers } from './index.js';
import { timeoutMs } from './far-deadlines.js';

const logger = createLogger('grpc-server-test', { level: 'silent' });
const SERVICE = 'inference.GRPCInferenceService';

interface Running {
  grpc: GrpcServer;
  client: GRPCInferenceServiceClient;
  address: string;
}

const running: Running[] = [];
const clients: grpc.Client[] = [];

async function start(handlers: ServiceHandlers, maxMessageBytes = 4 * 1024 * 1024): Promise<Running> {
  const server = createGrpcServer({ name: 'test', logger, maxMessageBytes });
  server.addService(SERVICE, inferenceService(), handlers);
  const port = await server.listen('127.0.0.1', 0);
  const address = `127.0.0.1:${port}`;
  const client = new (contracts().inference.GRPCInferenceService)(address, grpc.credentials.createInsecure());
  const entry = { grpc: server, client, address };
  running.push(entry);
  return entry;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const { grpc: server, client } of running.splice(0)) {
    client.close();
    server.server.forceShutdown();
  }
});

type Callback<Res> = (error: grpc.ServiceError | null, response?: Res) => void;

function promisify<Res>(invoke: (callback: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke((error, response) => (error ? reject(error) : resolve(response as Res))));
}

function infer(client: GRPCInferenceServiceClient, request: ModelInferRequest, options: grpc.CallOptions = {}, metadata = new grpc.Metadata()): Promise<ModelInferResponse__Output> {
  return promisify((cb) => client.ModelInfer(request, metadata, { deadline: Date.now() + 10_000, ...options }, cb));
}

function serverLive(client: GRPCInferenceServiceClient): Promise<ServerLiveResponse__Output> {
  return promisify((cb) => client.ServerLive({}, { deadline: Date.now() + 10_000 }, cb));
}

async function refusal(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('handler results', () => {
  it('answers the client with what the handler resolves', async () => {
    const { client } = await start({
      ModelMetadata: async (request: ModelMetadataRequest__Output): Promise<ModelMetadataResponse> => ({ name: request.name, platform: 'onnxruntime_onnx', versions: ['1'] }),
    });
    const response = await promisify<unknown>((cb) => client.ModelMetadata({ name: 'iris' }, cb));
    expect(response).toMatchObject({ name: 'iris', platform: 'onnxruntime_onnx', versions: ['1'] });
  });

  it('gives the handler the request decoded with the loader\'s options (int64 as strings)', async () => {
    let seen: ModelInferRequest__Output | undefined;
    const { client } = await start({
      ModelInfer: async (request: ModelInferRequest__Output): Promise<ModelInferResponse> => {
        seen = request;
        return {};
      },
    });
    await infer(client, { modelName: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3] }], rawInputContents: [Buffer.alloc(24)] });
    expect(seen?.inputs[0].shape).toEqual(['2', '3']);
    expect(seen?.rawInputContents[0]).toBeInstanceOf(Buffer);
  });

  it('refuses handlers for methods the service does not define', () => {
    const server = createGrpcServer({ name: 'test', logger, maxMessageBytes: 1024 * 1024 });
    expect(() => server.addService(SERVICE, inferenceService(), { NoSuchMethod: async () => ({}) })).toThrow(`${SERVICE} has no method NoSuchMethod`);
    server.server.forceShutdown();
  });
});

describe('errors become gRPC statuses', () => {
  it('sends a ServiceError with its own code and message', async () => {
    const { client } = await start({
      ModelInfer: async () => {
        throw new ServiceError(Status.NOT_FOUND, "model 'nope' is not served");
      },
    });
    const error = await refusal(infer(client, { modelName: 'nope' }));
    expect(error.code).toBe(Status.NOT_FOUND);
    expect(error.details).toBe("model 'nope' is not served");
  });

  it('sends the helpers\' errors with their code', async () => {
    const { client } = await start({ ModelInfer: async () => Promise.reject(notFound('gone')) });
    const error = await refusal(infer(client, {}));
    expect([error.code, error.details]).toEqual([Status.NOT_FOUND, 'gone']);
  });

  it('hides an unexpected Error behind INTERNAL with the generic message "internal error"', async () => {
    const { client } = await start({
      ModelInfer: async () => {
        throw new Error('connection string postgres://admin:hunter2@db');
      },
    });
    const error = await refusal(infer(client, {}));
    expect(error.code).toBe(Status.INTERNAL);
    expect(error.details).toBe('internal error');
    expect(error.message).not.toContain('hunter2');
  });

  it('sends INTERNAL for a rejection that is not an Error at all', async () => {
    const { client } = await start({ ModelInfer: async () => Promise.reject('a string') });
    const error = await refusal(infer(client, {}));
    expect([error.code, error.details]).toEqual([Status.INTERNAL, 'internal error']);
  });

  it('sends a TensorError from decoding the request as INVALID_ARGUMENT with its message', async () => {
    const { client } = await start({
      ModelInfer: async (request: ModelInferRequest__Output): Promise<ModelInferResponse> => {
        decodeInputs(request.inputs, request.rawInputContents);
        return {};
      },
    });
    const error = await refusal(infer(client, { inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 3] }], rawInputContents: [Buffer.alloc(8)] }));
    expect(error.code).toBe(Status.INVALID_ARGUMENT);
    expect(error.details).toBe("input 'pixels': raw contents are 8 bytes, FP32 shape [1, 3] needs 12");
  });

  it('passes on the status of a failed downstream gRPC call unchanged', async () => {
    const downstream = await start({ ModelInfer: async () => Promise.reject(new ServiceError(Status.UNAVAILABLE, 'worker is draining')) });
    const upstream = await start({ ModelInfer: async (request: ModelInferRequest__Output) => infer(downstream.client, request) });
    const error = await refusal(infer(upstream.client, { modelName: 'm' }));
    expect([error.code, error.details]).toEqual([Status.UNAVAILABLE, 'worker is draining']);
  });

  it('keeps serving after a handler fails', async () => {
    let calls = 0;
    const { client } = await start({
      ModelInfer: async (): Promise<ModelInferResponse> => {
        calls += 1;
        if (calls === 1) throw new Error('boom');
        return { modelName: 'ok' };
      },
    });
    await refusal(infer(client, {}));
    await expect(infer(client, {})).resolves.toMatchObject({ modelName: 'ok' });
  });
});

describe('bidirectional streams', () => {
  it('ends the stream with OK once the handler resolves', async () => {
    const { client } = await start({
      ModelStreamInfer: {
        bidi: async (call: grpc.ServerDuplexStream<ModelInferRequest__Output, ModelStreamInferResponse>) => {
          call.on('data', (request: ModelInferRequest__Output) => call.write({ inferResponse: { id: request.id } }));
          await new Promise((resolve) => call.on('end', resolve));
        },
      },
    });
    const stream = client.ModelStreamInfer();
    const ids: string[] = [];
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('data', (message: ModelStreamInferResponse__Output) => ids.push(message.inferResponse?.id ?? ''));
    stream.write({ id: 'a' });
    stream.write({ id: 'b' });
    stream.end();
    expect((await status).code).toBe(Status.OK);
    expect(ids).toEqual(['a', 'b']);
  });
});

describe('message size limit', () => {
  it('refuses a request over maxMessageBytes with RESOURCE_EXHAUSTED, then answers the next call', async () => {
    const handled: number[] = [];
    const { client } = await start(
      {
        ModelInfer: async (request: ModelInferRequest__Output): Promise<ModelInferResponse> => {
          handled.push(request.rawInputContents[0]?.length ?? 0);
          return { modelName: 'ok' };
        },
      },
      64 * 1024,
    );
    const error = await refusal(infer(client, { rawInputContents: [Buffer.alloc(100 * 1024)] }));
    expect(error.code).toBe(Status.RESOURCE_EXHAUSTED);
    await expect(infer(client, { rawInputContents: [Buffer.alloc(1024)] })).resolves.toMatchObject({ modelName: 'ok' });
    expect(handled).toEqual([1024]);
  });
});

describe('call context', () => {
  it('gives the handler the client\'s metadata and its peer address', async () => {
    let ctx: CallContext | undefined;
    const { client } = await start({
      ModelInfer: async (_request: never, context: CallContext): Promise<ModelInferResponse> => {
        ctx = context;
        return {};
      },
    });
    const metadata = new grpc.Metadata();
    metadata.set('x-request-id', 'r-42');
    await infer(client, {}, {}, metadata);
    expect(ctx?.metadata.get('x-request-id')).toEqual(['r-42']);
    expect(ctx?.peer).toMatch(/127\.0\.0\.1:\d+/);
  });

  it('aborts the handler\'s signal when the client cancels', async () => {
    const aborted = deferred<unknown>();
    const started = deferred();
    const { client } = await start({
      ModelInfer: (_request: never, ctx: CallContext) => {
        ctx.signal.addEventListener('abort', () => aborted.resolve(ctx.signal.reason));
        started.resolve();
        return new Promise<never>(() => {});
      },
    });
    const call = client.ModelInfer({}, () => {});
    await started.promise;
    call.cancel();
    expect(await aborted.promise).toMatchObject({ name: 'AbortError' });
  });

  it('does not abort the handler\'s signal once it has answered (grpc-js reports every closed call as cancelled)', async () => {
    let signal: AbortSignal | undefined;
    const { client } = await start({
      ModelInfer: async (_request: never, ctx: CallContext): Promise<ModelInferResponse> => {
        signal = ctx.signal;
        return {};
      },
    });
    await infer(client, {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(signal?.aborted).toBe(false);
  });

  it('aborts the handler\'s signal with a TimeoutError when the deadline passes', async () => {
    const aborted = deferred();
    let reason: unknown;
    const { client } = await start({
      ModelInfer: (_request: never, ctx: CallContext) => {
        ctx.signal.addEventListener('abort', () => {
          reason = ctx.signal.reason;
          aborted.resolve();
        });
        return new Promise<never>(() => {});
      },
    });
    const error = await refusal(infer(client, {}, { deadline: Date.now() + 200 }));
    expect(error.code).toBe(Status.DEADLINE_EXCEEDED);
    await aborted.promise;
    expect((reason as Error).name).toBe('TimeoutError');
  });

  it('gives the handler the call\'s deadline', async () => {
    let deadline: grpc.Deadline | undefined;
    const { client } = await start({
      ModelInfer: async (_request: never, ctx: CallContext): Promise<ModelInferResponse> => {
        deadline = ctx.deadline;
        return {};
      },
    });
    const at = Date.now() + 5000;
    await infer(client, {}, { deadline: at });
    const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
    expect(Math.abs(ms - at)).toBeLessThan(1000);
  });

  it('serves a call whose deadline is further away than a timer can hold (2^31-1 ms), with its signal not aborted', async () => {
    let aborted: boolean | undefined;
    const { client } = await start({
      ModelInfer: async (_request: never, ctx: CallContext): Promise<ModelInferResponse> => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        aborted = ctx.signal.aborted;
        return { modelName: 'far' };
      },
    });
    const thirtyDays = 30 * 24 * 3600 * 1000;
    const response = await infer(client, {}, { deadline: Date.now() + thirtyDays });
    expect(response.modelName).toBe('far');
    expect(aborted).toBe(false);
  });
});

describe('grpc-timeout headers', () => {
  it.each([
    ['100m', 100], ['5S', 5000], ['2M', 120_000], ['1H', 3_600_000], ['99999999S', 99_999_999_000], ['2500u', 2.5], ['7n', 0.000007],
  ])('reads %s as %d ms', (header, ms) => {
    expect(timeoutMs(header)).toBe(ms);
  });

  it('reads an invalid header as no timeout of its own (grpc-js refuses it)', () => {
    expect(timeoutMs('soon')).toBeUndefined();
    expect(timeoutMs('123456789S')).toBeUndefined();
  });
});

describe('grpc.health.v1', () => {
  const healthPackage = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };

  function healthClient(address: string): grpc.Client {
    const client = new healthPackage.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
    clients.push(client);
    return client;
  }

  function check(client: grpc.Client, service = ''): Promise<string> {
    return promisify<{ status: string }>((cb) =>
      (client as unknown as { Check: (r: object, o: grpc.CallOptions, cb: Callback<{ status: string }>) => void }).Check({ service }, { deadline: Date.now() + 5000 }, cb),
    ).then((response) => response.status);
  }

  it('reports NOT_SERVING until the service says it is ready', async () => {
    const { address } = await start({});
    expect(await check(healthClient(address))).toBe('NOT_SERVING');
  });

  it('reports SERVING for the server and each added service after setServing(true)', async () => {
    const { grpc: server, address } = await start({});
    server.setServing(true);
    const client = healthClient(address);
    expect(await check(client)).toBe('SERVING');
    expect(await check(client, SERVICE)).toBe('SERVING');
  });

  it('reports NOT_SERVING again after setServing(false)', async () => {
    const { grpc: server, address } = await start({});
    server.setServing(true);
    server.setServing(false);
    const client = healthClient(address);
    expect(await check(client)).toBe('NOT_SERVING');
    expect(await check(client, SERVICE)).toBe('NOT_SERVING');
  });

  it('answers NOT_FOUND for a service the server does not have', async () => {
    const { grpc: server, address } = await start({});
    server.setServing(true);
    const error = await refusal(check(healthClient(address), 'no.such.Service'));
    expect(error.code).toBe(Status.NOT_FOUND);
  });

  it('tells watchers NOT_SERVING as soon as shutdown starts', async () => {
    const { grpc: server, address } = await start({});
    server.setServing(true);
    const client = healthClient(address) as unknown as { Watch: (r: object) => grpc.ClientReadableStream<{ status: string }> };
    const watch = client.Watch({ service: '' });
    const statuses: string[] = [];
    const notServing = new Promise<void>((resolve) =>
      watch.on('data', ({ status }) => {
        statuses.push(status);
        if (status === 'NOT_SERVING') resolve();
      }),
    );
    watch.on('error', () => {});
    await new Promise<void>((resolve) => watch.once('data', () => resolve()));
    const shutdown = server.shutdown(500);
    await notServing;
    expect(statuses).toEqual(['SERVING', 'NOT_SERVING']);
    await shutdown;
  });
});

describe('reflection', () => {
  const reflectionProto = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection')), '../proto/grpc/reflection/v1alpha/reflection.proto');
  const reflectionPackage = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true })) as unknown as {
    grpc: { reflection: { v1alpha: { ServerReflection: grpc.ServiceClientConstructor } } };
  };

  interface ReflectionResponse {
    list_services_response?: { service: { name: string }[] };
    file_descriptor_response?: { file_descriptor_proto: Buffer[] };
    error_response?: { error_code: number; error_message: string };
  }

  async function ask(address: string, request: object): Promise<ReflectionResponse> {
    const client = new reflectionPackage.grpc.reflection.v1alpha.ServerReflection(address, grpc.credentials.createInsecure());
    clients.push(client);
    const stream = (client as unknown as { ServerReflectionInfo: () => grpc.ClientDuplexStream<object, ReflectionResponse> }).ServerReflectionInfo();
    const answer = new Promise<ReflectionResponse>((resolve, reject) => {
      stream.once('data', resolve);
      stream.once('error', reject);
    });
    stream.write(request);
    stream.end();
    return answer;
  }

  it('lists inference.GRPCInferenceService and grpc.health.v1.Health', async () => {
    const { address } = await start({});
    const response = await ask(address, { list_services: '' });
    const names = response.list_services_response?.service.map((s) => s.name) ?? [];
    expect(names).toContain('inference.GRPCInferenceService');
    expect(names).toContain('grpc.health.v1.Health');
  });

  it('serves the file that defines inference.GRPCInferenceService, with its methods', async () => {
    const { address } = await start({});
    const response = await ask(address, { file_containing_symbol: 'inference.GRPCInferenceService' });
    const files = (response.file_descriptor_response?.file_descriptor_proto ?? []).map(
      (bytes) => descriptor.FileDescriptorProto.decode(bytes) as unknown as { package: string; service: { name: string; method: { name: string }[] }[] },
    );
    const file = files.find((f) => f.package === 'inference' && f.service.some((s) => s.name === 'GRPCInferenceService'));
    expect(file).toBeDefined();
    const methods = file!.service.find((s) => s.name === 'GRPCInferenceService')!.method.map((m) => m.name);
    expect(methods).toEqual(expect.arrayContaining(['ServerLive', 'ModelInfer', 'ModelStreamInfer', 'ModelMetadata']));
  });
});

describe('graceful shutdown', () => {
  it('lets an in-flight call finish within the grace period', async () => {
    const started = deferred();
    const release = deferred();
    const { grpc: server, client } = await start({
      ModelInfer: async (): Promise<ModelInferResponse> => {
        started.resolve();
        await release.promise;
        return { modelName: 'finished' };
      },
    });
    const inFlight = infer(client, {});
    await started.promise;
    const shutdown = server.shutdown(5000);
    release.resolve();
    await expect(inFlight).resolves.toMatchObject({ modelName: 'finished' });
    await shutdown;
  });

  it('refuses new calls once shut down', async () => {
    const { grpc: server, client } = await start({ ServerLive: async () => ({ live: true }) });
    await expect(serverLive(client)).resolves.toEqual({ live: true });
    await server.shutdown(1000);
    const error = await refusal(serverLive(client));
    expect(error.code).toBe(Status.UNAVAILABLE);
  });

  it('cuts calls still running when the grace period ends, and resolves', async () => {
    const started = deferred();
    const { grpc: server, client } = await start({
      ModelInfer: () => {
        started.resolve();
        return new Promise<never>(() => {});
      },
    });
    const inFlight = refusal(infer(client, {}));
    await started.promise;
    const begun = Date.now();
    await server.shutdown(300);
    expect(Date.now() - begun).toBeGreaterThanOrEqual(250);
    expect((await inFlight).code).toBeOneOf([Status.CANCELLED, Status.UNAVAILABLE]);
  });
});

describe('handler failures outside the promise', () => {
  it('ends a stream with the mapped status when its handler fails', async () => {
    const { client } = await start({ ModelStreamInfer: { bidi: async () => { throw new ServiceError(Status.FAILED_PRECONDITION, 'streaming is off'); } } });
    const stream = client.ModelStreamInfer();
    stream.on('data', () => {});
    const error = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    expect([error.code, error.details]).toEqual([Status.FAILED_PRECONDITION, 'streaming is off']);
  });

  it('maps a synchronous throw like a rejection', async () => {
    const { client } = await start({ ModelInfer: (() => { throw notFound('gone'); }) as never });
    const error = await refusal(infer(client, {}));
    expect([error.code, error.details]).toEqual([Status.NOT_FOUND, 'gone']);
  });
});
