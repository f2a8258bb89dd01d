/**
 * Supervisor entry point: one worker per GPU found (nvidia-smi) or listed in
 * WORKER_DEVICES, else WORKER_CPU_WORKERS workers on CPU sharing the cores.
 */
import { hostname } from 'node:os';
import { createLogger } from '@infermesh/log';
import { loadConfig, setting, z } from '@infermesh/config';
import { detectGpus, parseDeviceList, planSlots } from './devices.js';
import { Supervisor } from './supervisor.js';

const logger = createLogger('worker-supervisor');
try {
  const config = loadConfig({
    /** "auto" (nvidia-smi), "cpu", or a list such as "gpu0,gpu1". */
    WORKER_DEVICES: z.string().default('auto'),
    WORKER_CPU_WORKERS: setting.positiveInt(1),
    WORKER_GPU_EXECUTION_PROVIDERS: setting.list(['cuda', 'cpu']),
    WORKER_ID_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/).default(hostname().replace(/[^A-Za-z0-9_-]/g, '-')),
    WORKER_PORT: setting.port(0),
    /** A worker up this long counts as healthy: its next restart waits 1 s again instead of the doubled delay. */
    WORKER_RESTART_BACKOFF_RESET_MS: setting.positiveInt(30_000),
  });
  const listed = parseDeviceList(config.WORKER_DEVICES);
  const gpus = listed ?? (await detectGpus());
  const slots = planSlots(gpus, config.WORKER_CPU_WORKERS);
  logger.info({ devices: slots.map((s) => s.id), source: listed ? 'WORKER_DEVICES' : gpus.length ? 'nvidia-smi' : 'no GPU found' }, 'starting workers');
  const supervisor = new Supervisor({
    slots, idPrefix: config.WORKER_ID_PREFIX, gpuProviders: config.WORKER_GPU_EXECUTION_PROVIDERS, basePort: config.WORKER_PORT, logger,
    backoff: { resetAfterMs: config.WORKER_RESTART_BACKOFF_RESET_MS },
  });
  supervisor.start();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining workers');
    await supervisor.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
} catch (error) {
  logger.fatal({ err: error }, 'supervisor failed to start');
  process.exit(1);
}
