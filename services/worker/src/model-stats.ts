/** Per model version counters in the shape of Triton's ModelStatistics. */
import type { ModelStatistics } from '@infermesh/contracts';

interface Duration {
  count: number;
  ns: number;
}

const zero = (): Duration => ({ count: 0, ns: 0 });
const wire = (d: Duration) => ({ count: String(d.count), ns: String(d.ns) });

export class ModelStats {
  private success = zero();
  private fail = zero();
  private queue = zero();
  private compute = zero();
  private inferenceCount = 0;
  private executionCount = 0;
  private lastInferenceMs = 0;
  private readonly batches = new Map<number, Duration>();

  recordSuccess(items: number, queueNs: number, computeNs: number): void {
    this.success.count++;
    this.success.ns += queueNs + computeNs;
    this.queue.count++;
    this.queue.ns += queueNs;
    this.compute.count++;
    this.compute.ns += computeNs;
    this.inferenceCount += items;
    this.lastInferenceMs = Date.now();
  }

  recordFailure(): void {
    this.fail.count++;
    this.lastInferenceMs = Date.now();
  }

  recordRun(batchSize: number, computeNs: number): void {
    this.executionCount++;
    const entry = this.batches.get(batchSize) ?? zero();
    entry.count++;
    entry.ns += computeNs;
    this.batches.set(batchSize, entry);
  }

  /** Batch sizes run so far and how often. */
  batchSizes(): Map<number, number> {
    return new Map([...this.batches].map(([size, d]) => [size, d.count]));
  }

  toProto(name: string, version: string): ModelStatistics {
    return {
      name,
      version,
      lastInference: String(this.lastInferenceMs),
      inferenceCount: String(this.inferenceCount),
      executionCount: String(this.executionCount),
      inferenceStats: {
        success: wire(this.success),
        fail: wire(this.fail),
        queue: wire(this.queue),
        computeInput: wire(zero()),
        computeInfer: wire(this.compute),
        computeOutput: wire(zero()),
        cacheHit: wire(zero()),
        cacheMiss: wire(zero()),
      },
      batchStats: [...this.batches].sort(([a], [b]) => a - b).map(([size, d]) => ({ batchSize: String(size), computeInfer: wire(d) })),
    };
  }
}
