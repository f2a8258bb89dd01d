/**
 * The traffic policies of the mesh (TrafficPolicy, traffic.proto): one per model, in the
 * JetStream key-value bucket `<prefix>_traffic`, laid out as JetStream's key-value buckets
 * are (stream `KV_<prefix>_traffic`, subjects `$KV.<prefix>_traffic.<model>`), so
 * `nats kv get|history|watch` read it. The bucket keeps the last HISTORY policies of each
 * model: its stream is the record of every change (who asked, when, why).
 *
 * Routers watch it (an ordered consumer delivering the last policy of each model, then each
 * new one: what `nats kv watch` does), so every router applies the same policy, and a router
 * started later reads the current ones first. Operators (the CLI) put policies.
 */
import { DeliverPolicy, DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { TrafficPolicy, TrafficPolicy__Output } from '@infermesh/contracts';
import type { Bus } from './bus.js';
import { events } from './events.js';
import { trafficBucket } from './subjects.js';
import { streamReplicas } from './replicas.js';

/** Policies kept per model: JetStream key-value's own maximum history. */
export const TRAFFIC_HISTORY = 64;
/** See replay.ts: how long one pull of the watch lives before it is renewed. */
const PULL_EXPIRES_MS = 3_000;

/** A model name as a key: key-value keys are `[-/_=.A-Za-z0-9]+`; other characters become '_'. */
export function trafficKey(model: string): string {
  return model.replace(/[^-/_=A-Za-z0-9]/g, '_') || '_';
}

export interface TrafficPolicyWatch {
  /** Resolves once the policies stored when the watch began are delivered. */
  readonly current: Promise<void>;
  stop(): Promise<void>;
}

export interface TrafficPolicies {
  readonly bucket: string;
  /** The model's current policy; undefined when none was ever set. */
  get(model: string): Promise<TrafficPolicy__Output | undefined>;
  /** Stores it (the change every router then applies); resolves once the server has it. */
  put(policy: TrafficPolicy): Promise<void>;
  /** The model's current policy with its revision (the stream sequence; 0 when none was ever set), for `replace`. */
  read(model: string): Promise<{ policy?: TrafficPolicy__Output; revision: number }>;
  /**
   * Stores it only if the model's policy is still the one at `revision`; false (nothing
   * stored) when someone changed it since. For a change decided from the current policy
   * (an automatic rollback), so an operator's change in between is never overwritten.
   */
  replace(policy: TrafficPolicy, revision: number): Promise<boolean>;
  /**
   * Calls `apply` with the current policy of each model, then with each new one, in the
   * order they were stored; `undecodable` for a value that is not a TrafficPolicy.
   */
  watch(apply: (policy: TrafficPolicy__Output) => void, undecodable: (subject: string, error: unknown) => void): Promise<TrafficPolicyWatch>;
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}

/** Opens the bucket, creating it when missing (routers and operators may both create it). */
export async function trafficPolicies(bus: Bus): Promise<TrafficPolicies> {
  const bucket = trafficBucket(bus.prefix);
  const stream = `KV_${bucket}`;
  const replicas = streamReplicas();
  const jsm = await bus.js.jetstreamManager();
  try {
    await jsm.streams.info(stream);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    await jsm.streams
      .add({
        name: stream,
        subjects: [`$KV.${bucket}.>`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_msgs_per_subject: TRAFFIC_HISTORY,
        discard: DiscardPolicy.New,
        allow_rollup_hdrs: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
      })
      // Another process created it between our look-up and add.
      .catch(async (addError: unknown) => jsm.streams.info(stream).catch(() => Promise.reject(addError)));
  }
  const subject = (model: string) => `$KV.${bucket}.${trafficKey(model)}`;
  return {
    bucket,
    async get(model) {
      const stored = await jsm.streams.getMessage(stream, { last_by_subj: subject(model) });
      return stored ? events.trafficPolicy.decode(stored.data) : undefined;
    },
    async put(policy) {
      await bus.js.publish(subject(policy.model ?? ''), events.trafficPolicy.encode(policy));
    },
    async read(model) {
      const stored = await jsm.streams.getMessage(stream, { last_by_subj: subject(model) });
      return stored ? { policy: events.trafficPolicy.decode(stored.data), revision: stored.seq } : { revision: 0 };
    },
    async replace(policy, revision) {
      try {
        await bus.js.publish(subject(policy.model ?? ''), events.trafficPolicy.encode(policy), { expect: { lastSubjectSequence: revision } });
        return true;
      } catch (error) {
        if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence) return false;
        throw error;
      }
    },
    async watch(apply, undecodable) {
      const consumer = await bus.js.consumers.get(stream, { deliver_policy: DeliverPolicy.LastPerSubject });
      const messages = await consumer.consume({ max_messages: 64, expires: PULL_EXPIRES_MS });
      let markCurrent: () => void = () => undefined;
      const current = new Promise<void>((resolve) => (markCurrent = resolve));
      const done = (async () => {
        for await (const msg of messages) {
          try {
            apply(events.trafficPolicy.decode(msg.data));
          } catch (error) {
            undecodable(msg.subject, error);
          }
          // Pending 0: every policy stored when the watch began (the last of each model) is delivered.
          if (msg.info.pending === 0) markCurrent();
        }
      })();
      // An empty bucket delivers nothing to say so.
      const info = await jsm.streams.info(stream);
      if (info.state.messages === 0) markCurrent();
      return {
        current,
        async stop() {
          markCurrent();
          await messages.close();
          await done.catch(() => undefined);
        },
      };
    },
  };
}
