/** Monitor entry point: config → logger → NATS → listen. SIGTERM: NOT_SERVING, stop consuming, close, drain. */
import { createLogger } from '@infermesh/log';
import { connectBus } from '@infermesh/bus';
import { shutdownTelemetry } from '@infermesh/telemetry';
import { monitorConfig } from './config.js';
import { createMonitor } from './server.js';

const logger = createLogger('monitor');
try {
  const config = monitorConfig();
  const bus = await connectBus({ url: config.NATS_URL, name: 'monitor', prefix: config.NATS_SUBJECT_PREFIX, logger });
  const monitor = await createMonitor({ config, logger, bus });
  await monitor.start();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await monitor.stop();
    await bus.drain();
    await shutdownTelemetry();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
} catch (error) {
  logger.fatal({ err: error }, 'monitor failed to start');
  await shutdownTelemetry();
  process.exit(1);
}
