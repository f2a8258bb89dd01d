/**
 * What the monitor says of a model's versions during a rollout: requests, errors and p99 per
 * version, and the alerts firing for the model. The monitor is optional to a rollout: when it
 * cannot be reached the status says so in one line and goes on.
 */
import type { Alert__Output, GetModelStatsResponse__Output, ListAlertsResponse__Output, ModelStats__Output } from '@infermesh/contracts';
import { call, describeError, monitorClient } from '../client.js';

/** A status must not wait long on a monitor that is down. */
const MONITOR_TIMEOUT_MS = 3_000;
/** Alert lines shown at most (a model with more has bigger problems than a rollout). */
const MAX_ALERT_LINES = 10;

export function formatMonitorFigures(model: string, stats: readonly ModelStats__Output[], firing: readonly Alert__Output[]): string[] {
  const versions = stats.filter((s) => s.model === model).sort((a, b) => Number(a.version) - Number(b.version));
  const lines = versions.map((s) => {
    const requests = Number(s.requestCount);
    const errors = Number(s.errorCount);
    const rate = requests > 0 ? ` (${((100 * errors) / requests).toFixed(1)} %)` : '';
    return `  version ${s.version}: ${requests} requests, ${errors} errors${rate}, p99 ${(s.latency?.p99Ms ?? 0).toFixed(2)} ms`;
  });
  const alerts = firing.filter((a) => a.model === model && a.state === 'firing');
  return [
    ...(lines.length > 0 ? lines : ['  no requests counted']),
    ...alerts.slice(0, MAX_ALERT_LINES).map((a) => `  firing: ${a.rule}: ${a.summary}`),
    ...(alerts.length > MAX_ALERT_LINES ? [`  and ${alerts.length - MAX_ALERT_LINES} more alerts firing`] : []),
  ];
}

/** The monitor's figures for `model` as lines, or one line saying why there are none. */
export async function monitorFigures(address: string, model: string): Promise<string[]> {
  const client = monitorClient(address);
  try {
    const { stats } = await call<{ model: string }, GetModelStatsResponse__Output>(client, client.GetModelStats, { model }, MONITOR_TIMEOUT_MS);
    const { alerts } = await call<{ includeResolved: boolean }, ListAlertsResponse__Output>(client, client.ListAlerts, { includeResolved: false }, MONITOR_TIMEOUT_MS);
    return [`monitor at ${address}:`, ...formatMonitorFigures(model, stats, alerts)];
  } catch (error) {
    // NOT_FOUND: the monitor has counted nothing of the model yet.
    if ((error as { code?: number }).code === 5) return [`monitor at ${address}: no requests of ${model} counted yet`];
    return [`monitor at ${address}: no figures (${describeError(error)})`];
  } finally {
    client.close();
  }
}
