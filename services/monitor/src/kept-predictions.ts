/**
 * The predictions feedback can be joined with: for each counted record of a successful
 * request with a request id and predicted labels, its model, version and labels, in the
 * key-value bucket `keptPredictionsBucket(prefix)` for MONITOR_FEEDBACK_RETENTION_MS.
 *
 * Why a bucket and not memory: feedback comes hours later, the monitor restarts in
 * between, and a day of predictions does not fit a snapshot. The bucket's max age is the
 * retention, so JetStream forgets them on its own.
 *
 * The key is the hex SHA-256 of client id, model and request id joined by NUL, the digest
 * the router gives a Feedback as its msgId: both come from clients (any characters, any
 * length), so they are never used raw as keys, and a client reaches only its own
 * predictions. The bucket is laid out as JetStream key-value buckets are (stream
 * `KV_<bucket>`, subjects `$KV.<bucket>.<key>`, one message per key), like the snapshots.
 *
 * Request ids come from clients too, and many send the same one every time ("1"): a key
 * is created only when absent, never overwritten. Found holding the same prediction (same
 * version, labels and record time: the record read again after a restart, or by another
 * replica), nothing changes. Found holding another, the request id is ambiguous: the key
 * gets a tombstone (a KeptPrediction without predicted labels; a kept one always has some),
 * put again on each further reuse so it outlives the last prediction made with the id, and
 * feedback for it counts as `ambiguous` instead of joining whichever prediction came last.
 *
 * Puts are asynchronous; `settled()` says when every put started so far is done, so a
 * snapshot never covers a record whose prediction is not stored yet (after a crash the
 * records after the snapshot are read again and kept again: a replay changes nothing). At
 * most `maxInFlight` puts are in flight (plus one message's worth); `room()` holds the reader back.
 */
import { createHash } from 'node:crypto';
import { events, expiringBucket, keptPredictionsBucket, type Bus } from '@infermesh/bus';
import type { KeptPrediction__Output, PredictionRecord__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import { MAX_LABEL_LENGTH } from './known-models.js';
import { PrometheusText } from './prometheus-text.js';
import { recordTime } from './record-checks.js';

/** Predicted labels kept per record at most (a KeptPrediction stays well under NATS max_payload). */
export const MAX_KEPT_LABELS = 4096;
const PUT_ATTEMPTS = 5;

/** The bucket key of a prediction: hex SHA-256 of client id, model and request id joined by NUL. */
export function keptPredictionKey(clientId: string, model: string, requestId: string): string {
  return createHash('sha256').update(`${clientId}\u0000${model}\u0000${requestId}`).digest('hex');
}

/** What a key holds when its request id named more than one prediction (see above). */
export const AMBIGUOUS = 'ambiguous';

/** stored: a new key; replayed: the same prediction was there; ambiguous: another one was (or the key was ambiguous already). */
export type KeepOutcome = 'stored' | 'replayed' | 'ambiguous' | 'failed' | 'too_large';
const KEEP_OUTCOMES: readonly KeepOutcome[] = ['stored', 'replayed', 'ambiguous', 'failed', 'too_large'];

type Kept = KeptPrediction__Output;

/** The same prediction as a record read again gives it: the key already names client, model and request id. */
function samePrediction(a: Kept, b: Kept): boolean {
  return a.version === b.version && String(a.timestampMs) === String(b.timestampMs)
    && a.predictedLabels.length === b.predictedLabels.length && a.predictedLabels.every((label, i) => label === b.predictedLabels[i]);
}

export interface KeptPredictions {
  /** How long predictions are kept: the bucket's max age (an existing bucket's, when it differs from the setting). */
  readonly retentionMs: number;
  /** Starts storing the record's prediction when it is one feedback can label; whether it did. */
  keep(record: PredictionRecord__Output): boolean;
  /** Undefined while fewer than maxInFlight puts are in flight; else resolves once there are. */
  room(): Promise<void> | undefined;
  /** Resolves once every put started before the call has finished (stored or given up). */
  settled(): Promise<void>;
  /**
   * The kept prediction under `key`; AMBIGUOUS when its request id named more than one;
   * undefined when none (never kept, or older than the retention). Throws when NATS cannot answer.
   */
  get(key: string): Promise<KeptPrediction__Output | typeof AMBIGUOUS | undefined>;
  prometheus(): string;
}

export interface KeptPredictionsOptions {
  bus: Bus;
  retentionMs: number;
  logger: Logger;
  maxInFlight?: number;
  /**
   * The models whose predictions are kept (MONITOR_FEEDBACK_MODELS); undefined: every model.
   * Each kept prediction is a write to JetStream, so a busy model that never gets feedback
   * should not pay for one.
   */
  models?: ReadonlySet<string>;
  /** Wait before the n-th retry of a failed put (tests shorten it). */
  retryDelayMs?: (attempt: number) => number;
  now?: () => number;
}

export async function openKeptPredictions({ bus, retentionMs, logger, maxInFlight = 512, models, retryDelayMs = (n) => 250 * 2 ** n, now = Date.now }: KeptPredictionsOptions): Promise<KeptPredictions> {
  const bucket = await expiringBucket(bus, keptPredictionsBucket(bus.prefix), { maxAgeMs: retentionMs });
  // 0 is "no limit": predictions stay, and feedback is still called expired after the setting.
  const effectiveRetentionMs = bucket.maxAgeMs > 0 ? bucket.maxAgeMs : retentionMs;
  if (bucket.maxAgeMs !== retentionMs) {
    logger.warn({ bucket: bucket.bucket, bucket_max_age_ms: bucket.maxAgeMs, retention_ms: retentionMs }, 'the kept predictions bucket exists with another max age; keeping predictions as long as it says');
  }
  const pending = new Set<Promise<void>>();
  const outcomes: Record<KeepOutcome, number> = { stored: 0, replayed: 0, ambiguous: 0, failed: 0, too_large: 0 };
  let waiters: (() => void)[] = [];
  let failingSince = 0;

  /** Creates the key, or finds it taken: by the same prediction (a replay), else the request id is ambiguous. */
  async function store(key: string, prediction: Kept): Promise<'stored' | 'replayed' | 'ambiguous'> {
    if (await bucket.create(key, events.keptPrediction.encode(prediction))) return 'stored';
    const there = await bucket.get(key);
    // Expired between the create and the get: try again (a failure is retried by the caller).
    if (!there) throw new Error('a kept prediction expired while it was compared');
    const held = events.keptPrediction.decode(there);
    if (held.predictedLabels.length > 0 && samePrediction(held, prediction)) return 'replayed';
    // Put on each reuse, even over a tombstone: it expires a retention after the last prediction made with the id.
    await bucket.put(key, events.keptPrediction.encode({ model: prediction.model, timestampMs: prediction.timestampMs }));
    return 'ambiguous';
  }

  async function keepOne(key: string, prediction: Kept): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        outcomes[await store(key, prediction)] += 1;
        if (failingSince) logger.info({ failed_for_ms: now() - failingSince }, 'storing kept predictions works again');
        failingSince = 0;
        return;
      } catch (error) {
        if (attempt >= PUT_ATTEMPTS) {
          outcomes.failed += 1;
          // Feedback for it will count as unknown; one line per outage, not per record.
          if (!failingSince) logger.warn({ err: error, attempts: attempt }, 'storing a kept prediction failed; its feedback will count as unknown');
          failingSince ||= now();
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(attempt)));
      }
    }
  }

  return {
    retentionMs: effectiveRetentionMs,
    keep(record) {
      if (record.statusCode !== Status.OK || !record.requestId || !record.model || record.predictedLabels.length === 0) return false;
      if (models && !models.has(record.model)) return false;
      const atMs = recordTime(record, now());
      // Older than the retention already (a first start reading days of records): feedback for it counts as expired anyway.
      if (atMs < now() - effectiveRetentionMs) return false;
      if (record.predictedLabels.length > MAX_KEPT_LABELS || record.predictedLabels.some((l) => l.length > MAX_LABEL_LENGTH)) {
        outcomes.too_large += 1;
        return false;
      }
      // The record's own time, not atMs: a record stamped ahead of this monitor's clock must compare equal when read again.
      const prediction: Kept = { model: record.model, version: record.version, predictedLabels: record.predictedLabels, timestampMs: record.timestampMs };
      const done: Promise<void> = keepOne(keptPredictionKey(record.clientId, record.model, record.requestId), prediction).finally(() => {
        pending.delete(done);
        if (pending.size < maxInFlight && waiters.length > 0) {
          const woken = waiters;
          waiters = [];
          for (const wake of woken) wake();
        }
      });
      pending.add(done);
      return true;
    },
    room() {
      if (pending.size < maxInFlight) return undefined;
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
    async settled() {
      await Promise.all([...pending]);
    },
    async get(key) {
      const stored = await bucket.get(key);
      if (!stored) return undefined;
      const kept = events.keptPrediction.decode(stored);
      return kept.predictedLabels.length === 0 ? AMBIGUOUS : kept;
    },
    prometheus() {
      const out = new PrometheusText();
      out.family('infermesh_monitor_kept_predictions_total', 'counter', 'Predictions kept for feedback to join (since this monitor started): stored, replayed (the same prediction was kept already), ambiguous (its client used the request id for another prediction), failed (NATS refused them), too_large (too many or too long labels).');
      for (const outcome of KEEP_OUTCOMES) out.sample('infermesh_monitor_kept_predictions_total', [['outcome', outcome]], outcomes[outcome]);
      out.family('infermesh_monitor_kept_predictions_in_flight', 'gauge', 'Kept predictions being stored now.');
      out.sample('infermesh_monitor_kept_predictions_in_flight', [], pending.size);
      return out.toString();
    },
  };
}
