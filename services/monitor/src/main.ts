/** Monitor entry point: config → logger → NATS → listen. SIGTERM: NOT_SERVING, stop consuming, close, drain. */
import { createLogger } from '@infermesh/log';
import { connectBus, natsConnectOptions } from '@infermesh/bus';
import { runService } from '@infermesh/grpc';
import { monitorConfig } from './config.js';
import { createMonitor } from './server.js';

const logger = createLogger('monitor');
await runService('monitor', logger, async () => {
  const config = monitorConfig();
  const bus = await connectBus({ url: config.NATS_URL, name: 'monitor', prefix: config.NATS_SUBJECT_PREFIX, logger, connectOptions: natsConnectOptions(config) });
  const monitor = await createMonitor({ config, logger, bus });
  await monitor.start();
  return async () => {
    await monitor.stop();
    await bus.drain();
  };
});
