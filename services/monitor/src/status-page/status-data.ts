/**
 * What the status page shows, as one JSON document (GET /status/data, and each SSE event):
 * per model version its traffic over the last 15 minutes, drift and accuracy; the workers;
 * the alerts firing. Built once per update and sent to every client, so its size is
 * bounded whatever the mesh holds: at most MAX_PAGE_SERIES versions of MAX_POINTS points,
 * MAX_PAGE_WORKERS workers, MAX_PAGE_ALERTS alerts (the page says how many it left out;
 * /metrics and the Monitor API have them all).
 */
import type { Alert__Output } from '@infermesh/contracts';
import type { SeriesLabels } from '../known-models.js';
import type { WorkerEntry } from '../workers.js';
import type { ReadingHistory } from './reading-history.js';
import type { AccuracyReading, DriftReading, FeedbackCounts, ShadowReading, StatusSources, TimelinePoint } from './sources.js';

export const PAGE_WINDOW_MS = 15 * 60_000;
export const MAX_PAGE_SERIES = 32;
export const MAX_POINTS = 180;
export const MAX_PAGE_WORKERS = 200;
export const MAX_PAGE_ALERTS = 200;
/** Features charted per model version (an image model has five statistics; a tabular one its columns). */
export const MAX_FEATURES = 32;
/** When a timeline does not say its step, the smallest gap between its points is taken; with one point, this. */
const DEFAULT_STEP_MS = 1000;

export interface ChartPoint {
  atMs: number;
  requestsPerS: number;
  /** Errors per request; null with no requests. */
  errorRate: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface DriftSample {
  atMs: number;
  maxPsi: number;
  enoughInputs: boolean;
  /** PSI per feature, by feature name. */
  psi: Record<string, number>;
}

export interface AccuracySample {
  atMs: number;
  recentAccuracy: number;
  recentLabelled: number;
}

export interface DriftView {
  enoughInputs: boolean;
  windowInputs: number;
  windowMs: number;
  maxPsi: number;
  profileId: string;
  features: { feature: string; psi: number }[];
  history: DriftSample[];
}

export interface AccuracyView {
  labelled: number;
  correct: number;
  recentAccuracy: number;
  recentLabelled: number;
  feedback: FeedbackCounts;
  history: AccuracySample[];
}

export interface ModelView {
  model: string;
  version: string;
  totals: { requests: number; errors: number; items: number; lastRequestMs: number };
  /** The recent latency percentiles (GetModelStats's window). */
  latencyMs: { p50: number; p99: number };
  /** The width of one chart point. */
  stepMs: number;
  points: ChartPoint[];
  drift: DriftView | null;
  accuracy: AccuracyView | null;
  /** What became of the feedback for this model, all versions together (feedback naming no kept prediction has no version). */
  modelFeedback: FeedbackCounts | null;
  /** The shadow versions that got copies of this version's requests, and how often they agreed with it. */
  shadows: ShadowReading[];
}

export interface AlertView {
  fingerprint: string;
  rule: string;
  kind: string;
  severity: string;
  model: string;
  version: string;
  feature: string;
  value: number;
  threshold: number;
  summary: string;
  startedMs: number;
}

export interface StatusData {
  nowMs: number;
  sinceMs: number;
  /** Which measurements this monitor makes: the page says "not measured" rather than drawing an empty chart. */
  measured: { timeline: boolean; drift: boolean; accuracy: boolean; alerts: boolean };
  models: ModelView[];
  modelsOmitted: number;
  workers: WorkerEntry[];
  workersOmitted: number;
  alerts: AlertView[];
  alertsOmitted: number;
}

export interface StatusHistory {
  drift: ReadingHistory<DriftSample>;
  accuracy: ReadingHistory<AccuracySample>;
}

const key = ({ model, version }: SeriesLabels) => `${model}\u0000${version}`;
const byLabels = (a: SeriesLabels, b: SeriesLabels) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

export function driftSample(reading: DriftReading, atMs: number): DriftSample {
  const psi: Record<string, number> = {};
  for (const f of reading.features.slice(0, MAX_FEATURES)) psi[f.feature] = f.psi;
  return { atMs, maxPsi: reading.maxPsi, enoughInputs: reading.enoughInputs, psi };
}

export function accuracySample(reading: AccuracyReading, atMs: number): AccuracySample {
  return { atMs, recentAccuracy: reading.recentAccuracy, recentLabelled: reading.recentLabelled };
}

export function buildStatusData(sources: StatusSources, history: StatusHistory, nowMs: number, timelineStepMs?: number): StatusData {
  const sinceMs = nowMs - PAGE_WINDOW_MS;
  const drift = new Map((sources.drift?.readings() ?? []).map((r) => [key(r), r]));
  const accuracyReadings = sources.accuracy?.readings() ?? [];
  const shadows = sources.shadows?.readings() ?? [];
  const modelFeedback = feedbackByModel(accuracyReadings);
  // A reading without a version counts feedback that joined no prediction: it has no chart of its own.
  const accuracy = new Map(accuracyReadings.filter((r) => r.version !== '').map((r) => [key(r), r]));
  const counted = sources.counts.models().flatMap((model) => sources.counts.stats(model));
  const countedByKey = new Map(counted.map((s) => [key(s), s]));

  // Every version with records, drift inputs or feedback (a version may be measured before its first record is
  // counted); not one whose profile or classes alone are known: a page of empty cards would hide "no predictions yet".
  const all = new Map<string, SeriesLabels>();
  const measured = [...drift.values()].filter((r) => r.windowInputs > 0);
  const judged = [...accuracy.values()].filter((r) => r.labelled > 0 || Object.values(r.feedback).some((n) => n > 0));
  for (const labels of [...counted, ...measured, ...judged]) all.set(key(labels), { model: labels.model, version: labels.version });
  const shown = [...all.values()].sort(byLabels).slice(0, MAX_PAGE_SERIES);

  const models = shown.map((labels): ModelView => {
    const stats = countedByKey.get(key(labels));
    const { stepMs, points } = chartPoints(sources.timeline?.points(labels, sinceMs) ?? [], sinceMs, nowMs, timelineStepMs);
    const d = drift.get(key(labels));
    const a = accuracy.get(key(labels));
    return {
      model: labels.model,
      version: labels.version,
      totals: { requests: stats?.requestCount ?? 0, errors: stats?.errorCount ?? 0, items: stats?.items ?? 0, lastRequestMs: stats?.lastRequestMs ?? 0 },
      latencyMs: { p50: stats?.latencyMs.p50 ?? 0, p99: stats?.latencyMs.p99 ?? 0 },
      stepMs,
      points,
      drift: d ? {
        enoughInputs: d.enoughInputs, windowInputs: d.windowInputs, windowMs: d.windowMs, maxPsi: d.maxPsi, profileId: d.profileId,
        features: d.features.slice(0, MAX_FEATURES).map((f) => ({ feature: f.feature, psi: f.psi })),
        history: history.drift.since(labels, sinceMs),
      } : null,
      accuracy: a ? {
        labelled: a.labelled, correct: a.correct, recentAccuracy: a.recentAccuracy, recentLabelled: a.recentLabelled, feedback: { ...a.feedback },
        history: history.accuracy.since(labels, sinceMs),
      } : null,
      modelFeedback: modelFeedback.get(labels.model) ?? null,
      shadows: shadows.filter((r) => r.model === labels.model && r.of === labels.version),
    };
  });

  const workers = sources.workers.workers();
  const alerts = (sources.alerts?.firing() ?? []).map(alertView).sort((a, b) => a.startedMs - b.startedMs || (a.fingerprint < b.fingerprint ? -1 : 1));
  return {
    nowMs,
    sinceMs,
    measured: { timeline: sources.timeline !== undefined, drift: sources.drift !== undefined, accuracy: sources.accuracy !== undefined, alerts: sources.alerts !== undefined },
    models,
    modelsOmitted: all.size - shown.length,
    workers: workers.slice(0, MAX_PAGE_WORKERS),
    workersOmitted: Math.max(0, workers.length - MAX_PAGE_WORKERS),
    alerts: alerts.slice(0, MAX_PAGE_ALERTS),
    alertsOmitted: Math.max(0, alerts.length - MAX_PAGE_ALERTS),
  };
}

function feedbackByModel(readings: readonly AccuracyReading[]): Map<string, FeedbackCounts> {
  const sums = new Map<string, FeedbackCounts>();
  for (const r of readings) {
    const sum = sums.get(r.model) ?? { applied: 0, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 };
    sum.applied += r.feedback.applied;
    sum.unknown += r.feedback.unknown;
    sum.expired += r.feedback.expired;
    sum.mismatched += r.feedback.mismatched;
    sum.ambiguous += r.feedback.ambiguous;
    sums.set(r.model, sum);
  }
  return sums;
}

function alertView(a: Alert__Output): AlertView {
  return {
    fingerprint: a.fingerprint, rule: a.rule, kind: a.kind, severity: a.severity, model: a.model, version: a.version, feature: a.feature,
    value: a.value, threshold: a.threshold, summary: a.summary, startedMs: Number(a.startedMs),
  };
}

/**
 * The timeline's points merged into at most MAX_POINTS steps over [sinceMs, nowMs], from
 * the first step with traffic to the last complete one (the step running now would read
 * low: its records are still coming); a step without points had no requests (0 req/s, no
 * latency). Merged latencies: p50 weighted by requests, p99 the largest (a percentile of a
 * merged step cannot be had from the steps' percentiles; the largest never hides a spike).
 */
export function chartPoints(raw: readonly TimelinePoint[], sinceMs: number, nowMs: number, timelineStepMs?: number): { stepMs: number; points: ChartPoint[] } {
  const nativeStep = timelineStepMs ?? smallestGap(raw) ?? DEFAULT_STEP_MS;
  const stepMs = Math.max(nativeStep, Math.ceil((nowMs - sinceMs) / MAX_POINTS / nativeStep) * nativeStep);
  const last = slotOf(nowMs, stepMs) - 1;
  const inWindow = raw.filter((p) => p.atMs >= sinceMs && slotOf(p.atMs, stepMs) <= last);
  if (inWindow.length === 0) return { stepMs, points: [] };
  const merged = new Map<number, { requests: number; errors: number; p50Weighted: number; p50Requests: number; p99: number | null }>();
  for (const p of inWindow) {
    const s = slotOf(p.atMs, stepMs);
    const m = merged.get(s) ?? { requests: 0, errors: 0, p50Weighted: 0, p50Requests: 0, p99: null };
    m.requests += p.requests;
    m.errors += p.errors;
    if (p.p50Ms !== undefined && p.requests > 0) {
      m.p50Weighted += p.p50Ms * p.requests;
      m.p50Requests += p.requests;
    }
    if (p.p99Ms !== undefined) m.p99 = Math.max(m.p99 ?? 0, p.p99Ms);
    merged.set(s, m);
  }
  const points: ChartPoint[] = [];
  for (let s = slotOf(inWindow[0].atMs, stepMs); s <= last; s++) {
    const m = merged.get(s);
    points.push({
      atMs: s * stepMs,
      requestsPerS: (m?.requests ?? 0) / (stepMs / 1000),
      errorRate: m && m.requests > 0 ? m.errors / m.requests : null,
      p50Ms: m && m.p50Requests > 0 ? m.p50Weighted / m.p50Requests : null,
      p99Ms: m?.p99 ?? null,
    });
  }
  return { stepMs, points };
}

/** Steps on multiples of stepMs, not from sinceMs: the same points fall in the same steps from one update to the next. */
function slotOf(atMs: number, stepMs: number): number {
  return Math.floor(atMs / stepMs);
}

function smallestGap(points: readonly TimelinePoint[]): number | undefined {
  let gap: number | undefined;
  for (let i = 1; i < points.length; i++) {
    const d = points[i].atMs - points[i - 1].atMs;
    if (d > 0 && (gap === undefined || d < gap)) gap = d;
  }
  return gap;
}
