/** Preprocessor entry point: config → logger → listen. SIGTERM: finish in-flight requests, flush spans. */
import { createLogger } from '@infermesh/log';
import { runService } from '@infermesh/grpc';
import { preprocessorConfig } from './config.js';
import { createPreprocessor } from './server.js';

const logger = createLogger('preprocessor');
await runService('preprocessor', logger, async () => {
  const preprocessor = createPreprocessor({ config: preprocessorConfig(), logger });
  await preprocessor.start();
  return () => preprocessor.stop();
});
