/** Router entry point: config → logger → NATS → listen. SIGTERM: stop accepting, finish, flush records. */
import { createLogger } from '@infermesh/log';
import { connectBus } from '@infermesh/bus';
import { shutdownTelemetry } from '@infermesh/telemetry';
import { routerConfig } from './config.js';
import { createRouter } from './server.js';

const logger = createLogger('router');
try {
  const config = routerConfig();
  const bus = await connectBus({ url: config.NATS_URL, name: 'router', prefix: config.NATS_SUBJECT_PREFIX, logger });
  const router = await createRouter({ config, logger, bus });
  await router.start();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await router.stop();
    await bus.drain();
    await shutdownTelemetry();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
} catch (error) {
  logger.fatal({ err: error }, 'router failed to start');
  await shutdownTelemetry();
  process.exit(1);
}
