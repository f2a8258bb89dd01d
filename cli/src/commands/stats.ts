/** infermesh stats: the monitor's per model and version statistics. */
import type { GetModelStatsResponse__Output } from '@infermesh/contracts';
import { call, monitorClient } from '../client.js';

export async function showStats(address: string, model: string, json: boolean): Promise<void> {
  const client = monitorClient(address);
  try {
    const response = await call<{ model: string }, GetModelStatsResponse__Output>(client, client.GetModelStats, { model });
    if (json) {
      console.log(JSON.stringify(response.stats, null, 2));
      return;
    }
    for (const s of response.stats) {
      const l = s.latency;
      console.log(
        `${s.model}:${s.version}  requests ${s.requestCount}  errors ${s.errorCount}  items ${s.items}  latency p50 ${l?.p50Ms.toFixed(2)} ms  p90 ${l?.p90Ms.toFixed(2)} ms  p99 ${l?.p99Ms.toFixed(2)} ms`,
      );
    }
  } finally {
    client.close();
  }
}
