/**
 * The latest snapshot of a service's state, kept in a JetStream key-value bucket
 * (`<prefix>_snapshots`, one key per owner). A service that rebuilds its state from a
 * stream saves its state with the stream sequence it covers, and after a restart loads it
 * and reads on from the next sequence.
 *
 * The bucket is laid out as JetStream's key-value buckets are (stream `KV_<bucket>`,
 * subjects `$KV.<bucket>.<key>`, one message kept per subject), so `nats kv get` reads it,
 * and a NATS user allowed `$KV.>` may write it; the KV client package is not needed for
 * one get and one put.
 */
import { DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { Bus } from './bus.js';
import { token } from './subjects.js';
import { streamReplicas } from './replicas.js';

export interface SnapshotStore {
  /** The latest snapshot saved under this owner; undefined when none was. */
  load(): Promise<Uint8Array | undefined>;
  /** Replaces the snapshot once the server has stored the new one. */
  save(data: Uint8Array): Promise<void>;
  /** The largest snapshot the server takes in one message (its max_payload); undefined before the server said. */
  readonly maxBytes: number | undefined;
}

/** A snapshot larger than the server takes in one message (NATS max_payload). */
export class SnapshotTooLargeError extends Error {
  override readonly name = 'SnapshotTooLargeError';
  constructor(
    readonly bytes: number,
    readonly maxPayload: number,
  ) {
    super(`a snapshot of ${bytes} bytes is larger than the server's max_payload of ${maxPayload} bytes`);
  }
}

/** The key-value bucket of the mesh under `prefix`: infermesh_snapshots for the default prefix. */
export function snapshotBucket(prefix: string): string {
  return `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_snapshots`;
}

export function snapshotSubject(prefix: string, owner: string): string {
  return `$KV.${snapshotBucket(prefix)}.${token(owner).replace(/[^-/=\w]/g, '_')}`;
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}

async function ensureSnapshotStream(jsm: JetStreamManager, prefix: string): Promise<string> {
  const bucket = snapshotBucket(prefix);
  const name = `KV_${bucket}`;
  const replicas = streamReplicas();
  try {
    await jsm.streams.info(name);
    return name;
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
  }
  try {
    await jsm.streams.add({
      name,
      subjects: [`$KV.${bucket}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      // Only the newest snapshot of each owner matters; an older one is replaced, never appended.
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.New,
      allow_rollup_hdrs: true,
      deny_delete: true,
      num_replicas: replicas,
    });
  } catch (error) {
    // Another process created it between our look-up and add.
    await jsm.streams.info(name).catch(() => {
      throw error;
    });
  }
  return name;
}

/** The snapshot store of `owner` (a service instance's own name), creating the stream when missing. */
export async function snapshotStore(bus: Bus, owner: string): Promise<SnapshotStore> {
  const jsm = await bus.js.jetstreamManager();
  const stream = await ensureSnapshotStream(jsm, bus.prefix);
  const subject = snapshotSubject(bus.prefix, owner);
  return {
    get maxBytes() {
      return bus.nc.info?.max_payload;
    },
    async load() {
      const stored = await jsm.streams.getMessage(stream, { last_by_subj: subject });
      return stored ? stored.data : undefined;
    },
    async save(data) {
      const maxPayload = bus.nc.info?.max_payload;
      if (maxPayload !== undefined && data.length > maxPayload) throw new SnapshotTooLargeError(data.length, maxPayload);
      await bus.js.publish(subject, data);
    },
  };
}
