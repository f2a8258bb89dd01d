/**
 * What the alert rules read, as one interface: the evaluator is tested with fakes of it, and
 * the monitor builds the real one from its timeline, worker roster, drift and accuracy
 * trackers (monitorAlertSignals).
 */
import { UNKNOWN, type SeriesLabels } from '../known-models.js';
import { TIMELINE_KEEP_MS, type Timeline } from '../timeline.js';

export type SeriesKey = SeriesLabels;

export interface DriftSignal {
  /** False while the drift window holds too few inputs for its PSI to mean anything: no rule reads it then. */
  enoughInputs: boolean;
  features: readonly { feature: string; psi: number }[];
}

export interface AlertSignals {
  /** Model versions with records. */
  series(): SeriesKey[];
  /** The models a no_worker rule without `model` watches. */
  models(): string[];
  /** p99 latency over the last `windowMs` (absent without requests), and the requests in it. */
  p99LatencyMs(key: SeriesKey, windowMs: number): { p99Ms?: number; requests: number };
  /** Failed requests over all requests in the last `windowMs` (0 without requests), and the requests in it. */
  errorRate(key: SeriesKey, windowMs: number): { rate: number; requests: number };
  drift(key: SeriesKey): DriftSignal | undefined;
  /** Accuracy over the last `lastN` labelled predictions, and how many are labelled (fewer than lastN early on). */
  accuracy(key: SeriesKey, lastN: number): { accuracy: number; labelled: number } | undefined;
  /** Workers that can answer the model now; absent when nothing counts them. */
  servingWorkers(model: string): number | undefined;
  /** Each shadow version's copies compared with the serving version and how many agreed, since the monitor started; none without shadows. */
  shadowAgreements?(): readonly ShadowAgreement[];
}

export interface ShadowAgreement {
  model: string;
  /** The shadow version. */
  version: string;
  compared: number;
  agreed: number;
}

/** What the shadow statistics answer (services/monitor/src/shadow-stats.ts). */
export interface ShadowReadings {
  readings(): readonly { model: string; version: string; compared: number; agreed: number }[];
}

/** What the drift tracker answers (services/monitor/src/drift.ts). */
export interface DriftReadings {
  reading(model: string, version: string): { enoughInputs: boolean; features: readonly { feature: string; psi: number }[] } | undefined;
}

/** What the accuracy tracker answers (services/monitor/src/accuracy.ts). */
export interface RecentAccuracy {
  recent(model: string, version: string, lastN: number): { accuracy: number; labelled: number } | undefined;
}

/** What the worker roster answers (services/monitor/src/workers.ts). */
export interface ServingWorkers {
  servingWorkers(model: string): number;
  workers(): readonly { models: readonly { name: string }[] }[];
}

export interface MonitorSignalSources {
  timeline: Timeline;
  workers?: ServingWorkers;
  drift?: DriftReadings;
  accuracy?: RecentAccuracy;
  shadows?: ShadowReadings;
  now?: () => number;
}

/** Models remembered as served at most: a roster holds at most 1000 workers of at most 256 models each, but names repeat. */
const MAX_REMEMBERED_MODELS = 1000;

/**
 * The signals of a running monitor. A no_worker rule without `model` watches the models a
 * worker served or a client called within the last hour: a model whose workers all left
 * still alerts, and one retired an hour ago stops (its alert resolves for lack of data).
 * Without a drift or accuracy tracker, drift and accuracy rules read nothing.
 */
export function monitorAlertSignals({ timeline, workers, drift, accuracy, shadows, now = Date.now }: MonitorSignalSources): AlertSignals {
  const lastServedMs = new Map<string, number>();
  return {
    // `_unknown` holds the records of versions past the bound: no rule is about it.
    series: () => timeline.series().filter((key) => key.model !== UNKNOWN),
    models() {
      if (!workers) return [];
      const at = now();
      for (const worker of workers.workers()) {
        for (const { name } of worker.models) {
          lastServedMs.delete(name); // re-inserted last: the map stays ordered by when each model was last served
          lastServedMs.set(name, at);
        }
      }
      for (const [name, servedMs] of lastServedMs) if (servedMs < at - TIMELINE_KEEP_MS || lastServedMs.size > MAX_REMEMBERED_MODELS) lastServedMs.delete(name);
      const called = timeline.series().filter((key) => key.model !== UNKNOWN && timeline.lastRecordMs(key) >= at - TIMELINE_KEEP_MS).map((key) => key.model);
      return [...new Set([...lastServedMs.keys(), ...called])].sort();
    },
    p99LatencyMs(key, windowMs) {
      const w = timeline.window(key, windowMs, now());
      return w.p99Ms === undefined ? { requests: w.requests } : { p99Ms: w.p99Ms, requests: w.requests };
    },
    errorRate(key, windowMs) {
      const w = timeline.window(key, windowMs, now());
      return { rate: w.requests === 0 ? 0 : w.errors / w.requests, requests: w.requests };
    },
    drift: (key) => drift?.reading(key.model, key.version),
    accuracy: (key, lastN) => accuracy?.recent(key.model, key.version, lastN),
    servingWorkers: (model) => workers?.servingWorkers(model),
    shadowAgreements() {
      // One series per version shadowed: a shadow version's agreement is over all of them.
      const sums = new Map<string, ShadowAgreement>();
      for (const r of shadows?.readings() ?? []) {
        const key = `${r.model}\u0000${r.version}`;
        const sum = sums.get(key) ?? { model: r.model, version: r.version, compared: 0, agreed: 0 };
        sum.compared += r.compared;
        sum.agreed += r.agreed;
        sums.set(key, sum);
      }
      return [...sums.values()];
    },
  };
}
