/** infermesh.v1.Monitor: the monitor's counters and percentiles, usage per client, drift and accuracy, over gRPC. */
import type {
  GetClientUsageRequest__Output, GetClientUsageResponse, GetModelStatsRequest__Output, GetModelStatsResponse, ModelStats,
  GetDriftRequest__Output, GetDriftResponse, GetAccuracyRequest__Output, GetAccuracyResponse, ModelDrift, ModelAccuracy,
} from '@infermesh/contracts';
import { invalidArgument, notFound, type UnaryHandler } from '@infermesh/grpc';
import { MAX_LABEL_LENGTH } from './known-models.js';
import type { MonitorState } from './monitor-state.js';
import type { VersionStats } from './model-metrics.js';
import type { Percentiles } from './sliding-window.js';
import type { DriftReading } from './drift.js';
import type { AccuracyReading } from './accuracy.js';
import { alertHandlers, type AlertHandlers } from './alerts/alert-api.js';
import type { Alerting } from './alerts/alerting.js';

// A type alias, not an interface, so it stays assignable to ServiceHandlers' index signature.
export type MonitorHandlers = {
  GetModelStats: UnaryHandler<GetModelStatsRequest__Output, GetModelStatsResponse>;
  GetClientUsage: UnaryHandler<GetClientUsageRequest__Output, GetClientUsageResponse>;
  GetDrift: UnaryHandler<GetDriftRequest__Output, GetDriftResponse>;
  GetAccuracy: UnaryHandler<GetAccuracyRequest__Output, GetAccuracyResponse>;
} & AlertHandlers;

/** A name longer than any label is named by its length only: messages never echo client strings unbounded. */
function quoted(name: string): string {
  return name.length <= MAX_LABEL_LENGTH ? `"${name}"` : `of ${name.length} characters`;
}

export function monitorHandlers(state: MonitorState, alerting: Alerting): MonitorHandlers {
  const metrics = state.models;
  return {
    ...alertHandlers(alerting),
    async GetModelStats({ model, version }) {
      if (!model) {
        if (version) throw invalidArgument('version needs a model: set model too, or leave both empty for every model');
        return { stats: metrics.models().flatMap((name) => metrics.stats(name).map(toModelStats)) };
      }
      const stats = metrics.stats(model, version || undefined);
      if (stats.length === 0) {
        throw notFound(version ? `no prediction records for model ${quoted(model)} version ${quoted(version)}` : `no prediction records for model ${quoted(model)}`);
      }
      return { stats: stats.map(toModelStats) };
    },
    async GetClientUsage({ clientId, model }) {
      if (clientId.length > MAX_LABEL_LENGTH) throw invalidArgument(`client_id is ${clientId.length} characters; client ids are at most ${MAX_LABEL_LENGTH}`);
      if (model.length > MAX_LABEL_LENGTH) throw invalidArgument(`model is ${model.length} characters; model names are at most ${MAX_LABEL_LENGTH}`);
      const rows = state.clients.rows({ clientId: clientId || undefined, model: model || undefined });
      if (rows.length === 0 && clientId) throw notFound(model ? `no prediction records for client ${quoted(clientId)} and model ${quoted(model)}` : `no prediction records for client ${quoted(clientId)}`);
      return { usage: rows.map((r) => ({ clientId: r.clientId, model: r.model, requestCount: r.requests, errorCount: r.errors, items: r.items })) };
    },
    async GetDrift(request) {
      const filter = modelFilter(request);
      const readings = state.drift.readings(filter);
      if (readings.length === 0 && filter.model !== undefined) throw notFound(`no drift reference for ${named(filter)}: its workers announce no profile`);
      return { models: readings.map(toModelDrift) };
    },
    async GetAccuracy(request) {
      const filter = modelFilter(request);
      const readings = state.accuracy.readings(filter);
      if (readings.length === 0 && filter.model !== undefined) throw notFound(`no feedback for ${named(filter)}`);
      return { models: readings.map(toModelAccuracy) };
    },
  };
}

/** The model and version a request names (empty: all); a version needs a model, and neither is longer than a label. */
function modelFilter({ model, version }: { model: string; version: string }): { model?: string; version?: string } {
  if (model.length > MAX_LABEL_LENGTH) throw invalidArgument(`model is ${model.length} characters; model names are at most ${MAX_LABEL_LENGTH}`);
  if (version.length > MAX_LABEL_LENGTH) throw invalidArgument(`version is ${version.length} characters; versions are at most ${MAX_LABEL_LENGTH}`);
  if (!model && version) throw invalidArgument('version needs a model: set model too, or leave both empty for every model');
  return { model: model || undefined, version: version || undefined };
}

function named({ model, version }: { model?: string; version?: string }): string {
  return version ? `model ${quoted(model ?? '')} version ${quoted(version)}` : `model ${quoted(model ?? '')}`;
}

function toModelDrift(r: DriftReading): ModelDrift {
  return {
    model: r.model,
    version: r.version,
    windowInputs: r.windowInputs,
    windowMs: r.windowMs,
    enoughInputs: r.enoughInputs,
    features: r.features.map((f) => ({ feature: f.feature, psi: f.psi, observed: f.observed, expected: f.expected })),
    maxPsi: r.maxPsi,
    profileId: r.profileId,
  };
}

function toModelAccuracy(r: AccuracyReading): ModelAccuracy {
  return {
    model: r.model,
    version: r.version,
    labelled: r.labelled,
    correct: r.correct,
    recentAccuracy: r.recentAccuracy,
    recentLabelled: r.recentLabelled,
    confusion: r.confusion,
    feedback: r.feedback,
  };
}

function toModelStats(s: VersionStats): ModelStats {
  return {
    model: s.model,
    version: s.version,
    requestCount: s.requestCount,
    errorCount: s.errorCount,
    items: s.items,
    lastRequestMs: s.lastRequestMs,
    latency: summary(s.latencyMs),
    queue: summary(s.queueMs),
    compute: summary(s.computeMs),
  };
}

function summary(p: Percentiles) {
  return { p50Ms: p.p50, p90Ms: p.p90, p99Ms: p.p99 };
}
