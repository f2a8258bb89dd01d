/** Router entry point: config → logger → NATS → listen. SIGTERM: stop accepting, finish, flush records, drain. */
import { createLogger } from '@infermesh/log';
import { connectBus, natsConnectOptions } from '@infermesh/bus';
import { runService } from '@infermesh/grpc';
import { routerConfig } from './config.js';
import { createRouter } from './server.js';

const logger = createLogger('router');
await runService('router', logger, async () => {
  const config = routerConfig();
  const bus = await connectBus({ url: config.NATS_URL, name: 'router', prefix: config.NATS_SUBJECT_PREFIX, logger, connectOptions: natsConnectOptions(config) });
  const router = await createRouter({ config, logger, bus });
  await router.start();
  return async () => {
    await router.stop();
    await bus.drain();
  };
});
