/**
 * The life of a service process: start it, and on SIGTERM or SIGINT stop it once (the
 * service's own order: health NOT_SERVING, finish in-flight work, drain NATS), flush the
 * spans, exit 0. A failure to start is logged and exits 1.
 */
import type { Logger } from '@infermesh/log';
import { shutdownTelemetry } from '@infermesh/telemetry';

/** Starts the service; resolves to the function that stops it. */
export type StartService = () => Promise<() => Promise<void>>;

export async function runService(name: string, logger: Logger, start: StartService): Promise<void> {
  let stop: () => Promise<void>;
  try {
    stop = await start();
  } catch (error) {
    logger.fatal({ err: error }, `${name} failed to start`);
    await shutdownTelemetry();
    process.exit(1);
  }
  let stopping = false;
  const onSignal = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${name} stopping`);
    try {
      await stop();
    } catch (error) {
      logger.error({ err: error }, `${name} did not stop cleanly`);
    }
    await shutdownTelemetry();
    logger.info(`${name} stopped`);
    process.exit(0);
  };
  process.on('SIGTERM', () => void onSignal('SIGTERM'));
  process.on('SIGINT', () => void onSignal('SIGINT'));
}
