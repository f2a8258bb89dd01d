import { loadConfig, commonSettings, setting, z } from '@infermesh/config';
import { FEEDBACK_DUPLICATE_WINDOW_MS } from '@infermesh/bus';

export function monitorConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(
    {
      ...commonSettings,
      MONITOR_HOST: setting.host('127.0.0.1'),
      /** gRPC: the Monitor service (GetModelStats), health and reflection. */
      MONITOR_PORT: setting.port(8004),
      /** HTTP: Prometheus scrapes /metrics here; /healthz for plain HTTP probes. */
      MONITOR_METRICS_PORT: setting.port(8002),
      /**
       * This monitor's key in the `<prefix>_snapshots` key-value bucket, where it saves its
       * counts with the stream sequence they cover. Each replica reads every record (no
       * shared consumer); replicas may share the key, since every snapshot is a state and
       * the sequence it covers, whichever replica wrote it.
       */
      MONITOR_SNAPSHOT_KEY: z.string().regex(/^[A-Za-z0-9_-]+$/, 'a key-value key (letters, digits, "_" and "-")').default('monitor'),
      /** How often the counts are saved (also on shutdown); after a crash, the records since are read again from the stream. */
      MONITOR_SNAPSHOT_INTERVAL_MS: setting.positiveInt(5000),
      /**
       * Before reading the stream, listen this long for worker heartbeats (sent every
       * second), so records of models announced since the snapshot count under their names.
       */
      MONITOR_HEARTBEAT_WAIT_MS: z.coerce.number().int().min(0).default(2500),
      /** Model versions taken as labels (and series kept) at most; the rest count under `_unknown`. */
      MONITOR_MAX_SERIES: setting.positiveInt(500),
      /** Client ids (API key ids) counted apart at most, and (client, model) pairs; the rest count under `_other`. */
      MONITOR_MAX_CLIENTS: setting.positiveInt(1000),
      MONITOR_MAX_CLIENT_SERIES: setting.positiveInt(10_000),
      /** Data drift is measured over the inputs of the records stamped within this long (in 5 s buckets; longer ones past 10 minutes, 120 per window). */
      MONITOR_DRIFT_WINDOW_MS: z.coerce.number().int().min(5000).max(24 * 3600 * 1000).default(60_000),
      /** Inputs the drift window needs before its PSI counts (GetDrift enough_inputs, the PSI gauge, drift alerts). */
      MONITOR_DRIFT_MIN_INPUTS: setting.positiveInt(50),
      /**
       * How long predictions are kept for feedback (the max age of the `<prefix>_predictions`
       * bucket when the monitor creates it; an existing bucket keeps its own, logged). Feedback
       * for a UUIDv7 request id older than this counts as expired. At most the FEEDBACK stream's
       * duplicate window (24 h): within it the stream refuses a second label for a request, past
       * it nothing would, and a prediction kept longer could be labelled, and counted, twice.
       */
      MONITOR_FEEDBACK_RETENTION_MS: z.coerce.number().int().min(1000)
        .max(FEEDBACK_DUPLICATE_WINDOW_MS, `at most ${FEEDBACK_DUPLICATE_WINDOW_MS} (24 h, the FEEDBACK stream's duplicate window: kept longer, a prediction could be labelled twice)`)
        .default(FEEDBACK_DUPLICATE_WINDOW_MS),
      /**
       * The models whose predictions are kept for feedback: `*` (every model with a classifier
       * output) or a comma-separated list. Each kept prediction is one JetStream write (about
       * 0.1 ms of CPU between the monitor and NATS, and its bytes on disk for the retention):
       * name the models that get feedback on a busy mesh. Feedback for another model counts as
       * unknown.
       */
      MONITOR_FEEDBACK_MODELS: z.string().default('*').transform((value, ctx) => {
        const names = value.split(',').map((name) => name.trim()).filter(Boolean);
        if (names.length === 0) {
          ctx.addIssue({ code: 'custom', message: '`*` or a comma-separated list of model names' });
          return z.NEVER;
        }
        return names.includes('*') ? undefined : new Set(names);
      }),
      /**
       * How long feedback whose prediction is not kept yet waits for it (records reach the
       * monitor after the answer: routers batch them, and spool them while NATS is down),
       * counted from when the router took the feedback. Later feedback waits behind it.
       */
      MONITOR_FEEDBACK_GRACE_MS: z.coerce.number().int().min(0).max(3600 * 1000).default(30_000),
      /** Labelled inputs the recent accuracy is taken over (GetAccuracy recent_accuracy, accuracy alerts). */
      MONITOR_ACCURACY_WINDOW: z.coerce.number().int().min(1).max(100_000).default(1000),
      /** Browsers following the status page live (Server-Sent Events) at once; more are answered 503 and poll instead. */
      MONITOR_STATUS_MAX_CLIENTS: setting.positiveInt(100),
      /** The alert rules (YAML, see deploy/alerts/rules.example.yaml), checked at start: a wrong rule stops the monitor. Unset: no alerts. */
      MONITOR_ALERT_RULES_FILE: z.string().min(1).optional(),
      /** How often the alert rules are evaluated. */
      MONITOR_ALERT_INTERVAL_MS: setting.positiveInt(1000),
      /** Each alert transition is POSTed here in Alertmanager's v2 shape (e.g. http://alertmanager:9093/api/v2/alerts). Unset: none. */
      MONITOR_ALERT_WEBHOOK_URL: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).optional(),
      MONITOR_ALERT_WEBHOOK_TIMEOUT_MS: setting.positiveInt(5000),
      /** The generatorURL of webhook alerts, where a person reads more (default: the status page, http://MONITOR_HOST:MONITOR_METRICS_PORT/status). */
      MONITOR_ALERT_GENERATOR_URL: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).optional(),
    },
    env,
  );
}

export type MonitorConfig = ReturnType<typeof monitorConfig>;
