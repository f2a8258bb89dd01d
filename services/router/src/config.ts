import { loadConfig, commonSettings, setting, z } from '@infermesh/config';

export function routerConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(
    {
      ...commonSettings,
      ROUTER_HOST: setting.host('127.0.0.1'),
      /** Where Triton's gRPC clients look by default. */
      ROUTER_PORT: setting.port(8001),
      /** KServe v2 REST (HTTP/1.1) beside gRPC, where Triton's HTTP clients look by default; 0 binds a free port. */
      ROUTER_HTTP_PORT: setting.port(8000),
      /** The REST endpoint's host; ROUTER_HOST when unset. */
      ROUTER_HTTP_HOST: z.string().min(1).optional(),
      /** TLS on the public endpoint: certificate and key (PEM); with a client CA, clients must present a certificate it signed. */
      ROUTER_TLS_CERT_FILE: z.string().min(1).optional(),
      ROUTER_TLS_KEY_FILE: z.string().min(1).optional(),
      ROUTER_TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
      /** Upper bound for a request without a client deadline. */
      ROUTER_REQUEST_TIMEOUT_MS: setting.positiveInt(30_000),
      /** How long RepositoryModelLoad / RepositoryModelUnload wait for each worker to load (or drain) and answer. */
      ROUTER_CONTROL_TIMEOUT_MS: setting.positiveInt(120_000),
      /** A worker silent for this long leaves the routing table (heartbeats come every second). */
      WORKER_STALE_MS: setting.positiveInt(2500),
      /** Attempts per batch of requests on distinct workers when a worker is unreachable. */
      ROUTER_MAX_ATTEMPTS: setting.positiveInt(3),
      /**
       * After a start the routing table counts as filled this long after subscribing to heartbeats
       * (one heartbeat period plus a margin), or sooner once a worker is heard from twice; until
       * then health says NOT_SERVING and requests for models not yet seen get UNAVAILABLE.
       */
      ROUTER_TABLE_FILL_MS: setting.positiveInt(1500),
      /** While NATS is down each known worker is checked with gRPC health this often (a failed check removes it). */
      ROUTER_WORKER_CHECK_MS: setting.positiveInt(1000),
      /** On SIGTERM, calls in flight get this long to finish before they are cut; shutdown ends as soon as they have. */
      ROUTER_SHUTDOWN_GRACE_MS: setting.positiveInt(10_000),
      /** Prediction records waiting in memory for JetStream; beyond this the oldest batches go to the record spool. */
      ROUTER_RECORD_BUFFER: setting.positiveInt(10_000),
      /**
       * The API keys file (YAML or JSON; docs/architecture.md "API keys"). Unset: every call is
       * served without a key, and the router says so at start. Set: every call but ServerLive
       * and ServerReady needs a key from it; SIGHUP reads it again.
       */
      ROUTER_API_KEYS_FILE: z.string().min(1).optional(),
      /**
       * Where prediction records wait while JetStream is unreachable, and across a restart. Unset: a
       * folder per port under the OS temp folder (writable where the root filesystem is not).
       */
      ROUTER_RECORD_SPOOL_DIR: z.string().min(1).optional(),
      /** The record spool's bound; beyond it records are dropped and counted in the log ("prediction records dropped"). */
      ROUTER_RECORD_SPOOL_MAX_BYTES: setting.positiveInt(256 * 1024 * 1024),
      /**
       * host:port of a preprocessor, for the glue steps of the pipelines the router executes
       * (OcrCrop). Unset: pipelines with glue steps answer UNAVAILABLE, saying so.
       */
      PREPROCESSOR_ADDRESS: z.string().min(1).optional(),
    },
    env,
  );
}

export type RouterConfig = ReturnType<typeof routerConfig>;
