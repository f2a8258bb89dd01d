/**
 * A JetStream key-value bucket whose entries expire: one value per key, forgotten by the
 * server `maxAgeMs` after it was put. Laid out as JetStream's key-value buckets are (stream
 * `KV_<bucket>`, subjects `$KV.<bucket>.<key>`, one message kept per subject), like the
 * snapshot store, so `nats kv get` reads it and a user allowed `$KV.>` may write it.
 */
import { DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Bus } from './bus.js';
import { streamReplicas } from './replicas.js';

export interface ExpiringBucket {
  readonly bucket: string;
  /** How long the server keeps a value: the bucket's max age (an existing bucket's own; 0 = for ever). */
  readonly maxAgeMs: number;
  /** The value under `key`, or undefined when none (never put, or expired). Keys are `[-/_=.A-Za-z0-9]+`. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Resolves once the server has stored it. */
  put(key: string, value: Uint8Array): Promise<void>;
  /**
   * Stores `value` only when `key` holds none (never put, or expired): true once stored,
   * false when a value is there (left as it is). Atomic on the server: of two creates of
   * one key, one wins.
   */
  create(key: string, value: Uint8Array): Promise<boolean>;
}

/** JetStream's key-value buckets remember a message id two minutes, never longer than their max age. */
const DUPLICATE_WINDOW_MS = 120_000;

function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}

/** The server refused a publish that expected the subject to hold no message (it holds one). */
function isWrongLastSequence(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence;
}

/**
 * Opens `bucket`, creating it with `maxAgeMs` when missing. An existing bucket keeps its
 * own max age (changing it would expire or keep other services' values): `maxAgeMs` of the
 * answer says which one holds.
 */
export async function expiringBucket(bus: Bus, bucket: string, { maxAgeMs }: { maxAgeMs: number }): Promise<ExpiringBucket> {
  const replicas = streamReplicas();
  const jsm = await bus.js.jetstreamManager();
  const stream = `KV_${bucket}`;
  const existingMaxAge = async () => (await jsm.streams.info(stream)).config.max_age / 1e6;
  let held: number;
  try {
    held = await existingMaxAge();
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    try {
      await jsm.streams.add({
        name: stream,
        subjects: [`$KV.${bucket}.>`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_msgs_per_subject: 1,
        max_age: nanos(maxAgeMs),
        duplicate_window: nanos(Math.min(DUPLICATE_WINDOW_MS, maxAgeMs)),
        discard: DiscardPolicy.New,
        allow_rollup_hdrs: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
      });
      held = maxAgeMs;
    } catch (addError) {
      // Another process created it between our look-up and add.
      held = await existingMaxAge().catch(() => {
        throw addError;
      });
    }
  }
  const subject = (key: string) => `$KV.${bucket}.${key}`;
  return {
    bucket,
    maxAgeMs: held,
    async get(key) {
      const stored = await jsm.streams.getMessage(stream, { last_by_subj: subject(key) });
      return stored ? stored.data : undefined;
    },
    async put(key, value) {
      await bus.js.publish(subject(key), value);
    },
    async create(key, value) {
      try {
        // Last sequence 0 for the subject: it holds no message (an expired one no longer counts).
        await bus.js.publish(subject(key), value, { expect: { lastSubjectSequence: 0 } });
        return true;
      } catch (error) {
        if (isWrongLastSequence(error)) return false;
        throw error;
      }
    },
  };
}
