/** infermesh.v1.Monitor: the monitor's counters and percentiles over gRPC. */
import type { GetModelStatsRequest__Output, GetModelStatsResponse, ModelStats } from '@infermesh/contracts';
import { invalidArgument, notFound, type UnaryHandler } from '@infermesh/grpc';
import type { ModelMetrics, VersionStats } from './model-metrics.js';
import type { Percentiles } from './sliding-window.js';

// A type alias, not an interface, so it stays assignable to ServiceHandlers' index signature.
export type MonitorHandlers = {
  GetModelStats: UnaryHandler<GetModelStatsRequest__Output, GetModelStatsResponse>;
};

export function monitorHandlers(metrics: ModelMetrics): MonitorHandlers {
  return {
    async GetModelStats({ model, version }) {
      if (!model) {
        if (version) throw invalidArgument('version needs a model: set model too, or leave both empty for every model');
        return { stats: metrics.models().flatMap((name) => metrics.stats(name).map(toModelStats)) };
      }
      const stats = metrics.stats(model, version || undefined);
      if (stats.length === 0) {
        throw notFound(version ? `no prediction records for model "${model}" version "${version}"` : `no prediction records for model "${model}"`);
      }
      return { stats: stats.map(toModelStats) };
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
