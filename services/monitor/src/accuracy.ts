/**
 * Accuracy per model version from feedback: clients send the true labels of requests
 * answered earlier; the feedback consumer joins each with the kept prediction and hands
 * the pair here. Per series: labelled and correct inputs in all, the outcomes of the last
 * `window` labelled inputs (recent accuracy), and a confusion matrix over the model's class
 * labels; per model, what became of the feedback.
 *
 * Feedback that joined nothing (`unknown`, `expired`, `ambiguous`) has no version: it is counted on the
 * model, in a series with version "" that holds only those outcomes. Readings list it
 * beside the versions (GetAccuracy with a version leaves it out).
 *
 * Labels are bounded like the model series: series only for announced model versions
 * (KnownModels; others under `_unknown`), confusion cells only for the class labels
 * the model's workers announce (at most MAX_CLASSES; other labels count as `_other`).
 */
import { MAX_LABEL_LENGTH, UNKNOWN, type KnownModels } from './known-models.js';
import type { PrometheusText } from './prometheus-text.js';

export interface AccuracyReading { model: string; version: string; labelled: number; correct: number; recentAccuracy: number; recentLabelled: number; confusion: { actual: string; predicted: string; count: number }[]; feedback: Record<FeedbackOutcome, number> }

export type FeedbackOutcome = 'applied' | 'unknown' | 'expired' | 'mismatched' | 'ambiguous';
export const FEEDBACK_OUTCOMES: readonly FeedbackOutcome[] = ['applied', 'unknown', 'expired', 'mismatched', 'ambiguous'];
/** Feedback that joined no prediction, so has no version. */
export type UnjoinedOutcome = 'unknown' | 'expired' | 'ambiguous';
const noOutcomes = (): Record<FeedbackOutcome, number> => ({ applied: 0, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 });
/** Feedback messages that were never joined: not a Feedback, or handling it threw. */
export type FeedbackDropReason = 'undecodable' | 'failed';

/** Class labels taken per model version at most; a confusion matrix has at most (MAX_CLASSES + 1)² cells. */
export const MAX_CLASSES = 64;
export const OTHER_CLASS = '_other';

export interface AccuracyTrackerOptions {
  known: KnownModels;
  /** Labelled inputs the recent accuracy is taken over. */
  window?: number;
}

interface Series {
  model: string;
  version: string;
  labelled: number;
  correct: number;
  /** 1 = correct, 0 = wrong; slot `next` is overwritten next. */
  ring: Uint8Array;
  next: number;
  filled: number;
  /** actual \0 predicted -> count */
  confusion: Map<string, number>;
  feedback: Record<FeedbackOutcome, number>;
}

export interface SavedAccuracySeries {
  model: string;
  version: string;
  labelled: number;
  correct: number;
  /** The ring's outcomes, oldest first, as '0' and '1'. */
  recent: string;
  confusion: [string, string, number][];
  /** An outcome added later (ambiguous) is absent from an older snapshot. */
  feedback: Partial<Record<FeedbackOutcome, number>>;
}

export interface SavedAccuracy {
  classes: [string, string, string[]][];
  series: SavedAccuracySeries[];
  dropped: Record<FeedbackDropReason, number>;
}

const key = (model: string, version: string) => `${model}\u0000${version}`;

export class AccuracyTracker {
  private readonly series = new Map<string, Series>();
  private readonly classes = new Map<string, { labels: string[]; set: Set<string> }>();
  private readonly dropped: Record<FeedbackDropReason, number> = { undecodable: 0, failed: 0 };
  private readonly known: KnownModels;
  readonly window: number;

  constructor(options: AccuracyTrackerOptions) {
    this.known = options.known;
    this.window = options.window ?? 1000;
    if (!Number.isInteger(this.window) || this.window < 1) throw new RangeError(`window must be a positive integer, got ${this.window}`);
  }

  /** Takes the class labels a heartbeat announces for a known model version (the first MAX_CLASSES); whether they changed. */
  learnClasses(model: string, version: string, labels: readonly string[]): boolean {
    if (labels.length === 0 || !this.isKnown(model, version)) return false;
    const taken = [...new Set(labels.slice(0, MAX_CLASSES).filter((l) => l.length > 0 && l.length <= MAX_LABEL_LENGTH))];
    const k = key(model, version);
    const current = this.classes.get(k);
    if (current && current.labels.length === taken.length && current.labels.every((l, i) => l === taken[i])) return false;
    this.classes.set(k, { labels: taken, set: new Set(taken) });
    return true;
  }

  /**
   * Joins feedback with its prediction: `applied` when there is a label per predicted
   * input (each input correct when the labels are equal), else `mismatched`.
   */
  apply(prediction: { model: string; version: string; predictedLabels: readonly string[] }, labels: readonly string[]): 'applied' | 'mismatched' {
    const labelsOf = this.known.labelsOf(prediction.model, prediction.version);
    const series = this.seriesOf(labelsOf.model, labelsOf.version);
    const predicted = prediction.predictedLabels;
    if (labels.length !== predicted.length || labels.length === 0) {
      series.feedback.mismatched += 1;
      return 'mismatched';
    }
    const classes = this.classes.get(key(labelsOf.model, labelsOf.version))?.set;
    const bounded = (label: string) => (classes?.has(label) ? label : OTHER_CLASS);
    for (let i = 0; i < labels.length; i++) {
      const correct = labels[i] === predicted[i];
      series.labelled += 1;
      if (correct) series.correct += 1;
      series.ring[series.next] = correct ? 1 : 0;
      series.next = (series.next + 1) % series.ring.length;
      series.filled = Math.min(series.filled + 1, series.ring.length);
      const cell = key(bounded(labels[i]), bounded(predicted[i]));
      series.confusion.set(cell, (series.confusion.get(cell) ?? 0) + 1);
    }
    series.feedback.applied += 1;
    return 'applied';
  }

  /** Feedback that joined no prediction: counted on the model (version ""). */
  unjoined(model: string, outcome: UnjoinedOutcome): void {
    this.seriesOf(this.modelLabel(model), '').feedback[outcome] += 1;
  }

  /** The label feedback for `model` is counted under: the name when the model is known, else `_unknown`. */
  modelLabel(model: string): string {
    return this.known.labelsOf(model, '').model;
  }

  drop(reason: FeedbackDropReason): void {
    this.dropped[reason] += 1;
  }

  droppedCounts(): Readonly<Record<FeedbackDropReason, number>> {
    return { ...this.dropped };
  }

  readings(filter: { model?: string; version?: string } = {}): AccuracyReading[] {
    return [...this.series.values()]
      .filter((s) => (filter.model === undefined || s.model === filter.model) && (filter.version === undefined || s.version === filter.version))
      .sort((a, b) => (key(a.model, a.version) < key(b.model, b.version) ? -1 : 1))
      .map((s) => {
        const recent = this.recentOf(s, s.filled);
        return {
          model: s.model,
          version: s.version,
          labelled: s.labelled,
          correct: s.correct,
          recentAccuracy: recent.accuracy,
          recentLabelled: recent.labelled,
          confusion: [...s.confusion]
            .map(([cell, count]) => {
              const [actual, predicted] = cell.split('\u0000');
              return { actual, predicted, count };
            })
            .sort((a, b) => (key(a.actual, a.predicted) < key(b.actual, b.predicted) ? -1 : 1)),
          feedback: { ...s.feedback },
        };
      });
  }

  /** Accuracy over the last `lastN` labelled inputs of a series (fewer when it has fewer); undefined when it has none. */
  recent(model: string, version: string, lastN: number): { accuracy: number; labelled: number } | undefined {
    const series = this.series.get(key(model, version));
    if (!series || series.filled === 0 || !(lastN >= 1)) return undefined;
    return this.recentOf(series, Math.min(Math.floor(lastN), series.filled));
  }

  writePrometheus(out: PrometheusText): void {
    const versions = this.readings().filter((r) => r.version !== '');
    const labels = (r: AccuracyReading) => [['model', r.model], ['version', r.version]] as const;
    out.family('infermesh_model_labelled_total', 'counter', 'Inputs labelled by feedback and joined with their prediction.');
    for (const r of versions) out.sample('infermesh_model_labelled_total', labels(r), r.labelled);
    out.family('infermesh_model_correct_total', 'counter', 'Labelled inputs whose prediction equalled the label.');
    for (const r of versions) out.sample('infermesh_model_correct_total', labels(r), r.correct);
    out.family('infermesh_model_accuracy_recent', 'gauge', 'Accuracy over the most recent labelled inputs (MONITOR_ACCURACY_WINDOW).');
    for (const r of versions) if (r.recentLabelled > 0) out.sample('infermesh_model_accuracy_recent', labels(r), r.recentAccuracy);
    const perModel = new Map<string, Record<FeedbackOutcome, number>>();
    for (const s of this.series.values()) {
      const sums = perModel.get(s.model) ?? noOutcomes();
      for (const outcome of FEEDBACK_OUTCOMES) sums[outcome] += s.feedback[outcome];
      perModel.set(s.model, sums);
    }
    out.family('infermesh_feedback_total', 'counter', 'Feedback per model by what became of it: applied, unknown (no such prediction kept), expired (older than the retention), mismatched (label count differs), ambiguous (the request id named more than one prediction).');
    for (const [model, sums] of [...perModel].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const outcome of FEEDBACK_OUTCOMES) out.sample('infermesh_feedback_total', [['model', model], ['outcome', outcome]], sums[outcome]);
    }
    out.family('infermesh_monitor_feedback_dropped_total', 'counter', 'FEEDBACK messages never joined: undecodable, or handling them failed.');
    out.sample('infermesh_monitor_feedback_dropped_total', [['reason', 'undecodable']], this.dropped.undecodable);
    out.sample('infermesh_monitor_feedback_dropped_total', [['reason', 'failed']], this.dropped.failed);
  }

  /** `recent` false: without the recent outcomes (a snapshot that must be smaller; the totals and confusion stay). */
  save({ recent: withRecent = true }: { recent?: boolean } = {}): SavedAccuracy {
    return {
      classes: [...this.classes].map(([k, { labels }]): [string, string, string[]] => {
        const [model, version] = k.split('\u0000');
        return [model, version, [...labels]];
      }),
      series: [...this.series.values()].map((s) => {
        let recent = '';
        if (withRecent) for (let i = 0; i < s.filled; i++) recent += s.ring[(s.next - s.filled + i + s.ring.length) % s.ring.length] ? '1' : '0';
        return {
          model: s.model,
          version: s.version,
          labelled: s.labelled,
          correct: s.correct,
          recent,
          confusion: [...s.confusion].map(([cell, count]): [string, string, number] => {
            const [actual, predicted] = cell.split('\u0000');
            return [actual, predicted, count];
          }),
          feedback: { ...s.feedback },
        };
      }),
      dropped: { ...this.dropped },
    };
  }

  /** Replaces the counts with a snapshot's; class labels announced since the start are kept over saved ones. */
  restore(saved: SavedAccuracy): void {
    for (const [model, version, labels] of saved.classes) if (!this.classes.has(key(model, version))) this.learnClasses(model, version, labels);
    this.series.clear();
    Object.assign(this.dropped, saved.dropped);
    for (const s of saved.series) {
      // Under the labels this monitor's bounds give them, as their feedback would have been counted.
      const labels = s.version === '' ? { model: this.modelLabel(s.model), version: '' } : this.known.labelsOf(s.model, s.version);
      const series = this.seriesOf(labels.model, labels.version);
      series.labelled += s.labelled;
      series.correct += s.correct;
      for (const outcome of s.recent.slice(-this.window)) {
        series.ring[series.next] = outcome === '1' ? 1 : 0;
        series.next = (series.next + 1) % series.ring.length;
        series.filled = Math.min(series.filled + 1, series.ring.length);
      }
      for (const [actual, predicted, count] of s.confusion) {
        const cell = key(actual, predicted);
        series.confusion.set(cell, (series.confusion.get(cell) ?? 0) + count);
      }
      for (const outcome of FEEDBACK_OUTCOMES) series.feedback[outcome] += s.feedback[outcome] ?? 0;
    }
  }

  private recentOf(series: Series, lastN: number): { accuracy: number; labelled: number } {
    let correct = 0;
    for (let i = 1; i <= lastN; i++) correct += series.ring[(series.next - i + series.ring.length) % series.ring.length];
    return { accuracy: lastN > 0 ? correct / lastN : 0, labelled: lastN };
  }

  private seriesOf(model: string, version: string): Series {
    const k = key(model, version);
    let series = this.series.get(k);
    if (!series) {
      series = {
        model, version, labelled: 0, correct: 0, ring: new Uint8Array(this.window), next: 0, filled: 0, confusion: new Map(),
        feedback: noOutcomes(),
      };
      this.series.set(k, series);
    }
    return series;
  }

  private isKnown(model: string, version: string): boolean {
    const labels = this.known.labelsOf(model, version);
    return labels.model === model && labels.version === version && model !== UNKNOWN;
  }
}
