/** Worker entry point: config → logger → NATS → models → listen → heartbeats. SIGTERM drains. */
import { createLogger } from '@infermesh/log';
import { connectBus, natsConnectOptions } from '@infermesh/bus';
import { runService } from '@infermesh/grpc';
import { workerConfig } from './config.js';
import { createWorker } from './server.js';

const logger = createLogger('worker');
await runService('worker', logger, async () => {
  const config = workerConfig();
  const bus = await connectBus({ url: config.NATS_URL, name: `worker ${config.WORKER_ID}`, prefix: config.NATS_SUBJECT_PREFIX, logger, connectOptions: natsConnectOptions(config) });
  const worker = await createWorker({ config, logger: logger.child({ worker_id: config.WORKER_ID }), bus });
  await worker.start();
  return async () => {
    await worker.stop();
    await bus.drain();
  };
});
