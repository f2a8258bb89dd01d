/** infermesh.v1.Monitor: the monitor's counters and percentiles, and usage per client, over gRPC. */
import type {
  GetClientUsageRequest__Output, GetClientUsageResponse, GetModelStatsRequest__Output, GetModelStatsResponse, ModelStats,
} from '@infermesh/contracts';
import { invalidArgument, notFound, type UnaryHandler } from '@infermesh/grpc';
import { MAX_LABEL_LENGTH } from './known-models.js';
import type { MonitorState } from './monitor-state.js';
import type { VersionStats } from './model-metrics.js';
import type { Percentiles } from './sliding-window.js';

// A type alias, not an interface, so it stays assignable to ServiceHandlers' index signature.
export type MonitorHandlers = {
  GetModelStats: UnaryHandler<GetModelStatsRequest__Output, GetModelStatsResponse>;
  GetClientUsage: UnaryHandler<GetClientUsageRequest__Output, GetClientUsageResponse>;
};

/** A name longer than any label is named by its length only: messages never echo client strings unbounded. */
function quoted(name: string): string {
  return name.length <= MAX_LABEL_LENGTH ? `"${name}"` : `of ${name.length} characters`;
}

export function monitorHandlers(state: MonitorState): MonitorHandlers {
  const metrics = state.models;
  return {
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
