/** The router as a pure factory: tests build one in-process, main.ts runs one. */
import { createGrpcServer, http2LimitsOf, type GrpcServer } from '@infermesh/grpc';
import { events, type Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import { RoutingTable } from './routing-table.js';
import { WorkerPool } from './worker-pool.js';
import { Coalescer } from './coalescer.js';
import { PredictionPublisher } from './prediction-publisher.js';
import { inferenceHandlers } from './inference-service.js';
import { rawInferenceService } from './raw-inference.js';
import type { RouterConfig } from './config.js';

export const VERSION = '0.1.0';

export interface Router {
  readonly grpc: GrpcServer;
  readonly table: RoutingTable;
  readonly pool: WorkerPool;
  /** Binds; returns the bound port. */
  start(): Promise<number>;
  stop(): Promise<void>;
}

export interface RouterDeps {
  config: RouterConfig;
  logger: Logger;
  bus: Bus;
}

export async function createRouter({ config, logger, bus }: RouterDeps): Promise<Router> {
  await bus.ensureStreams();
  const table = new RoutingTable(config.WORKER_STALE_MS);
  table.onChange((change) =>
    logger.info({ worker_id: change.worker.id, address: change.worker.address, device: change.worker.device, reason: change.reason }, `worker ${change.kind}`),
  );
  const pool = new WorkerPool(table, config.GRPC_MAX_MESSAGE_BYTES);
  const publisher = new PredictionPublisher(bus, logger, { capacity: config.ROUTER_RECORD_BUFFER });
  const coalescer = new Coalescer({ table, pool, logger, maxAttempts: config.ROUTER_MAX_ATTEMPTS, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES });
  const grpc = createGrpcServer({ name: 'infermesh-router', logger, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES, http2: http2LimitsOf(config) });
  grpc.addService(
    'inference.GRPCInferenceService',
    rawInferenceService(),
    inferenceHandlers({ table, pool, coalescer, publisher, logger, requestTimeoutMs: config.ROUTER_REQUEST_TIMEOUT_MS, version: VERSION }),
  );
  const heartbeats = bus.subscribe(bus.subjects.heartbeats, events.heartbeat, ({ message }) => table.update(message));
  const expiry = setInterval(() => table.expire(), Math.min(250, config.WORKER_STALE_MS / 4));

  return {
    grpc,
    table,
    pool,
    async start() {
      const port = await grpc.listen(config.ROUTER_HOST, config.ROUTER_PORT);
      grpc.setServing(true);
      logger.info({ port }, 'router serving');
      return port;
    },
    async stop() {
      clearInterval(expiry);
      await grpc.shutdown(10_000);
      heartbeats.unsubscribe();
      await publisher.flush(5000);
      pool.closeAll();
    },
  };
}
