/**
 * Graceful shutdown waits for the calls in flight, not for the connections: a client may
 * keep a connection open (an idle channel, a health Watch) long after its calls are answered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { contracts, inferenceService } from '@infermesh/contracts';
import type { GRPCInferenceServiceClient, ModelInferResponse, ModelInferResponse__Output, ModelStreamInferResponse } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createGrpcServer, type GrpcServer, type ServiceHandlers } from './index.js';

const logger = createLogger('grpc-shutdown-test', { level: 'silent' });
/** Longer than any test may take: a shutdown that waited for it would fail the test by its timeout. */
const GRACE_MS = 10 * 60_000;

const healthPackage = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as {
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

const cleanup: (() => void)[] = [];

afterEach(() => {
  for (const step of cleanup.splice(0)) step();
});

async function start(handlers: ServiceHandlers): Promise<{ server: GrpcServer; client: GRPCInferenceServiceClient; address: string }> {
  const server = createGrpcServer({ name: 'test', logger, maxMessageBytes: 4 * 1024 * 1024 });
  server.addService('inference.GRPCInferenceService', inferenceService(), handlers);
  const address = `127.0.0.1:${await server.listen('127.0.0.1', 0)}`;
  server.setServing(true);
  const client = new (contracts().inference.GRPCInferenceService)(address, grpc.credentials.createInsecure());
  cleanup.push(() => client.close(), () => server.server.forceShutdown());
  return { server, client, address };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A health Watch held open, as a load balancer may: a stream no handler of ours counts. */
async function watchHealth(address: string): Promise<void> {
  const health = new healthPackage.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Watch: (request: object) => grpc.ClientReadableStream<{ status: string }>;
  };
  const watch = health.Watch({ service: '' });
  watch.on('error', () => {});
  cleanup.push(() => health.close());
  await new Promise<void>((resolve) => watch.once('data', () => resolve()));
}

function infer(client: GRPCInferenceServiceClient): Promise<ModelInferResponse__Output> {
  return new Promise((resolve, reject) => client.ModelInfer({}, { deadline: Date.now() + 60_000 }, (error, response) => (error ? reject(error) : resolve(response!))));
}

describe('shutdown', () => {
  it('ends once the calls in flight are answered, although a client keeps a connection open', async () => {
    const started = deferred();
    const release = deferred();
    const { server, client, address } = await start({
      ModelInfer: async (): Promise<ModelInferResponse> => {
        started.resolve();
        await release.promise;
        return { modelName: 'finished' };
      },
    });
    await watchHealth(address);
    const inFlight = infer(client);
    await started.promise;
    const shutdown = server.shutdown(GRACE_MS);
    release.resolve();
    await expect(inFlight).resolves.toMatchObject({ modelName: 'finished' });
    await shutdown;
  });

  it('ends at once when no call is in flight, although a client keeps a connection open', async () => {
    const { server, address } = await start({});
    await watchHealth(address);
    await server.shutdown(GRACE_MS);
  });

  it('waits for a stream in flight until it ends, and its last message reaches the client', async () => {
    const started = deferred();
    const release = deferred();
    let released = false;
    const { server, client } = await start({
      ModelStreamInfer: {
        bidi: async (call) => {
          started.resolve();
          await release.promise;
          (call as unknown as grpc.ServerDuplexStream<unknown, ModelStreamInferResponse>).write({ errorMessage: 'last' });
        },
      },
    });
    const stream = client.ModelStreamInfer();
    const messages: string[] = [];
    stream.on('data', (message: { errorMessage: string }) => messages.push(message.errorMessage));
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.write({});
    await started.promise;
    const shutdown = server.shutdown(GRACE_MS).then(() => expect(released).toBe(true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    released = true;
    release.resolve();
    await shutdown;
    expect((await status).code).toBe(grpc.status.OK);
    expect(messages).toEqual(['last']);
  });
});
