import { loadConfig, commonSettings, setting, z } from '@infermesh/config';

export function monitorConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(
    {
      ...commonSettings,
      MONITOR_HOST: setting.host('0.0.0.0'),
      /** gRPC: the Monitor service (GetModelStats), health and reflection. */
      MONITOR_PORT: setting.port(8004),
      /** HTTP: Prometheus scrapes /metrics here; /healthz for plain HTTP probes. */
      MONITOR_METRICS_PORT: setting.port(8002),
      /**
       * JetStream durable consumer name. Replicas sharing one name split the records
       * between them (each would see part of the traffic), so give each replica its own.
       */
      MONITOR_DURABLE: z.string().regex(/^[A-Za-z0-9_-]+$/, 'a JetStream consumer name (letters, digits, "_" and "-")').default('monitor'),
    },
    env,
  );
}

export type MonitorConfig = ReturnType<typeof monitorConfig>;
