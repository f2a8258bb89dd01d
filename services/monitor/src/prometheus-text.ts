/**
 * Prometheus text exposition (format 0.0.4) of the monitor's own state. The monitor keeps
 * its counts as plain data, not in prom-client metric objects, because they must be saved
 * in a snapshot and restored after a restart, and prom-client cannot restore a histogram's
 * buckets; prom-client still serves the process metrics beside these.
 */

/** The counts of one histogram series: per bucket in memory, cumulative when written out. */
export class BucketCounts {
  /** One per bound, then the +Inf bucket. Not cumulative. */
  readonly counts: number[];
  sum = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.counts[i] += 1;
    this.sum += value;
  }

  get count(): number {
    return this.counts.reduce((a, b) => a + b, 0);
  }

  toJSON(): { counts: number[]; sum: number } {
    return { counts: [...this.counts], sum: this.sum };
  }

  /** Adds saved counts to these; false (and unchanged) when they were made with other bounds. */
  add(saved: { counts: number[]; sum: number }): boolean {
    if (saved.counts.length !== this.counts.length) return false;
    saved.counts.forEach((c, i) => (this.counts[i] += c));
    this.sum += saved.sum;
    return true;
  }
}

export type Labels = readonly (readonly [string, string])[];

function escape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function labelText(labels: Labels): string {
  return labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
}

export class PrometheusText {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram' | 'summary', help: string): this {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${labelText(labels)} ${formatValue(value)}`);
    return this;
  }

  /** The `_bucket` (cumulative, `le` first), `_sum` and `_count` samples of one series. */
  histogram(name: string, labels: Labels, buckets: BucketCounts): this {
    let cumulative = 0;
    buckets.bounds.forEach((bound, i) => {
      cumulative += buckets.counts[i];
      this.sample(`${name}_bucket`, [['le', String(bound)], ...labels], cumulative);
    });
    cumulative += buckets.counts[buckets.bounds.length];
    this.sample(`${name}_bucket`, [['le', '+Inf'], ...labels], cumulative);
    this.sample(`${name}_sum`, labels, buckets.sum);
    return this.sample(`${name}_count`, labels, cumulative);
  }

  toString(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }
}
