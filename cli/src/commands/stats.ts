/**
 * infermesh stats: the monitor's per model and version statistics, then how each version is
 * watched (drift of its inputs, accuracy from feedback), then usage per client (API key id).
 */
import * as grpc from '@grpc/grpc-js';
import type {
  GetAccuracyResponse__Output, GetClientUsageResponse__Output, GetDriftResponse__Output, GetModelStatsResponse__Output, ModelAccuracy__Output, ModelDrift__Output,
} from '@infermesh/contracts';
import { call, monitorClient } from '../client.js';

/** The usual reading of the population stability index. */
export function psiReading(psi: number): string {
  return psi < 0.1 ? 'stable' : psi <= 0.25 ? 'moderate shift' : 'large shift';
}

export function describeDrift(d: ModelDrift__Output): string {
  const window = `${Math.round(Number(d.windowMs) / 1000)} s window, ${d.windowInputs} inputs`;
  if (!d.enoughInputs) return `drift     ${d.model}:${d.version}  ${window}: too few to judge`;
  const worst = d.features.reduce((a, b) => (b.psi > a.psi ? b : a), d.features[0]);
  return `drift     ${d.model}:${d.version}  ${window}: max PSI ${d.maxPsi.toFixed(3)}${worst ? ` (${worst.feature})` : ''}, ${psiReading(d.maxPsi)}`;
}

export function describeAccuracy(a: ModelAccuracy__Output): string | undefined {
  if (a.version === '' || Number(a.labelled) === 0) return undefined;
  return `accuracy  ${a.model}:${a.version}  ${a.recentAccuracy.toFixed(3)} over the last ${a.recentLabelled} labelled inputs (${a.correct} of ${a.labelled} correct in all)`;
}

/** What became of each model's feedback, over its versions and the feedback that joined none (version ""). */
export function describeFeedback(models: ModelAccuracy__Output[]): string[] {
  const outcomes = ['applied', 'unknown', 'expired', 'mismatched', 'ambiguous'] as const;
  const byModel = new Map<string, Record<(typeof outcomes)[number], number>>();
  for (const a of models) {
    const sum = byModel.get(a.model) ?? { applied: 0, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 };
    for (const o of outcomes) sum[o] += Number(a.feedback?.[o] ?? 0);
    byModel.set(a.model, sum);
  }
  return [...byModel].map(([model, sum]) => `feedback  ${model}  ${outcomes.map((o) => `${o} ${sum[o]}`).join(', ')}`);
}

/** A model named in the request with nothing to show is NOT_FOUND at the monitor: nothing to print. */
function orNothing<T>(empty: T): (error: unknown) => T {
  return (error) => {
    if ((error as grpc.ServiceError).code === grpc.status.NOT_FOUND) return empty;
    throw error;
  };
}

export async function showStats(address: string, model: string, json: boolean): Promise<void> {
  const client = monitorClient(address);
  try {
    const response = await call<{ model: string }, GetModelStatsResponse__Output>(client, client.GetModelStats, { model });
    const drift = await call<{ model: string }, GetDriftResponse__Output>(client, client.GetDrift, { model }).catch(orNothing({ models: [] }));
    const accuracy = await call<{ model: string }, GetAccuracyResponse__Output>(client, client.GetAccuracy, { model }).catch(orNothing({ models: [] }));
    const { usage } = await call<{ model: string }, GetClientUsageResponse__Output>(client, client.GetClientUsage, { model });
    if (json) {
      console.log(JSON.stringify({ stats: response.stats, drift: drift.models, accuracy: accuracy.models, usage }, null, 2));
      return;
    }
    for (const s of response.stats) {
      const l = s.latency;
      console.log(
        `${s.model}:${s.version}  requests ${s.requestCount}  errors ${s.errorCount}  items ${s.items}  latency p50 ${l?.p50Ms.toFixed(2)} ms  p90 ${l?.p90Ms.toFixed(2)} ms  p99 ${l?.p99Ms.toFixed(2)} ms`,
      );
    }
    const watched = [...drift.models.map(describeDrift), ...accuracy.models.flatMap((a) => describeAccuracy(a) ?? []), ...describeFeedback(accuracy.models)];
    if (watched.length > 0) console.log(`\n${watched.join('\n')}`);
    if (usage.length > 0) console.log('\nby client (API key id; "anonymous": requests without a key)');
    for (const u of usage) console.log(`${u.clientId}  ${u.model}  requests ${u.requestCount}  errors ${u.errorCount}  items ${u.items}`);
  } finally {
    client.close();
  }
}
