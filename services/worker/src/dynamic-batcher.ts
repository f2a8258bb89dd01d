/**
 * Triton-style dynamic batcher: requests for one model wait in a bounded queue and are
 * stacked into one session run when the batch is full, reaches a preferred size, or the
 * oldest request has waited max_queue_delay. A full queue refuses at once; a request
 * whose client went away is dropped before it is computed.
 */

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
}

export interface BatcherOptions {
  /** Most items (rows) in one run; 0 = the model does not batch, one request per run. */
  maxBatchSize: number;
  preferredBatchSizes: readonly number[];
  maxQueueDelayUs: number;
  maxQueueSize: number;
  /** Runs that may execute at once (model instances). */
  instances: number;
  /** false: every request runs alone, as soon as an instance is free. */
  dynamic: boolean;
}

export interface BatchResult<O> {
  output: O;
  queueNs: number;
  computeNs: number;
  /** Items in the run this request was part of. */
  batchSize: number;
}

export type BatchExecutor<I, O> = (inputs: I[], items: number) => Promise<O[]>;

interface Pending<I, O> {
  input: I;
  items: number;
  enqueuedAt: bigint;
  signal?: AbortSignal;
  resolve: (result: BatchResult<O>) => void;
  reject: (error: unknown) => void;
}

export class DynamicBatcher<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  /** Batches executing (bounded by instances). */
  private running = 0;
  /** Requests inside those batches. */
  private runningRequests = 0;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: BatcherOptions,
    private readonly execute: BatchExecutor<I, O>,
    private readonly onRun: (batchSize: number, computeNs: number) => void = () => {},
  ) {}

  /** Requests waiting, not yet running. */
  get depth(): number {
    return this.queue.length;
  }

  /** Requests executing now. */
  get inFlight(): number {
    return this.runningRequests;
  }

  submit(input: I, items: number, signal?: AbortSignal): Promise<BatchResult<O>> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.queue.length >= this.options.maxQueueSize) {
      return Promise.reject(new QueueFullError(`queue is full (${this.options.maxQueueSize} requests waiting); retry later`));
    }
    return new Promise((resolve, reject) => {
      // The listener goes when the request settles: a stream's signal outlives many requests.
      const onAbort = () => this.drop(pending);
      const settle = () => signal?.removeEventListener('abort', onAbort);
      const pending: Pending<I, O> = {
        input, items, enqueuedAt: process.hrtime.bigint(), signal,
        resolve: (result) => {
          settle();
          resolve(result);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      };
      this.queue.push(pending);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.schedule();
    });
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private drop(pending: Pending<I, O>): void {
    const index = this.queue.indexOf(pending);
    if (index === -1) return; // already running: its answer is simply not delivered
    this.queue.splice(index, 1);
    pending.reject(pending.signal?.reason);
    this.settleIdle();
  }

  private schedule(): void {
    while (this.running < this.options.instances && this.queue.length > 0) {
      const take = this.takeBatch();
      if (take === 0) break;
      const batch = this.queue.splice(0, take);
      void this.run(batch);
    }
  }

  /** How many queued requests to run now; 0 = wait for more (a timer is armed). */
  private takeBatch(): number {
    const { maxBatchSize, dynamic } = this.options;
    if (!dynamic || maxBatchSize === 0) return 1;
    let items = 0;
    let fit = 0;
    for (const pending of this.queue) {
      if (fit > 0 && items + pending.items > maxBatchSize) break;
      items += pending.items;
      fit++;
    }
    // The batch is as large as it can get, or the next request would not fit anyway.
    if (items >= maxBatchSize || fit < this.queue.length) return fit;
    const preferred = this.options.preferredBatchSizes;
    if (preferred.length > 0 && preferred.includes(items) && items === Math.max(...preferred.filter((p) => p <= maxBatchSize))) return fit;
    const waitedUs = Number(process.hrtime.bigint() - this.queue[0].enqueuedAt) / 1000;
    if (waitedUs >= this.options.maxQueueDelayUs) return fit;
    this.armTimer(this.options.maxQueueDelayUs - waitedUs);
    return 0;
  }

  private armTimer(us: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.schedule();
    }, Math.max(0, Math.ceil(us / 1000)));
  }

  private async run(batch: Pending<I, O>[]): Promise<void> {
    this.running++;
    this.runningRequests += batch.length;
    if (this.timer && this.queue.length === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const started = process.hrtime.bigint();
    const items = batch.reduce((sum, p) => sum + p.items, 0);
    try {
      const outputs = await this.execute(batch.map((p) => p.input), items);
      const computeNs = Number(process.hrtime.bigint() - started);
      this.onRun(items, computeNs);
      batch.forEach((pending, i) =>
        pending.resolve({ output: outputs[i], queueNs: Number(started - pending.enqueuedAt), computeNs, batchSize: items }),
      );
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      this.running--;
      this.runningRequests -= batch.length;
      this.schedule();
      this.settleIdle();
    }
  }

  private settleIdle(): void {
    if (this.queue.length === 0 && this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
