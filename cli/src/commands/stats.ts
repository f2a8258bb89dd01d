/** infermesh stats: the monitor's per model and version statistics, then usage per client (API key id). */
import type { GetClientUsageResponse__Output, GetModelStatsResponse__Output } from '@infermesh/contracts';
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
    const { usage } = await call<{ model: string }, GetClientUsageResponse__Output>(client, client.GetClientUsage, { model });
    if (usage.length > 0) console.log('\nby client (API key id; "anonymous": requests without a key)');
    for (const u of usage) console.log(`${u.clientId}  ${u.model}  requests ${u.requestCount}  errors ${u.errorCount}  items ${u.items}`);
  } finally {
    client.close();
  }
}
