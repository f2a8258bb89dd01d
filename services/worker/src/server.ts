/** The worker as a pure factory: tests build one in-process, main.ts runs one. */
import { createGrpcServer, http2LimitsOf, meshTlsFromConfig, meshServerCredentials, type GrpcServer } from '@infermesh/grpc';
import { BATCH_HEADROOM_BYTES, inferenceService, workerService } from '@infermesh/contracts';
import type { Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import { ModelRegistry } from './model-registry.js';
import { workerHandlers, type WorkerState } from './inference-service.js';
import { RequestRunner } from './request-runner.js';
import { preprocessorClient } from './preprocessor-client.js';
import { startHeartbeat } from './heartbeat.js';
import { serveControl } from './control.js';
import type { WorkerConfig } from './config.js';

export const VERSION = '0.1.0';

export interface Worker {
  readonly grpc: GrpcServer;
  readonly registry: ModelRegistry;
  readonly state: WorkerState;
  /** Binds, then announces itself; returns the advertised address. */
  start(): Promise<string>;
  /** Stops announcing, refuses new work, finishes in-flight requests, releases sessions. */
  stop(): Promise<void>;
}

export interface WorkerDeps {
  config: WorkerConfig;
  logger: Logger;
  bus: Bus;
}

export async function createWorker({ config, logger, bus }: WorkerDeps): Promise<Worker> {
  // A supervisor pins each worker with CUDA_VISIBLE_DEVICES, under which its GPU is device 0.
  const gpu = config.WORKER_DEVICE.startsWith('gpu') ? Number(config.WORKER_DEVICE.slice(3)) : undefined;
  const deviceId = gpu === undefined ? undefined : process.env.CUDA_VISIBLE_DEVICES ? 0 : gpu;
  const registry = new ModelRegistry({
    repository: config.MODEL_REPOSITORY,
    models: config.WORKER_MODELS,
    providers: config.WORKER_EXECUTION_PROVIDERS,
    intraOpThreads: config.WORKER_INTRA_OP_THREADS,
    sessionThread: config.WORKER_SESSION_THREAD,
    deviceId,
    logger,
    unloadDelayMs: config.WORKER_UNLOAD_DELAY_MS,
  });
  await registry.loadAll();
  const state: WorkerState = { workerId: config.WORKER_ID, draining: false, drain: new AbortController() };
  const tls = meshTlsFromConfig(config);
  const preprocessor = preprocessorClient(config.PREPROCESSOR_ADDRESS, config.GRPC_MAX_MESSAGE_BYTES, tls);
  const runner = new RequestRunner({ preprocessor, workerId: config.WORKER_ID, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES });
  const handlers = workerHandlers(registry, runner, state, VERSION, logger);
  const grpc = createGrpcServer({
    name: 'infermesh-worker',
    logger,
    maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES,
    http2: http2LimitsOf(config), healthPort: config.GRPC_HEALTH_PORT,
    // A router's batch message may exceed the limit by its framing; a batch's answers are as large as its requests make them.
    maxReceiveBytes: config.GRPC_MAX_MESSAGE_BYTES + BATCH_HEADROOM_BYTES,
    maxSendBytes: -1,
    credentials: meshServerCredentials(tls),
  });
  // A batch carries the requests of many traces: each request gets its own span instead.
  // Only routers call workers: a client that skips the router is neither counted nor limited.
  grpc.addService('infermesh.v1.Worker', workerService(), handlers.worker, { untraced: ['InferBatches'], callers: ['router'] });
  grpc.addService('inference.GRPCInferenceService', inferenceService(), handlers.inference, { callers: ['router'] });
  let heartbeat: ReturnType<typeof startHeartbeat> | undefined;
  let control: ReturnType<typeof serveControl> | undefined;
  let poll: NodeJS.Timeout | undefined;
  // A version's state changed (loading, ready, draining): routers hear of it now, not at the next beat.
  registry.onChange(() => heartbeat?.beat());

  return {
    grpc,
    registry,
    state,
    async start() {
      const port = await grpc.listen(config.WORKER_HOST, config.WORKER_PORT);
      const address = `${config.WORKER_ADVERTISE_HOST}:${port}`;
      grpc.setServing(true);
      heartbeat = startHeartbeat({
        bus, registry, state, address, device: config.WORKER_DEVICE, intervalMs: config.WORKER_HEARTBEAT_MS,
        onError: (error) => logger.warn({ err: error }, 'heartbeat not sent'),
        onTooLarge: (bytes) => logger.warn(
          { bytes, max_payload: bus.nc.info?.max_payload },
          'heartbeat larger than the NATS server takes: models announced without their drift profiles and class labels (no drift or classes at the monitor)',
        ),
      });
      control = serveControl({ bus, registry, workerId: config.WORKER_ID, logger });
      if (config.WORKER_REPOSITORY_POLL_MS > 0) {
        let polling = false;
        poll = setInterval(() => {
          if (polling) return;
          polling = true;
          registry.poll().catch((error: unknown) => logger.warn({ err: error }, 'model repository poll failed')).finally(() => (polling = false));
        }, config.WORKER_REPOSITORY_POLL_MS);
      }
      logger.info({ address, device: config.WORKER_DEVICE, models: registry.ready().map((m) => `${m.name}:${m.version}`) }, 'worker serving');
      return address;
    },
    async stop() {
      state.draining = true;
      clearInterval(poll);
      control?.unsubscribe();
      // Health first: a router believes the draining heartbeat once this worker's health agrees.
      grpc.setServing(false);
      heartbeat?.beat(); // tells routers to stop sending here at once
      heartbeat?.stop();
      // Routers' batch streams answer what they hold and end, so the server can close.
      state.drain.abort();
      // Requests still being preprocessed have not reached a model's queue yet.
      await runner.idle();
      await Promise.all(registry.ready().map((m) => m.idle()));
      await grpc.shutdown(config.WORKER_SHUTDOWN_GRACE_MS);
      preprocessor.close();
      await registry.release();
    },
  };
}
