/** The router as a pure factory: tests build one in-process, main.ts runs one. */
import { createGrpcServer, http2LimitsOf, meshTlsFromConfig, publicServerCredentials, type GrpcServer } from '@infermesh/grpc';
import { events, trafficPolicies, type Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import { RoutingTable } from './routing-table.js';
import { WorkerPool } from './worker-pool.js';
import { WorkerProbe } from './worker-probe.js';
import { Coalescer } from './coalescer.js';
import { PredictionPublisher } from './prediction-publisher.js';
import { RecordSpool, defaultSpoolDir } from './record-spool.js';
import { inferenceHandlers } from './inference-service.js';
import { rawInferenceService } from './raw-inference.js';
import { feedbackServiceDefinition } from './feedback-request.js';
import { feedbackHandlers } from './feedback-service.js';
import { FeedbackStore } from './feedback-store.js';
import type { RouterConfig } from './config.js';
import { accessControlFor } from './auth/index.js';
import { RepositoryControl } from './repository-control.js';
import { TrafficTable } from './traffic-table.js';
import { ShadowTraffic } from './traffic-shadow.js';
import { createRestServer } from './rest/http-server.js';
import { PipelineExecutor } from './pipeline/pipeline-executor.js';
import { ModelSteps } from './pipeline/model-step.js';
import { noOcrGlue, ocrGlueClient } from './pipeline/ocr-glue.js';

export const VERSION = '0.1.0';
/** Deadline of one direct health check of a worker (admission, or while NATS is down). */
const WORKER_CHECK_TIMEOUT_MS = 2000;
/** A worker id refused at an address is checked again at that address no sooner than this. */
const REFUSED_RETRY_MS = 5000;

export interface Router {
  readonly grpc: GrpcServer;
  readonly table: RoutingTable;
  readonly pool: WorkerPool;
  /** Binds gRPC and REST; returns the bound gRPC port. */
  start(): Promise<number>;
  /** The bound REST (KServe v2 HTTP) port, once started; 0 before. */
  readonly httpPort: number;
  stop(): Promise<void>;
}

export interface RouterDeps {
  config: RouterConfig;
  logger: Logger;
  bus: Bus;
}

export async function createRouter({ config, logger, bus }: RouterDeps): Promise<Router> {
  const access = await accessControlFor(config.ROUTER_API_KEYS_FILE, logger);
  await bus.ensureStreams();
  const table = new RoutingTable(config.WORKER_STALE_MS, Math.random, logger);
  table.onChange((change) =>
    logger.info({ worker_id: change.worker.id, address: change.worker.address, device: change.worker.device, reason: change.reason }, `worker ${change.kind}`),
  );
  const pool = new WorkerPool(table, config.GRPC_MAX_MESSAGE_BYTES, meshTlsFromConfig(config));
  const spool = RecordSpool.open({ dir: config.ROUTER_RECORD_SPOOL_DIR ?? defaultSpoolDir(config.ROUTER_PORT), maxBytes: config.ROUTER_RECORD_SPOOL_MAX_BYTES }, logger);
  const publisher = new PredictionPublisher(bus, logger, { capacity: config.ROUTER_RECORD_BUFFER, spool });
  const coalescer = new Coalescer({ table, pool, logger, maxAttempts: config.ROUTER_MAX_ATTEMPTS, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES });
  const credentials = publicServerCredentials({ certFile: config.ROUTER_TLS_CERT_FILE, keyFile: config.ROUTER_TLS_KEY_FILE, clientCaFile: config.ROUTER_TLS_CLIENT_CA_FILE });
  // Every router applies the policies in the bucket; a router starting reads the current ones before it serves.
  const traffic = new TrafficTable(logger);
  const trafficWatch = await (await trafficPolicies(bus)).watch(
    (policy) => traffic.apply(policy),
    (subject, error) => logger.warn({ subject, err: error }, 'traffic policy not decodable; ignored'),
  );
  await trafficWatch.current;
  const shadows = new ShadowTraffic({ coalescer, table, publish: (record) => publisher.publish(record), logger, timeoutMs: config.ROUTER_REQUEST_TIMEOUT_MS });
  const grpc = createGrpcServer({ name: 'infermesh-router', logger, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES, http2: http2LimitsOf(config), healthPort: config.GRPC_HEALTH_PORT, credentials });
  // Pipelines: model steps through this router's coalescer, glue steps at a preprocessor.
  const glue = config.PREPROCESSOR_ADDRESS ? ocrGlueClient(config.PREPROCESSOR_ADDRESS, config.GRPC_MAX_MESSAGE_BYTES, meshTlsFromConfig(config)) : noOcrGlue;
  const pipelines = new PipelineExecutor({ models: new ModelSteps({ table, coalescer, publish: (record) => publisher.publish(record), logger }), glue });
  const handlers = inferenceHandlers({ table, pool, coalescer, publisher, logger, requestTimeoutMs: config.ROUTER_REQUEST_TIMEOUT_MS, version: VERSION, access, control: new RepositoryControl({ bus, table, logger, timeoutMs: config.ROUTER_CONTROL_TIMEOUT_MS }), traffic, shadows, pipelines });
  grpc.addService('inference.GRPCInferenceService', rawInferenceService(), handlers);
  // KServe v2 REST: each route calls the handler above for its method, so validation, keys, limits, records and traces are gRPC's.
  const rest = createRestServer({
    handlers, access, logger, version: VERSION, maxBodyBytes: config.GRPC_MAX_MESSAGE_BYTES, requestTimeoutMs: config.ROUTER_REQUEST_TIMEOUT_MS,
    tls: config.ROUTER_TLS_CERT_FILE && config.ROUTER_TLS_KEY_FILE ? { certFile: config.ROUTER_TLS_CERT_FILE, keyFile: config.ROUTER_TLS_KEY_FILE, clientCaFile: config.ROUTER_TLS_CLIENT_CA_FILE } : undefined,
  });
  let httpPort = 0;
  // True labels of earlier requests, on the same port and with the same keys as inference.
  grpc.addService('infermesh.v1.FeedbackService', feedbackServiceDefinition(), feedbackHandlers({ table, store: new FeedbackStore(bus, logger), logger, access }));
  const probe = new WorkerProbe({
    table, pool, logger, checkTimeoutMs: WORKER_CHECK_TIMEOUT_MS, outageCheckMs: config.ROUTER_WORKER_CHECK_MS, retryRefusedMs: REFUSED_RETRY_MS, fillMs: config.ROUTER_TABLE_FILL_MS,
  });
  const heartbeats = bus.subscribe(bus.subjects.heartbeats, events.heartbeat, ({ message }) => probe.heartbeat(message));
  const expiry = setInterval(() => table.expire(), table.tickMs);
  void followNats(bus, probe, logger);
  let stopping = false;

  return {
    grpc,
    table,
    pool,
    get httpPort() {
      return httpPort;
    },
    async start() {
      const port = await grpc.listen(config.ROUTER_HOST, config.ROUTER_PORT);
      httpPort = await rest.listen(config.ROUTER_HTTP_HOST ?? config.ROUTER_HOST, config.ROUTER_HTTP_PORT);
      logger.info({ port, http_port: httpPort }, 'router listening; NOT_SERVING until the routing table is filled');
      void probe.filled.then(() => {
        if (stopping) return;
        grpc.setServing(true);
        logger.info({ port, http_port: httpPort, workers: table.list().length }, 'router serving');
      });
      return port;
    },
    async stop() {
      stopping = true;
      clearInterval(expiry);
      await Promise.all([grpc.shutdown(config.ROUTER_SHUTDOWN_GRACE_MS), rest.close(config.ROUTER_SHUTDOWN_GRACE_MS)]);
      probe.close();
      access.close();
      heartbeats.unsubscribe();
      await trafficWatch.stop();
      await publisher.flush(5000);
      pool.closeAll();
      glue.close();
    },
  };
}

/**
 * While the NATS connection is down heartbeats cannot arrive: the probe checks the known
 * workers directly instead of letting them expire, until the connection is back.
 */
async function followNats(bus: Bus, probe: WorkerProbe, logger: Logger): Promise<void> {
  for await (const status of bus.nc.status()) {
    if (status.type === 'disconnect') {
      logger.warn('NATS unreachable: routing to the workers known, checked directly with gRPC health; new workers wait for NATS');
      probe.startOutageChecks();
    } else if (status.type === 'reconnect') {
      logger.info('NATS reachable again: workers expire by heartbeat age again');
      probe.stopOutageChecks();
    }
  }
}
