/**
 * Environment configuration, validated once at start-up with zod: a service with a bad
 * setting stops at once and says which variable is wrong and why.
 */
import { z } from 'zod';

export { z };

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n  ${issues.join('\n  ')}`);
  }
}

/** Parses `env` with a schema whose keys are variable names. */
export function loadConfig<T extends z.ZodRawShape>(shape: T, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<T>> {
  const present = Object.fromEntries(Object.keys(shape).flatMap((key) => (env[key] === undefined || env[key] === '' ? [] : [[key, env[key]]])));
  const result = z.object(shape).safeParse(present);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message} (got ${JSON.stringify(present[String(issue.path[0])])})`));
  }
  return result.data;
}

/** Building blocks for the services' schemas. */
export const setting = {
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  host: (fallback: string) => z.string().min(1).default(fallback),
  positiveInt: (fallback: number) => z.coerce.number().int().positive().default(fallback),
  natsUrl: () => z.string().min(1).default('nats://127.0.0.1:4222'),
  subjectPrefix: () => z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'a NATS subject token like "infermesh"').default('infermesh'),
  maxMessageBytes: () => z.coerce.number().int().min(1024).default(64 * 1024 * 1024),
  list: (fallback: string[]) =>
    z.string().transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean)).default(fallback),
};

/** Settings every service shares. */
export const commonSettings = {
  NATS_URL: setting.natsUrl(),
  NATS_SUBJECT_PREFIX: setting.subjectPrefix(),
  GRPC_MAX_MESSAGE_BYTES: setting.maxMessageBytes(),
  /** Per HTTP/2 connection of a gRPC server: calls open at once, idle time before GOAWAY, time to send the preface (libs/grpc http2-limits.ts). */
  GRPC_MAX_CONCURRENT_STREAMS: setting.positiveInt(256),
  GRPC_IDLE_TIMEOUT_MS: setting.positiveInt(300_000),
  GRPC_HANDSHAKE_TIMEOUT_MS: setting.positiveInt(10_000),
  /** Where kubelet's gRPC probes reach grpc.health.v1 in plaintext when the service port runs TLS (unset: no such port). */
  GRPC_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** Mutual TLS between the mesh's services: the mesh CA, and this service's certificate and key (all three, or none for plaintext on loopback). */
  MESH_TLS_CA_FILE: z.string().min(1).optional(),
  MESH_TLS_CERT_FILE: z.string().min(1).optional(),
  MESH_TLS_KEY_FILE: z.string().min(1).optional(),
  /** NATS credentials: a user and the file holding its password (never the password itself in the environment), or a .creds file. */
  NATS_USER: z.string().min(1).optional(),
  NATS_PASSWORD_FILE: z.string().min(1).optional(),
  NATS_CREDS_FILE: z.string().min(1).optional(),
  /** The CA that signed the NATS server's certificate: the connection then requires TLS. */
  NATS_TLS_CA_FILE: z.string().min(1).optional(),
};
