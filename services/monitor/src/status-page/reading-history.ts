/**
 * Drift and accuracy are measured as they stand now (a window, a recent count); the status
 * page charts them over time from samples it takes itself every few seconds, kept here:
 * per model version at most `capacity` samples, at most `maxSeries` versions, none older
 * than `maxAgeMs`.
 */
import type { SeriesLabels } from '../known-models.js';

const key = ({ model, version }: SeriesLabels) => `${model}\u0000${version}`;

export interface HistoryOptions {
  capacity: number;
  maxSeries: number;
  maxAgeMs: number;
}

export class ReadingHistory<T extends { atMs: number }> {
  private readonly series = new Map<string, T[]>();

  constructor(private readonly options: HistoryOptions) {}

  add(labels: SeriesLabels, sample: T): void {
    let samples = this.series.get(key(labels));
    if (!samples) {
      if (this.series.size >= this.options.maxSeries) this.forgetOld(sample.atMs);
      // Past the bound a new version goes unsampled: the ones charted keep their history.
      if (this.series.size >= this.options.maxSeries) return;
      this.series.set(key(labels), (samples = []));
    }
    samples.push(sample);
    if (samples.length > this.options.capacity) samples.splice(0, samples.length - this.options.capacity);
  }

  /** The samples of one version taken at or after `sinceMs`, oldest first. */
  since(labels: SeriesLabels, sinceMs: number): T[] {
    return (this.series.get(key(labels)) ?? []).filter((s) => s.atMs >= sinceMs);
  }

  get seriesCount(): number {
    return this.series.size;
  }

  /** Drops samples older than maxAgeMs, and versions left with none. */
  forgetOld(nowMs: number): void {
    const oldest = nowMs - this.options.maxAgeMs;
    for (const [k, samples] of this.series) {
      const kept = samples.findIndex((s) => s.atMs >= oldest);
      if (kept === -1) this.series.delete(k);
      else if (kept > 0) samples.splice(0, kept);
    }
  }
}
