/** Worker entry point: config → logger → NATS → models → listen → heartbeats. SIGTERM drains. */
import { createLogger } from '@infermesh/log';
import { connectBus } from '@infermesh/bus';
import { shutdownTelemetry } from '@infermesh/telemetry';
import { workerConfig } from './config.js';
import { createWorker } from './server.js';

const logger = createLogger('worker');
try {
  const config = workerConfig();
  const bus = await connectBus({ url: config.NATS_URL, name: `worker ${config.WORKER_ID}`, prefix: config.NATS_SUBJECT_PREFIX, logger });
  const worker = await createWorker({ config, logger: logger.child({ worker_id: config.WORKER_ID }), bus });
  await worker.start();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    await worker.stop();
    await bus.drain();
    await shutdownTelemetry();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
} catch (error) {
  logger.fatal({ err: error }, 'worker failed to start');
  await shutdownTelemetry();
  process.exit(1);
}
