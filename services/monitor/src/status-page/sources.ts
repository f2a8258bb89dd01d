/**
 * What the status page reads, as small interfaces: the monitor's parts (model counts, the
 * timeline, drift, accuracy, alerts, the worker roster) each satisfy one, and tests give
 * fakes. Only the model counts and the roster are required; a page without a source says
 * so instead of showing empty charts.
 */
import type { Alert__Output } from '@infermesh/contracts';
import type { VersionStats } from '../model-metrics.js';
import type { SeriesLabels } from '../known-models.js';
import type { WorkerEntry } from '../workers.js';
import type { TimelinePoint } from '../timeline.js';
import type { DriftReading } from '../drift.js';
import type { AccuracyReading, FeedbackOutcome } from '../accuracy.js';
import type { ShadowReading } from '../shadow-stats.js';

export type { TimelinePoint, DriftReading, AccuracyReading, ShadowReading };
/** What became of a model's feedback, by outcome. */
export type FeedbackCounts = Record<FeedbackOutcome, number>;

export interface TimelineSource {
  /** The model versions it has points for. */
  series(): SeriesLabels[];
  /** The points of one version since `sinceMs`, oldest first. */
  points(labels: SeriesLabels, sinceMs: number): TimelinePoint[];
}

export interface DriftSource {
  readings(): DriftReading[];
}

export interface AccuracySource {
  readings(): AccuracyReading[];
}

export interface ShadowSource {
  /** Each shadow version against the version it shadowed. */
  readings(): ShadowReading[];
}

export interface AlertSource {
  /** The alerts firing now. */
  firing(): Alert__Output[];
  /** Calls `listener` on each transition (firing or resolved); returns how to stop. */
  onTransition(listener: (alert: Alert__Output) => void): () => void;
}

export interface ModelCountsSource {
  /** Every model with records, sorted. */
  models(): string[];
  /** The versions of a model with records, sorted. */
  stats(model: string): VersionStats[];
}

export interface WorkerSource {
  workers(): WorkerEntry[];
}

export interface StatusSources {
  counts: ModelCountsSource;
  workers: WorkerSource;
  timeline?: TimelineSource;
  drift?: DriftSource;
  accuracy?: AccuracySource;
  alerts?: AlertSource;
  shadows?: ShadowSource;
}
