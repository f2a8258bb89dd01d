/** Preprocessor entry point: config → logger → listen. SIGTERM: finish in-flight requests, flush spans. */
import { createLogger } from '@infermesh/log';
import { shutdownTelemetry } from '@infermesh/telemetry';
import { preprocessorConfig } from './config.js';
import { createPreprocessor } from './server.js';

const logger = createLogger('preprocessor');
try {
  const preprocessor = createPreprocessor({ config: preprocessorConfig(), logger });
  await preprocessor.start();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await preprocessor.stop();
    await shutdownTelemetry();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
} catch (error) {
  logger.fatal({ err: error }, 'preprocessor failed to start');
  await shutdownTelemetry();
  process.exit(1);
}
