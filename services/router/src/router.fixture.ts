/**
 * A router in this process for tests, as createRouter builds it, against a real nats-server
 * and a stand-in worker on real gRPC: the worker is put in the routing table directly (no
 * heartbeats), and each test reads what the router stored on the mesh's streams.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connectBus, streamName, type Bus, type StreamKind } from '@infermesh/bus';
import {
  contracts, inferenceService, workerService,
  type FeedbackServiceClient, type GRPCInferenceServiceClient, type InferBatchRequest__Output, type InferBatchResponse, type ModelInferRequest,
  type ModelInferResponse__Output, type ModelStatus__Output,
} from '@infermesh/contracts';
import { createGrpcServer, type GrpcServer } from '@infermesh/grpc';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { routerConfig } from './config.js';
import { createRouter, type Router } from './server.js';
import { createApiKey } from './auth/index.js';

export const logger = createLogger('test', { level: 'silent' });
export const PREFIX = 'infermesh';

const inferCodec = inferenceService().ModelInfer as unknown as grpc.MethodDefinition<ModelInferRequest, ModelInferResponse__Output>;

/** What the stand-in worker answers for each request it is sent (decoded). */
export type Answer = (request: ModelInferRequest) => NonNullable<InferBatchResponse['responses']>[number];

export const echo: Answer = (request) => ({ response: { modelName: request.modelName, id: request.id }, statusCode: 0 });

export function modelStatus(name: string, overrides: Partial<ModelStatus__Output> = {}): ModelStatus__Output {
  return {
    name, version: '1', ready: true, state: 'READY', platform: 'onnxruntime_onnx', inputs: [], outputs: [], maxBatchSize: 8, reason: '',
    dynamicBatching: null, instances: 1, driftReference: null, classLabels: [], pipelineSteps: [], placement: null, ...overrides,
  };
}

/** A worker on infermesh.v1.Worker/InferBatches that answers each request with `answer`. */
export async function standInWorker(answer: { current: Answer }): Promise<{ address: string; server: GrpcServer }> {
  const server = createGrpcServer({ name: 'stand-in-worker', logger, maxMessageBytes: 4 * 1024 * 1024 });
  server.addService('infermesh.v1.Worker', workerService(), {
    InferBatches: {
      bidi: (call: grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>) =>
        new Promise<void>((resolve) => {
          call.on('data', (batch: InferBatchRequest__Output) => {
            call.write({ batchId: batch.batchId, responses: batch.requests.map((item) => answer.current(inferCodec.requestDeserialize(item.request))) });
          });
          call.on('end', () => resolve());
          call.on('cancelled', () => resolve());
        }),
    },
  });
  const port = await server.listen('127.0.0.1', 0);
  // Healthy when the router checks it directly (while NATS is down).
  server.setServing(true);
  return { address: `127.0.0.1:${port}`, server };
}

export interface RouterUnderTest {
  nats: NatsServer;
  router: Router;
  /** The router's own NATS connection. */
  bus: Bus;
  address: string;
  /** A connection of its own, to read the streams. */
  reader: Bus;
  answer: { current: Answer };
  /** Puts a worker serving `models` in the routing table and marks the table filled. */
  serve(models: ModelStatus__Output[]): void;
  /** A FeedbackService client sending `key` (none when undefined). */
  feedbackClient(key?: string): FeedbackServiceClient;
  inferenceClient(key?: string): GRPCInferenceServiceClient;
  /** Every message stored on a stream, decoded with `decode`. */
  stored<T>(kind: StreamKind, decode: (data: Uint8Array) => T): Promise<T[]>;
  stop(): Promise<void>;
}

export interface RouterOptions {
  /** Keys file entries; the keys are returned by id. */
  keys?: { id: string; models: '*' | string[]; rate?: { per_second: number; burst: number } }[];
  /** More router settings (PREPROCESSOR_ADDRESS for pipelines' glue). */
  env?: Record<string, string>;
}

export async function startRouter(options: RouterOptions = {}): Promise<RouterUnderTest & { keys: Record<string, string> }> {
  const dir = mkdtempSync(join(tmpdir(), 'router-fixture-'));
  const nats = await startNatsServer();
  const keys: Record<string, string> = {};
  const env: Record<string, string> = {
    NATS_URL: nats.url, ROUTER_PORT: '0', ROUTER_HTTP_PORT: '0', ROUTER_RECORD_SPOOL_DIR: join(dir, 'spool'),
    // The table is filled by serve(), not by time.
    ROUTER_TABLE_FILL_MS: '600000', WORKER_STALE_MS: '600000', ROUTER_SHUTDOWN_GRACE_MS: '1000',
    ...options.env,
  };
  if (options.keys) {
    const entries = options.keys.map(({ id, models, rate }) => {
      const { key, sha256 } = createApiKey(id);
      keys[id] = key;
      return { id, sha256, models, ...(rate ? { rate } : {}) };
    });
    env.ROUTER_API_KEYS_FILE = join(dir, 'keys.json');
    writeFileSync(env.ROUTER_API_KEYS_FILE, JSON.stringify({ keys: entries }));
  }
  const config = routerConfig(env);
  const bus = await connectBus({ url: nats.url, name: 'router under test', prefix: PREFIX, logger });
  const reader = await connectBus({ url: nats.url, name: 'stream reader', prefix: PREFIX, logger });
  const router = await createRouter({ config, logger, bus });
  const port = await router.start();
  const address = `127.0.0.1:${port}`;
  const answer = { current: echo };
  const worker = await standInWorker(answer);
  const clients: grpc.Client[] = [];
  const withKey = (key?: string): grpc.ClientOptions => (key === undefined ? {} : {
    interceptors: [(callOptions, nextCall) => new grpc.InterceptingCall(nextCall(callOptions), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${key}`);
        next(metadata, listener);
      },
    })],
  });
  return {
    nats, router, bus, address, reader, answer, keys,
    serve(models) {
      router.table.update({ workerId: 'w1', address: worker.address, device: 'cpu', models, queueDepth: 0, inFlight: 0, sentAtMs: '0', draining: false, executionProvider: 'cpu', rssBytes: '0' });
      router.table.markFilled();
    },
    feedbackClient(key) {
      const client = new (contracts().infermesh.v1.FeedbackService)(address, grpc.credentials.createInsecure(), withKey(key));
      clients.push(client);
      return client;
    },
    inferenceClient(key) {
      const client = new (contracts().inference.GRPCInferenceService)(address, grpc.credentials.createInsecure(), withKey(key));
      clients.push(client);
      return client;
    },
    async stored<T>(kind: StreamKind, decode: (data: Uint8Array) => T): Promise<T[]> {
      const jsm = await reader.js.jetstreamManager();
      const name = streamName(PREFIX, kind);
      const { state } = await jsm.streams.info(name);
      const messages: T[] = [];
      if (state.messages === 0) return messages;
      // An ordered consumer: the whole stream in a few round trips, not one per message.
      const consumer = await reader.js.consumers.get(name);
      for await (const message of await consumer.fetch({ max_messages: state.messages, expires: 5000 })) {
        messages.push(decode(message.data));
        if (message.seq >= state.last_seq) break;
      }
      return messages;
    },
    async stop() {
      for (const client of clients) client.close();
      await router.stop();
      worker.server.server.forceShutdown();
      await Promise.allSettled([bus.drain(), reader.drain()]);
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A unary call as a promise. */
export function unary<Req, Res>(client: grpc.Client, method: string, request: Req, deadlineMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: Req, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: Res) => void) => void>)[method];
    fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, value) => (error ? reject(error) : resolve(value as Res)));
  });
}
