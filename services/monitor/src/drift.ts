/**
 * Data drift per model version: how far the inputs of the last MONITOR_DRIFT_WINDOW_MS
 * are from the model's reference profile, feature by feature, as a population stability
 * index (PSI).
 *
 * Workers bin each input with the profile's edges (one byte per feature and input, in
 * PredictionRecord.drift_bins) and announce the profile in their heartbeats
 * (ModelStatus.drift_reference). The monitor only counts bins: per series, per time bucket
 * of the record's own time (so a record read again after a restart lands where it did),
 * per feature and bin. The counts of the buckets in the window go into the snapshot.
 *
 * Why PSI: it compares two histograms over the same bins, which is exactly what the worker
 * can send cheaply (a byte per feature, no raw values leave the worker), it is symmetric in
 * where the mass moved, and its usual reading (0.1 moderate, 0.25 large) gives alert rules
 * a scale that does not depend on the feature's units.
 */
import type { DriftReference__Output, PredictionRecord__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import { MAX_LABEL_LENGTH, type KnownModels } from './known-models.js';
import type { PrometheusText } from './prometheus-text.js';

export interface FeatureDriftReading { feature: string; psi: number; observed: number[]; expected: number[] }
export interface DriftReading { model: string; version: string; windowInputs: number; windowMs: number; enoughInputs: boolean; features: FeatureDriftReading[]; maxPsi: number; profileId: string }

/** Records with bins that were not counted for drift, and why. */
export type DriftDropReason = 'no_reference' | 'profile_mismatch' | 'malformed';
const DROP_REASONS: readonly DriftDropReason[] = ['no_reference', 'profile_mismatch', 'malformed'];

/** Bounds on a reference a heartbeat announces (a heartbeat is a claim too): features, bins (a bin is one byte), cells. */
export const MAX_FEATURES = 256;
export const MAX_BINS = 256;
/** Feature-bin counters per reference: each time bucket of each series holds this many numbers at most. */
export const MAX_CELLS = 4096;
export const DEFAULT_BUCKET_MS = 5000;
/** A long window gets longer buckets: at most this many per window (a day-long window: 12-minute buckets). */
export const MAX_BUCKETS_PER_WINDOW = 120;

/**
 * Smoothing of the observed shares: 0.5 is added to each bin's count before taking
 * shares. A window of a few dozen inputs leaves bins empty by chance, and an empty bin
 * makes ln(o/e) infinite; with the half count an empty bin costs a finite amount that
 * shrinks as the window fills (it is the Jeffreys prior of a multinomial, so the shares
 * lean towards uniform only while there is little evidence).
 */
export const OBSERVED_PSEUDO_COUNT = 0.5;
/**
 * The reference's share of a bin is taken as at least this: a bin the reference data
 * never reached has share 0, and a single live input there would make the PSI infinite.
 * 1e-4 caps what one such bin can add (at most about ln(1e4) ≈ 9.2 times its share).
 */
export const MIN_EXPECTED_SHARE = 1e-4;

/**
 * PSI of bin counts against reference shares: sum over bins of (o - e) * ln(o / e), with o
 * the smoothed observed share and e the (clamped) expected share. 0 for the same
 * distribution, never negative.
 */
export function populationStabilityIndex(counts: ArrayLike<number>, expected: readonly number[]): number {
  const bins = expected.length;
  let total = 0;
  for (let i = 0; i < bins; i++) total += counts[i];
  const denominator = total + OBSERVED_PSEUDO_COUNT * bins;
  let psi = 0;
  for (let i = 0; i < bins; i++) {
    const o = (counts[i] + OBSERVED_PSEUDO_COUNT) / denominator;
    const e = Math.max(expected[i], MIN_EXPECTED_SHARE);
    psi += (o - e) * Math.log(o / e);
  }
  return psi;
}

interface Reference {
  profileId: string;
  features: { name: string; expected: number[] }[];
  /** Where each feature's bins start in a bucket's counts. */
  offsets: number[];
  cells: number;
}

interface Bucket {
  /** The bucket's number since the epoch (start time / bucket length). */
  index: number;
  inputs: number;
  counts: Uint32Array;
}

interface Series {
  model: string;
  version: string;
  reference: Reference;
  /** Oldest first; only buckets that still overlap the window. */
  buckets: Bucket[];
}

/** The saved form of one series (counts of the buckets still in the window). */
export interface SavedDriftSeries {
  model: string;
  version: string;
  profileId: string;
  features: { name: string; expected: number[] }[];
  /** Times, not bucket numbers: a monitor restarted with another window (so other buckets) puts them in its own. */
  buckets: { startMs: number; inputs: number; counts: number[] }[];
}

export interface SavedDrift {
  series: SavedDriftSeries[];
  dropped: Record<DriftDropReason, number>;
}

export interface DriftTrackerOptions {
  known: KnownModels;
  /** The live window: inputs of records stamped within the last `windowMs`. */
  windowMs?: number;
  /** Inputs in the window below which a reading says `enoughInputs: false`. */
  minInputs?: number;
  /** Default: 5 s, longer for a window of more than 120 of them. */
  bucketMs?: number;
  now?: () => number;
}

/** switched: back to the profile announced before the current one, with its window as it was. */
export type LearnOutcome = 'learned' | 'switched' | 'same' | 'none' | 'not_known' | { rejected: string };

const key = (model: string, version: string) => `${model}\u0000${version}`;

export class DriftTracker {
  private readonly series = new Map<string, Series>();
  /** Per version, the series of the profile announced before the current one (see learn). */
  private readonly previous = new Map<string, Series>();
  /** The profile id last rejected per series, so a bad profile announced every second is reported once. */
  private readonly rejected = new Map<string, string>();
  private readonly dropped: Record<DriftDropReason, number> = { no_reference: 0, profile_mismatch: 0, malformed: 0 };
  private readonly known: KnownModels;
  readonly windowMs: number;
  readonly minInputs: number;
  private readonly bucketMs: number;
  private readonly now: () => number;

  constructor(options: DriftTrackerOptions) {
    this.known = options.known;
    this.windowMs = options.windowMs ?? 60_000;
    this.minInputs = options.minInputs ?? 50;
    this.bucketMs = options.bucketMs ?? Math.max(DEFAULT_BUCKET_MS, Math.ceil(this.windowMs / MAX_BUCKETS_PER_WINDOW));
    this.now = options.now ?? Date.now;
  }

  /**
   * Takes a model version's reference from a heartbeat: only for a version the mesh
   * announced (KnownModels), the latest one per version. A new profile starts the window
   * afresh: counts binned with other edges say nothing against it.
   *
   * The series of the profile before is kept beside it: while a new profile is rolled out
   * worker by worker, heartbeats announce both by turns, and each switch back would
   * otherwise throw a window away every second (and the records binned with it would be
   * dropped). Its records keep counting in its own window, read while it is announced.
   */
  learn(model: string, version: string, reference: DriftReference__Output | null): LearnOutcome {
    // A model without a profile; a version that had one keeps it (its records say which profile they used).
    if (!reference) return 'none';
    if (!this.isKnown(model, version)) return 'not_known';
    const k = key(model, version);
    const current = this.series.get(k);
    if (current?.reference.profileId === reference.profileId) return 'same';
    if (this.rejected.get(k) === reference.profileId) return 'same';
    const before = this.previous.get(k);
    if (current && before?.reference.profileId === reference.profileId) {
      this.series.set(k, before);
      this.previous.set(k, current);
      return 'switched';
    }
    const checked = checkReference(reference.profileId, reference.features.map((f) => ({ name: f.name, expected: f.expected, bins: f.edges.length + 1 })));
    if (typeof checked === 'string') {
      this.rejected.set(k, reference.profileId);
      return { rejected: checked };
    }
    this.rejected.delete(k);
    if (current) this.previous.set(k, current);
    this.series.set(k, { model, version, reference: checked, buckets: [] });
    return 'learned';
  }

  /**
   * Counts the bins of one counted record (`atMs`: its time, as the model series take it).
   * Records without bins, and failed requests, are not about drift and are left alone.
   */
  observe(record: PredictionRecord__Output, atMs: number): 'counted' | 'ignored' | 'aged' | DriftDropReason {
    if (record.statusCode !== Status.OK || record.driftBins.length === 0) return 'ignored';
    const k = key(record.model, record.version);
    const current = this.series.get(k);
    if (!current) return this.drop('no_reference');
    const before = this.previous.get(k);
    const series = record.profileId !== current.reference.profileId && before?.reference.profileId === record.profileId ? before : current;
    const { reference } = series;
    if (record.profileId !== reference.profileId) return this.drop('profile_mismatch');
    const bins = record.driftBins;
    const features = reference.features.length;
    if (!(record.items > 0) || bins.length !== record.items * features) return this.drop('malformed');
    // Checked whole before counting: a malformed record adds nothing.
    for (let i = 0; i < bins.length; i++) if (bins[i] >= reference.features[i % features].expected.length) return this.drop('malformed');
    const now = this.now();
    const index = Math.floor(atMs / this.bucketMs);
    this.prune(series, now);
    if (!this.inWindow(index, now)) return 'aged';
    const bucket = this.bucketOf(series, index);
    for (let i = 0; i < bins.length; i++) bucket.counts[reference.offsets[i % features] + bins[i]] += 1;
    bucket.inputs += record.items;
    return 'counted';
  }

  readings(filter: { model?: string; version?: string } = {}): DriftReading[] {
    const now = this.now();
    return [...this.series.values()]
      .filter((s) => (filter.model === undefined || s.model === filter.model) && (filter.version === undefined || s.version === filter.version))
      .sort((a, b) => (key(a.model, a.version) < key(b.model, b.version) ? -1 : 1))
      .map((s) => this.readingOf(s, now));
  }

  reading(model: string, version: string): DriftReading | undefined {
    const series = this.series.get(key(model, version));
    return series && this.readingOf(series, this.now());
  }

  droppedCounts(): Readonly<Record<DriftDropReason, number>> {
    return { ...this.dropped };
  }

  writePrometheus(out: PrometheusText): void {
    const readings = this.readings();
    out.family('infermesh_model_drift_psi', 'gauge', 'Population stability index of each feature: the live window against the reference profile (only with enough inputs in the window).');
    for (const r of readings) {
      if (!r.enoughInputs) continue;
      for (const f of r.features) out.sample('infermesh_model_drift_psi', [['model', r.model], ['version', r.version], ['feature', f.feature]], f.psi);
    }
    out.family('infermesh_model_drift_window_inputs', 'gauge', 'Inputs in the live drift window of each model version.');
    for (const r of readings) out.sample('infermesh_model_drift_window_inputs', [['model', r.model], ['version', r.version]], r.windowInputs);
    out.family('infermesh_monitor_drift_records_dropped_total', 'counter', 'Prediction records with drift bins not counted for drift: no reference for their version, binned with another profile, or bins that do not fit the profile.');
    for (const reason of DROP_REASONS) out.sample('infermesh_monitor_drift_records_dropped_total', [['reason', reason]], this.dropped[reason]);
  }

  /** `buckets` false: the references without their window counts (a snapshot that must be smaller; the windows fill again). */
  save({ buckets = true }: { buckets?: boolean } = {}): SavedDrift {
    const now = this.now();
    return {
      series: [...this.series.values()].map((s) => {
        this.prune(s, now);
        return {
          model: s.model,
          version: s.version,
          profileId: s.reference.profileId,
          features: s.reference.features.map((f) => ({ name: f.name, expected: [...f.expected] })),
          buckets: buckets ? s.buckets.map((b) => ({ startMs: b.index * this.bucketMs, inputs: b.inputs, counts: [...b.counts] })) : [],
        };
      }),
      dropped: { ...this.dropped },
    };
  }

  /**
   * Takes a snapshot's references and window counts. A reference a heartbeat announced
   * since the start wins over the saved one when they differ (the saved counts were binned
   * with the older profile); a saved series of a version no longer known is skipped, and
   * so is a bucket whose counts do not fit its reference.
   */
  restore(saved: SavedDrift): void {
    Object.assign(this.dropped, saved.dropped);
    for (const s of saved.series) {
      if (!this.isKnown(s.model, s.version)) continue;
      const k = key(s.model, s.version);
      let series = this.series.get(k);
      if (!series) {
        const checked = checkReference(s.profileId, s.features.map((f) => ({ ...f, bins: f.expected.length })));
        if (typeof checked === 'string') continue;
        series = { model: s.model, version: s.version, reference: checked, buckets: [] };
        this.series.set(k, series);
      } else if (series.reference.profileId !== s.profileId) continue;
      for (const b of s.buckets) {
        if (b.counts.length !== series.reference.cells || !Number.isFinite(b.startMs)) continue;
        const index = Math.floor(b.startMs / this.bucketMs);
        if (!this.inWindow(index, this.now())) continue;
        const bucket = this.bucketOf(series, index);
        b.counts.forEach((c, i) => (bucket.counts[i] += c));
        bucket.inputs += b.inputs;
      }
    }
  }

  private readingOf(s: Series, now: number): DriftReading {
    const { reference } = s;
    const totals = new Float64Array(reference.cells);
    let inputs = 0;
    for (const b of s.buckets) {
      if (!this.inWindow(b.index, now)) continue;
      inputs += b.inputs;
      for (let i = 0; i < totals.length; i++) totals[i] += b.counts[i];
    }
    const features = reference.features.map((f, j) => {
      const counts = totals.subarray(reference.offsets[j], reference.offsets[j] + f.expected.length);
      return {
        feature: f.name,
        // An empty window has no shares and no drift to report (a smoothed PSI of nothing would be noise).
        psi: inputs > 0 ? populationStabilityIndex(counts, f.expected) : 0,
        observed: Array.from(counts, (c) => (inputs > 0 ? c / inputs : 0)),
        expected: [...f.expected],
      };
    });
    return {
      model: s.model,
      version: s.version,
      windowInputs: inputs,
      windowMs: this.windowMs,
      enoughInputs: inputs >= this.minInputs,
      features,
      maxPsi: features.reduce((max, f) => Math.max(max, f.psi), 0),
      profileId: reference.profileId,
    };
  }

  /** A bucket counts while any of it is within the window: a record counts for between windowMs and windowMs + bucketMs. */
  private inWindow(index: number, now: number): boolean {
    return (index + 1) * this.bucketMs > now - this.windowMs;
  }

  private prune(series: Series, now: number): void {
    while (series.buckets.length > 0 && !this.inWindow(series.buckets[0].index, now)) series.buckets.shift();
  }

  private bucketOf(series: Series, index: number): Bucket {
    const { buckets } = series;
    let at = buckets.length;
    while (at > 0 && buckets[at - 1].index > index) at--;
    if (at > 0 && buckets[at - 1].index === index) return buckets[at - 1];
    const bucket = { index, inputs: 0, counts: new Uint32Array(series.reference.cells) };
    buckets.splice(at, 0, bucket);
    return bucket;
  }

  private drop(reason: DriftDropReason): DriftDropReason {
    this.dropped[reason] += 1;
    return reason;
  }

  private isKnown(model: string, version: string): boolean {
    const labels = this.known.labelsOf(model, version);
    return labels.model === model && labels.version === version;
  }
}

/** A reference as the monitor keeps it, or why it is refused. */
function checkReference(profileId: string, features: { name: string; expected: number[]; bins: number }[]): Reference | string {
  if (!profileId || profileId.length > MAX_LABEL_LENGTH) return `profile id is empty or over ${MAX_LABEL_LENGTH} characters`;
  if (features.length === 0 || features.length > MAX_FEATURES) return `${features.length} features; a profile has 1 to ${MAX_FEATURES}`;
  const offsets: number[] = [];
  let cells = 0;
  for (const f of features) {
    if (!f.name || f.name.length > MAX_LABEL_LENGTH) return `a feature name is empty or over ${MAX_LABEL_LENGTH} characters`;
    if (f.expected.length !== f.bins) return `feature ${f.name.slice(0, MAX_LABEL_LENGTH)} has ${f.expected.length} expected shares for ${f.bins} bins`;
    if (f.bins < 2 || f.bins > MAX_BINS) return `feature ${f.name} has ${f.bins} bins; a feature has 2 to ${MAX_BINS}`;
    if (f.expected.some((e) => !Number.isFinite(e) || e < 0 || e > 1)) return `feature ${f.name} has an expected share outside 0..1`;
    offsets.push(cells);
    cells += f.bins;
  }
  if (cells > MAX_CELLS) return `${cells} bins in all; a profile has at most ${MAX_CELLS}`;
  return { profileId, features: features.map((f) => ({ name: f.name, expected: [...f.expected] })), offsets, cells };
}
