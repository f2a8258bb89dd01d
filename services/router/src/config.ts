import { loadConfig, commonSettings, setting } from '@infermesh/config';

export function routerConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(
    {
      ...commonSettings,
      ROUTER_HOST: setting.host('0.0.0.0'),
      /** Where Triton's gRPC clients look by default. */
      ROUTER_PORT: setting.port(8001),
      /** Upper bound for a request without a client deadline. */
      ROUTER_REQUEST_TIMEOUT_MS: setting.positiveInt(30_000),
      /** A worker silent for this long leaves the routing table (heartbeats come every second). */
      WORKER_STALE_MS: setting.positiveInt(2500),
      /** Attempts per batch of requests on distinct workers when a worker is unreachable. */
      ROUTER_MAX_ATTEMPTS: setting.positiveInt(3),
      /** Prediction records waiting for JetStream when it is unreachable; beyond this the oldest are dropped (and logged). */
      ROUTER_RECORD_BUFFER: setting.positiveInt(10_000),
    },
    env,
  );
}

export type RouterConfig = ReturnType<typeof routerConfig>;
