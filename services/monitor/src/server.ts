/** The monitor as a pure factory: tests build one in-process, main.ts runs one. */
import { collectDefaultMetrics } from 'prom-client';
import { createGrpcServer, http2LimitsOf, type GrpcServer } from '@infermesh/grpc';
import { monitorService } from '@infermesh/contracts';
import type { Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import { HandledMessages } from './handled-messages.js';
import { ModelMetrics } from './model-metrics.js';
import { monitorHandlers } from './monitor-service.js';
import { consumePredictions, type PredictionConsumer } from './prediction-consumer.js';
import { createMetricsHttpServer } from './metrics-http.js';
import type { MonitorConfig } from './config.js';

export interface Monitor {
  readonly grpc: GrpcServer;
  readonly metrics: ModelMetrics;
  /** Binds both servers and starts consuming; returns the bound ports (useful with port 0). */
  start(): Promise<{ grpcPort: number; metricsPort: number }>;
  /** Health NOT_SERVING, stop consuming (records in hand are acked), close both servers. */
  stop(): Promise<void>;
}

/**
 * Messages remembered to recognise a redelivery. One comes within the consumer's ack wait
 * (30 s) of the delivery it repeats: 100k messages cover that above 3000 batches a
 * second, in a few MB.
 */
const REDELIVERY_WINDOW_MESSAGES = 100_000;

export interface MonitorDeps {
  config: MonitorConfig;
  logger: Logger;
  bus: Bus;
}

export async function createMonitor({ config, logger, bus }: MonitorDeps): Promise<Monitor> {
  // The monitor may start before any router: the stream must exist to attach a consumer.
  await bus.ensureStreams();
  const metrics = new ModelMetrics();
  // Lives as long as the counts it protects: a consumer restarted by stop() and start()
  // may be redelivered what the previous one counted.
  const handled = new HandledMessages(REDELIVERY_WINDOW_MESSAGES);
  // Process metrics (CPU, memory, event loop lag) beside the model series, in the same private registry.
  collectDefaultMetrics({ register: metrics.registry });
  const http = createMetricsHttpServer(metrics.registry, logger);
  const grpc = createGrpcServer({ name: 'infermesh-monitor', logger, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES, http2: http2LimitsOf(config) });
  grpc.addService('infermesh.v1.Monitor', monitorService(), monitorHandlers(metrics));
  let consumer: PredictionConsumer | undefined;

  return {
    grpc,
    metrics,
    async start() {
      const grpcPort = await grpc.listen(config.MONITOR_HOST, config.MONITOR_PORT);
      const metricsPort = await http.listen(config.MONITOR_HOST, config.MONITOR_METRICS_PORT);
      consumer = await consumePredictions(bus, config.MONITOR_DURABLE, metrics, handled, logger);
      grpc.setServing(true);
      logger.info({ grpc_port: grpcPort, metrics_port: metricsPort, durable: config.MONITOR_DURABLE }, 'monitor serving');
      return { grpcPort, metricsPort };
    },
    async stop() {
      grpc.setServing(false);
      await consumer?.stop();
      consumer = undefined;
      await http.close();
      await grpc.shutdown(5000);
    },
  };
}
