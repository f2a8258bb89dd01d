/**
 * The monitor process's own metrics (CPU, memory, event loop lag, GC): prom-client's
 * defaults, in a private registry so several monitors can run in one process.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * prom-client names three gauges `nodejs_active_{handles,requests,resources}_total`, which
 * `promtool check metrics` rejects (only counters end in `_total`). They are the sums of the
 * by-type gauges kept beside them (`sum(nodejs_active_handles)` reads the same), so they go.
 */
const GAUGES_NAMED_AS_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function processMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of GAUGES_NAMED_AS_COUNTERS) registry.removeSingleMetric(name);
  return registry;
}
