/**
 * Everything the monitor has counted, and the PREDICTIONS stream sequence it has counted
 * through: the unit the snapshot saves and a restart restores. Every record enters here,
 * is checked, gets bounded labels, and is counted in the model series and the client
 * usage, or counted as invalid. Beside them: the drift windows (from the records' bins),
 * and the accuracy from feedback with the FEEDBACK stream sequence it covers.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { PredictionRecord__Output, WorkerHeartbeat__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import { z } from '@infermesh/config';
import { KnownModels } from './known-models.js';
import { ModelMetrics, type ModelMetricsOptions } from './model-metrics.js';
import { ClientUsage } from './client-usage.js';
import { PrometheusText } from './prometheus-text.js';
import { checkRecord } from './record-checks.js';
import { DriftTracker, type LearnOutcome } from './drift.js';
import { AccuracyTracker, FEEDBACK_OUTCOMES } from './accuracy.js';
import { Timeline } from './timeline.js';
import { ShadowStats } from './shadow-stats.js';

/** `shadow`: a shadow's record (see shadow-stats.ts), counted in the shadow's figures only. */
export type RecordOutcome = 'counted' | 'invalid' | 'shadow';

/** Records not counted: `invalid` (a record a router cannot have written), `failed` (counting it threw). */
export type DropReason = 'invalid' | 'failed';

export interface MonitorStateOptions extends ModelMetricsOptions {
  maxClients?: number;
  maxClientSeries?: number;
  /** The drift window (MONITOR_DRIFT_WINDOW_MS) and the inputs it needs for a reading (MONITOR_DRIFT_MIN_INPUTS). */
  driftWindowMs?: number;
  driftMinInputs?: number;
  /** Labelled inputs the recent accuracy is taken over (MONITOR_ACCURACY_WINDOW). */
  accuracyWindow?: number;
}

/** What a heartbeat taught: model versions new to the monitor, and drift references taken or refused. */
export interface Announced {
  added: number;
  references: { model: string; version: string; profileId: string; outcome: LearnOutcome }[];
}

/** Where the counts stand in the stream: a snapshot covers the records of messages up to `sequence`. */
export interface StreamMark {
  sequence: number;
  /** The stream's creation time: a stream made again starts its sequences again. */
  streamCreated: string;
}

/** A snapshot unpacks to a few MB at the default bounds; a larger one is not ours (a gzip bomb in the bucket). */
const MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024;

const histogram = z.object({ counts: z.array(z.number().nonnegative()), sum: z.number() });
const samples = z.array(z.number());
const streamMark = z.object({ sequence: z.number().int().nonnegative(), streamCreated: z.string() });
const snapshotSchema = z.object({
  format: z.literal(1),
  savedAtMs: z.number(),
  mark: streamMark,
  known: z.array(z.tuple([z.string(), z.string()])),
  series: z.array(z.object({
    model: z.string(), version: z.string(), requests: z.number(), errors: z.number(), items: z.number(), lastRequestMs: z.number(),
    codes: z.record(z.string(), z.number()), duration: histogram, queue: histogram, compute: histogram, batch: histogram,
    windows: z.object({ latency: samples, queue: samples, compute: samples }).optional(),
  })),
  clients: z.array(z.object({ clientId: z.string(), model: z.string(), requests: z.number(), errors: z.number(), items: z.number() })),
  dropped: z.object({ invalid: z.number(), failed: z.number(), undecodable: z.number() }),
  // Added with drift and feedback: a snapshot saved before them has none, and loads with empty ones.
  feedbackMark: streamMark.optional(),
  drift: z.object({
    series: z.array(z.object({
      model: z.string(), version: z.string(), profileId: z.string(),
      features: z.array(z.object({ name: z.string(), expected: z.array(z.number()) })),
      buckets: z.array(z.object({ startMs: z.number(), inputs: z.number().nonnegative(), counts: z.array(z.number().int().nonnegative()) })),
    })),
    dropped: z.object({ no_reference: z.number(), profile_mismatch: z.number(), malformed: z.number() }),
  }).optional(),
  accuracy: z.object({
    classes: z.array(z.tuple([z.string(), z.string(), z.array(z.string())])),
    series: z.array(z.object({
      model: z.string(), version: z.string(), labelled: z.number().nonnegative(), correct: z.number().nonnegative(), recent: z.string().regex(/^[01]*$/),
      confusion: z.array(z.tuple([z.string(), z.string(), z.number().nonnegative()])),
      // Optional each: a snapshot saved before an outcome was added (ambiguous) has none of it.
      feedback: z.object(Object.fromEntries(FEEDBACK_OUTCOMES.map((o) => [o, z.number().nonnegative().optional()])) as Record<(typeof FEEDBACK_OUTCOMES)[number], z.ZodOptional<z.ZodNumber>>),
    })),
    dropped: z.object({ undecodable: z.number(), failed: z.number() }),
  }).optional(),
});

export class MonitorState {
  readonly known: KnownModels;
  readonly models: ModelMetrics;
  readonly clients: ClientUsage;
  /** The last hour in 5 s buckets, for alert windows and the status page; not in the snapshot (see timeline.ts). */
  readonly timeline: Timeline;
  /** Data drift per model version, from the records' bins against the references heartbeats announce. */
  readonly drift: DriftTracker;
  /** Accuracy per model version, from feedback joined with kept predictions. */
  readonly accuracy: AccuracyTracker;
  /** Shadow versions against the versions they shadow (not in the snapshot). */
  readonly shadows: ShadowStats;
  mark: StreamMark = { sequence: 0, streamCreated: '' };
  /** Where the accuracy stands in the FEEDBACK stream: it covers the feedback of messages up to `sequence`. */
  feedbackMark: StreamMark = { sequence: 0, streamCreated: '' };
  private readonly dropped = { invalid: 0, failed: 0, undecodable: 0 };
  private readonly now: () => number;

  constructor(options: MonitorStateOptions = {}) {
    this.now = options.now ?? Date.now;
    this.models = new ModelMetrics(options);
    this.known = new KnownModels(this.models.maxSeries);
    this.clients = new ClientUsage({ maxClients: options.maxClients, maxSeries: options.maxClientSeries });
    this.drift = new DriftTracker({ known: this.known, windowMs: options.driftWindowMs, minInputs: options.driftMinInputs, now: this.now });
    this.accuracy = new AccuracyTracker({ known: this.known, window: options.accuracyWindow });
    this.timeline = new Timeline({ maxSeries: this.models.maxSeries, now: this.now });
    this.shadows = new ShadowStats(this.known, this.now);
  }

  /** Learns the model versions of a heartbeat, and their drift references and class labels. */
  announce(heartbeat: Pick<WorkerHeartbeat__Output, 'models'>): Announced {
    const added = this.known.announce(heartbeat);
    const references: Announced['references'] = [];
    for (const m of heartbeat.models) {
      const outcome = this.drift.learn(m.name, m.version, m.driftReference ?? null);
      if (outcome !== 'same' && outcome !== 'none' && outcome !== 'not_known') references.push({ model: m.name, version: m.version, profileId: m.driftReference?.profileId ?? '', outcome });
      this.accuracy.learnClasses(m.name, m.version, m.classLabels ?? []);
    }
    return { added, references };
  }

  /** Counts one request once. */
  count(record: PredictionRecord__Output): RecordOutcome {
    const checked = checkRecord(record, this.now());
    if (!checked.valid) {
      this.dropped.invalid += 1;
      return 'invalid';
    }
    // Not a client request: not in the model's counts, usage, timeline or drift.
    if (record.shadowOfVersion) {
      this.shadows.record(record, checked.observation.latencyUs, checked.observation.atMs);
      return 'shadow';
    }
    const labels = this.known.labelsOf(record.model, record.version);
    this.models.record(labels, checked.observation);
    this.clients.record(record.clientId, labels.model, checked.observation.statusCode === Status.OK, checked.observation.items);
    this.timeline.observe(labels, checked.observation.atMs, checked.observation.latencyUs, checked.observation.statusCode === Status.OK, checked.observation.items);
    this.drift.observe(record, checked.observation.atMs);
    return 'counted';
  }

  /** Puts a record counted before the snapshot back into the percentile windows (see ModelMetrics.recall). */
  recall(record: PredictionRecord__Output): void {
    const checked = checkRecord(record, this.now());
    if (!checked.valid || record.shadowOfVersion) return;
    const labels = this.known.labelsOf(record.model, record.version);
    this.models.recall(labels, checked.observation);
    // The timeline is not in the snapshot: records read again to refill the windows refill it too.
    this.timeline.observe(labels, checked.observation.atMs, checked.observation.latencyUs, checked.observation.statusCode === Status.OK, checked.observation.items);
  }

  drop(reason: DropReason, records = 1): void {
    this.dropped[reason] += records;
  }

  /** A stream message that could not be decoded: its records are unknown, so messages are counted. */
  undecodable(): void {
    this.dropped.undecodable += 1;
  }

  droppedCounts(): Readonly<Record<DropReason | 'undecodable', number>> {
    return { ...this.dropped };
  }

  prometheus(): string {
    const out = new PrometheusText();
    this.models.writePrometheus(out);
    this.clients.writePrometheus(out);
    out.family('infermesh_monitor_records_dropped_total', 'counter', 'Prediction records not counted: invalid (absurd values, no model), or failed (counting them threw).');
    out.sample('infermesh_monitor_records_dropped_total', [['reason', 'invalid']], this.dropped.invalid);
    out.sample('infermesh_monitor_records_dropped_total', [['reason', 'failed']], this.dropped.failed);
    out.family('infermesh_monitor_messages_undecodable_total', 'counter', 'PREDICTIONS messages that were not a PredictionBatch (skipped).');
    out.sample('infermesh_monitor_messages_undecodable_total', [], this.dropped.undecodable);
    out.family('infermesh_monitor_stream_sequence', 'gauge', 'The PREDICTIONS stream sequence the counts cover.');
    out.sample('infermesh_monitor_stream_sequence', [], this.mark.sequence);
    out.family('infermesh_monitor_known_model_versions', 'gauge', 'Model versions announced in worker heartbeats (the labels the monitor accepts).');
    out.sample('infermesh_monitor_known_model_versions', [], this.known.size);
    this.drift.writePrometheus(out);
    this.accuracy.writePrometheus(out);
    this.shadows.writePrometheus(out);
    out.family('infermesh_monitor_feedback_stream_sequence', 'gauge', 'The FEEDBACK stream sequence the accuracy covers.');
    out.sample('infermesh_monitor_feedback_stream_sequence', [], this.feedbackMark.sequence);
    return out.toString();
  }

  /**
   * The state as one compressed message (counts compress well: most are small numbers in
   * repeated keys); with the percentile windows' samples unless `windows` is false, and
   * with the drift window counts and recent accuracy outcomes unless `compact`.
   */
  encode({ windows = true, compact = false }: { windows?: boolean; compact?: boolean } = {}): Uint8Array {
    const savedAtMs = this.now();
    const saved: z.infer<typeof snapshotSchema> = {
      format: 1,
      savedAtMs,
      mark: this.mark,
      known: this.known.entries(),
      series: this.models.save(windows, savedAtMs),
      clients: this.clients.toJSON(),
      dropped: { ...this.dropped },
      feedbackMark: this.feedbackMark,
      drift: this.drift.save({ buckets: !compact }),
      accuracy: this.accuracy.save({ recent: !compact }),
    };
    return gzipSync(JSON.stringify(saved));
  }

  /**
   * The largest snapshot that fits in `maxBytes` (one NATS message): whole; else without
   * the percentile windows (refilled from the stream after a restart); else also without
   * the drift window counts and recent accuracy outcomes (they fill again as records and
   * feedback come), so the counts and the stream marks are still saved. The last may still
   * be too large (the store refuses it, and says so).
   */
  encodeWithin(maxBytes: number | undefined): { bytes: Uint8Array; windows: boolean; compact: boolean } {
    const bytes = this.encode();
    if (maxBytes === undefined || bytes.length <= maxBytes) return { bytes, windows: true, compact: false };
    const withoutWindows = this.encode({ windows: false });
    if (withoutWindows.length <= maxBytes) return { bytes: withoutWindows, windows: false, compact: false };
    return { bytes: this.encode({ windows: false, compact: true }), windows: false, compact: true };
  }

  /**
   * Replaces the state with a snapshot's; throws, leaving the state as it was, when the
   * snapshot is not one. Returns whether it held the percentile windows.
   */
  restore(bytes: Uint8Array): { windows: boolean } {
    const saved = snapshotSchema.parse(JSON.parse(gunzipSync(bytes, { maxOutputLength: MAX_SNAPSHOT_BYTES }).toString('utf8')));
    for (const [model, version] of saved.known) this.known.add(model, version);
    const windows = this.models.restore(saved.series, saved.savedAtMs);
    this.clients.restore(saved.clients);
    Object.assign(this.dropped, saved.dropped);
    this.mark = saved.mark;
    if (saved.drift) this.drift.restore(saved.drift);
    if (saved.accuracy) this.accuracy.restore(saved.accuracy);
    this.feedbackMark = saved.feedbackMark ?? { sequence: 0, streamCreated: '' };
    return { windows };
  }
}
