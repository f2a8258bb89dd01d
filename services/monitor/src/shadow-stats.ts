/**
 * How each shadow version compares with the version that answered the clients (see
 * TrafficPolicy): per model, shadow version and the version it shadowed, the copies it
 * answered, how many could be compared (both OK, with predicted labels: classifiers only),
 * how many agreed, and its latency (p50/p99 of the recent copies).
 *
 * Shadow records are not client requests: they are counted here only, never in the model's
 * request counts, usage per client, timeline, drift or accuracy (MonitorState.count).
 * Not in the snapshot: after a restart the monitor counts shadows from where it resumes.
 */
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import type { KnownModels } from './known-models.js';
import type { PrometheusText } from './prometheus-text.js';
import { SlidingWindow, type Percentiles } from './sliding-window.js';

/** Series (model, shadow version, shadowed version) kept at most; the records of more are counted as dropped. */
export const MAX_SHADOW_SERIES = 256;
/** Latency samples per series, and how long one counts. */
const LATENCY_SAMPLES = 2048;
const LATENCY_MAX_AGE_MS = 10 * 60_000;

/** One shadow version's comparison with the version it shadowed. */
export interface ShadowReading {
  model: string;
  /** The shadow version. */
  version: string;
  /** The version that answered the clients. */
  of: string;
  requests: number;
  /** Shadow answers that were errors. */
  errors: number;
  /** Copies with predicted labels on both sides to compare. */
  compared: number;
  agreed: number;
  /** agreed / compared; undefined when none could be compared (a model without labels: agreement unknown). */
  agreementRatio: number | undefined;
  /** Latency of the shadow's answers, in milliseconds. */
  latencyMs: Percentiles;
}

interface Series {
  model: string;
  version: string;
  of: string;
  requests: number;
  errors: number;
  compared: number;
  agreed: number;
  latencyUs: SlidingWindow;
}

export class ShadowStats {
  private readonly series = new Map<string, Series>();
  /** Shadow records beyond MAX_SHADOW_SERIES series. */
  dropped = 0;

  constructor(
    private readonly known: KnownModels,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one shadow record (one with shadowOfVersion set), of latency `latencyUs`, answered at `atMs`. */
  record(record: PredictionRecord__Output, latencyUs: number, atMs: number): void {
    // Labels only of versions workers announced: the shadowed version too is a label.
    const { model, version } = this.known.labelsOf(record.model, record.version);
    const of = this.known.labelsOf(record.model, record.shadowOfVersion).version;
    const id = `${model}\u0000${version}\u0000${of}`;
    let series = this.series.get(id);
    if (!series) {
      if (this.series.size >= MAX_SHADOW_SERIES) {
        this.dropped += 1;
        return;
      }
      series = { model, version, of, requests: 0, errors: 0, compared: 0, agreed: 0, latencyUs: new SlidingWindow(LATENCY_SAMPLES, LATENCY_MAX_AGE_MS) };
      this.series.set(id, series);
    }
    series.requests += 1;
    if (record.statusCode !== Status.OK) series.errors += 1;
    if (record.shadowCompared) {
      series.compared += 1;
      if (record.shadowAgreed) series.agreed += 1;
    }
    series.latencyUs.add(latencyUs, atMs);
  }

  /** Every series, by model, shadow version, shadowed version. */
  readings(): ShadowReading[] {
    const nowMs = this.now();
    return [...this.series.values()]
      .map((s) => {
        const us = s.latencyUs.percentiles(nowMs);
        return {
          model: s.model, version: s.version, of: s.of, requests: s.requests, errors: s.errors, compared: s.compared, agreed: s.agreed,
          agreementRatio: s.compared > 0 ? s.agreed / s.compared : undefined,
          latencyMs: { p50: us.p50 / 1000, p90: us.p90 / 1000, p99: us.p99 / 1000 },
        };
      })
      .sort((a, b) => a.model.localeCompare(b.model) || Number(a.version) - Number(b.version) || Number(a.of) - Number(b.of));
  }

  writePrometheus(out: PrometheusText): void {
    const readings = this.readings();
    const labels = (r: ShadowReading) => [['model', r.model], ['version', r.version], ['of', r.of]] as const;
    const counter = (name: string, help: string, value: (r: ShadowReading) => number) => {
      out.family(name, 'counter', help);
      for (const r of readings) out.sample(name, labels(r), value(r));
    };
    counter('infermesh_shadow_requests_total', 'Shadow copies answered (or failed), per model, shadow version and the version it shadowed (of). Not client requests.', (r) => r.requests);
    counter('infermesh_shadow_errors_total', 'Shadow copies answered with an error.', (r) => r.errors);
    counter('infermesh_shadow_compared_total', 'Shadow copies compared with the client\'s answer (both OK, with predicted labels).', (r) => r.compared);
    counter('infermesh_shadow_agreed_total', 'Shadow copies whose predicted labels were those the client was answered with.', (r) => r.agreed);
    out.family('infermesh_shadow_agreement_ratio', 'gauge', 'agreed / compared since the monitor started; absent while none could be compared (agreement unknown).');
    for (const r of readings) if (r.agreementRatio !== undefined) out.sample('infermesh_shadow_agreement_ratio', labels(r), r.agreementRatio);
    out.family('infermesh_shadow_latency_seconds', 'gauge', 'Latency of the shadow\'s recent answers at the router (quantile 0.5 and 0.99 of the last 10 minutes).');
    for (const r of readings) {
      out.sample('infermesh_shadow_latency_seconds', [...labels(r), ['quantile', '0.5']], r.latencyMs.p50 / 1000);
      out.sample('infermesh_shadow_latency_seconds', [...labels(r), ['quantile', '0.99']], r.latencyMs.p99 / 1000);
    }
    out.family('infermesh_shadow_records_dropped_total', 'counter', `Shadow records not counted: more than ${MAX_SHADOW_SERIES} series.`);
    out.sample('infermesh_shadow_records_dropped_total', [], this.dropped);
  }
}
