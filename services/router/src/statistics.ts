/** ModelStatistics at the router: each holder's statistics, summed per model version. */
import type { ModelStatistics, ModelStatistics__Output, StatisticDuration__Output } from '@infermesh/contracts';

type Duration = { count: string; ns: string };

const add = (a: Duration | null | undefined, b: StatisticDuration__Output | null | undefined): Duration => ({
  count: String(BigInt(a?.count ?? 0) + BigInt(b?.count ?? 0)),
  ns: String(BigInt(a?.ns ?? 0) + BigInt(b?.ns ?? 0)),
});

const DURATIONS = ['success', 'fail', 'queue', 'computeInput', 'computeInfer', 'computeOutput', 'cacheHit', 'cacheMiss'] as const;

export function mergeStatistics(all: readonly ModelStatistics__Output[]): ModelStatistics[] {
  const merged = new Map<string, ModelStatistics & { inferenceStats: Record<string, Duration>; batches: Map<string, Duration> }>();
  for (const stats of all) {
    const key = `${stats.name}\u0000${stats.version}`;
    let entry = merged.get(key);
    if (!entry) {
      entry = { name: stats.name, version: stats.version, lastInference: '0', inferenceCount: '0', executionCount: '0', inferenceStats: {}, batches: new Map() };
      merged.set(key, entry);
    }
    entry.lastInference = String(Math.max(Number(entry.lastInference), Number(stats.lastInference)));
    entry.inferenceCount = String(BigInt(entry.inferenceCount as string) + BigInt(stats.inferenceCount));
    entry.executionCount = String(BigInt(entry.executionCount as string) + BigInt(stats.executionCount));
    for (const field of DURATIONS) entry.inferenceStats[field] = add(entry.inferenceStats[field] as Duration | undefined, stats.inferenceStats?.[field]);
    for (const batch of stats.batchStats) entry.batches.set(batch.batchSize, add(entry.batches.get(batch.batchSize), batch.computeInfer));
  }
  return [...merged.values()]
    .sort((a, b) => a.name!.localeCompare(b.name!) || Number(a.version) - Number(b.version))
    .map(({ batches, ...entry }) => ({
      ...entry,
      batchStats: [...batches].sort(([a], [b]) => Number(a) - Number(b)).map(([batchSize, computeInfer]) => ({ batchSize, computeInfer })),
    }));
}
