import { hostname } from 'node:os';
import { loadConfig, commonSettings, setting, z } from '@infermesh/config';

export function workerConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(
    {
      ...commonSettings,
      WORKER_HOST: setting.host('127.0.0.1'),
      WORKER_PORT: setting.port(0),
      /** The host others reach this worker at (its pod IP in Kubernetes). */
      WORKER_ADVERTISE_HOST: setting.host('127.0.0.1'),
      WORKER_ID: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "-" and "_"').default(`${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`),
      MODEL_REPOSITORY: z.string().min(1).default('models'),
      /** The preprocessor that turns images into pixels for this worker's models. */
      PREPROCESSOR_ADDRESS: setting.host('127.0.0.1:8003'),
      /** Only these models (comma separated); all when unset. */
      WORKER_MODELS: setting.list([]),
      /** "cpu", or "gpu<N>" for a worker pinned to GPU N. */
      WORKER_DEVICE: z.string().regex(/^(cpu|gpu\d+)$/, '"cpu" or "gpu<N>"').default('cpu'),
      /** Overrides the models' execution_providers, e.g. "cuda,cpu". */
      WORKER_EXECUTION_PROVIDERS: z
        .string()
        .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
        .pipe(z.array(z.enum(['cuda', 'webgpu', 'cpu'])))
        .optional(),
      WORKER_INTRA_OP_THREADS: z.coerce.number().int().positive().optional(),
      /**
       * Where each model version's onnxruntime session runs. "auto" (default): in a worker thread
       * of its own for a model file over 1 MiB (an OCR recognition batch computes for seconds, and
       * the event loop must stay free for heartbeats, gRPC and other models), on the event loop
       * for smaller ones (a thread's message round trip costs a sub-millisecond model more than
       * its run: docs/performance.md). "1"/"true": every session in a thread; "0"/"false": none.
       */
      WORKER_SESSION_THREAD: z.enum(['auto', '1', 'true', '0', 'false']).default('auto').transform((v): boolean | 'auto' => (v === 'auto' ? 'auto' : v === '1' || v === 'true')),
      WORKER_HEARTBEAT_MS: setting.positiveInt(1000),
      WORKER_SHUTDOWN_GRACE_MS: setting.positiveInt(25_000),
      /** How often the model repository is read for new version directories and changed configs; 0: never (loads come from RepositoryModelLoad only). */
      WORKER_REPOSITORY_POLL_MS: z.coerce.number().int().min(0).default(5000),
      /**
       * How long a version being unloaded or replaced keeps answering after it is announced
       * UNLOADING (routers stop sending to it on that heartbeat; what they sent before still
       * arrives), before it waits for its requests in flight and is freed.
       */
      WORKER_UNLOAD_DELAY_MS: z.coerce.number().int().min(0).default(2000),
    },
    env,
  );
}

export type WorkerConfig = ReturnType<typeof workerConfig>;
