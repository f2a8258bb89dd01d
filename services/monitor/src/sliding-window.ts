/**
 * The most recent samples of one quantity (at most `capacity`, none older than
 * `maxAgeMs`), with exact percentiles over them.
 *
 * Why not read prom-client's Summary: its t-digest gives approximations, and
 * GetModelStats answers people comparing against their own measurements; a few
 * thousand sorted numbers per query is cheap and exact.
 */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

export const NO_PERCENTILES: Readonly<Percentiles> = Object.freeze({ p50: 0, p90: 0, p99: 0 });

export class SlidingWindow {
  // Ring buffers: slot `next` is overwritten next, so memory never grows past capacity.
  private readonly values: Float64Array;
  private readonly times: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(
    private readonly capacity: number,
    private readonly maxAgeMs: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.values = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
  }

  add(value: number, atMs: number): void {
    this.values[this.next] = value;
    this.times[this.next] = atMs;
    this.next = (this.next + 1) % this.capacity;
    this.filled = Math.min(this.filled + 1, this.capacity);
  }

  /**
   * The samples no older than `maxAgeMs` at `nowMs`, oldest first, as [value, age in ms]
   * pairs flattened (for a snapshot: ages are small numbers, times are not).
   */
  samples(nowMs: number): number[] {
    const out: number[] = [];
    for (let k = 0; k < this.filled; k++) {
      const i = (this.next - this.filled + k + this.capacity) % this.capacity;
      if (this.times[i] >= nowMs - this.maxAgeMs) out.push(this.values[i], nowMs - this.times[i]);
    }
    return out;
  }

  /** Adds the samples of `samples(savedAtMs)` back, at their times. */
  restore(samples: readonly number[], savedAtMs: number): void {
    for (let k = 0; k + 1 < samples.length; k += 2) this.add(samples[k], savedAtMs - samples[k + 1]);
  }

  /** Nearest-rank percentiles (each one a sample that was observed); zeros when empty. */
  percentiles(nowMs: number): Percentiles {
    const oldest = nowMs - this.maxAgeMs;
    const recent: number[] = [];
    for (let i = 0; i < this.filled; i++) if (this.times[i] >= oldest) recent.push(this.values[i]);
    if (recent.length === 0) return { ...NO_PERCENTILES };
    recent.sort((a, b) => a - b);
    const rank = (p: number) => recent[Math.max(0, Math.ceil(p * recent.length) - 1)];
    return { p50: rank(0.5), p90: rank(0.9), p99: rank(0.99) };
  }
}
