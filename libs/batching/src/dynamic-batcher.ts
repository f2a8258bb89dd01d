/**
 * Triton-style dynamic batcher: requests for one model version wait in a bounded queue
 * and are stacked into one run, with the decision rule of Triton's `GetDynamicBatch`
 * (triton-inference-server/core, src/dynamic_batch_scheduler.cc) so that a model's
 * `dynamic_batching` settings mean here what they mean in Triton. The worker uses it to
 * stack requests into one onnxruntime run; the router, to coalesce concurrent client
 * requests into one call to a worker.
 */

/** Node stores a timer's delay as a signed 32-bit int; a longer one fires after 1 ms. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  /** RESOURCE_EXHAUSTED, as the services' status table (libs/grpc) reads it. */
  readonly grpcCode = 8;
}

/** The request's deadline had passed when it came to be batched; it was never run. */
export class DeadlineExceededError extends Error {
  override readonly name = 'DeadlineExceededError';
  /** DEADLINE_EXCEEDED, as the services' status table (libs/grpc) reads it. */
  readonly grpcCode = 4;
}

/** A model's Triton `max_batch_size`, `dynamic_batching` and instance count. */
export interface BatcherOptions {
  /** Most items (rows) in one run; 0 = the model does not batch, one request per run. */
  maxBatchSize: number;
  /** Sizes to run at as soon as they can be formed; none = max_batch_size, as in Triton. */
  preferredBatchSizes: readonly number[];
  maxQueueDelayUs: number;
  maxQueueSize: number;
  /** Runs that may execute at once (model instances). */
  instances: number;
  /** false: every request runs alone, as soon as an instance is free. */
  dynamic: boolean;
}

/**
 * Where the batcher reads the time and arms its timer; tests pass a fake one.
 * `now()` is monotonic nanoseconds as a bigint (a number loses nanoseconds after
 * 104 days of uptime); the default is `process.hrtime.bigint`, so deadlines given to
 * `submit` are on that clock unless another is passed. Timers count whole
 * milliseconds, so a wait for max_queue_delay is rounded up to one.
 */
export interface BatcherClock {
  now(): bigint;
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(timer: unknown): void;
}

const systemClock: BatcherClock = {
  now: () => process.hrtime.bigint(),
  setTimer: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

export interface SubmitOptions {
  /** Aborting removes the request from the queue; a running request runs to the end. */
  signal?: AbortSignal;
  /**
   * Nanoseconds the request already spent queued upstream (in the router): it counts
   * toward max_queue_delay, so the delay is not waited twice, and toward `queueNs`.
   */
  queuedNs?: number;
  /** Absolute, in the clock's nanoseconds; past it the request is refused, not run. */
  deadline?: bigint;
}

export interface BatchResult<O> {
  output: O;
  queueNs: number;
  computeNs: number;
  /** Items in the run this request was part of. */
  batchSize: number;
}

/** Runs the inputs as one batch of `items` rows; returns one output per input, in order. */
export type BatchExecutor<I, O> = (inputs: I[], items: number) => Promise<O[]>;

interface Pending<I, O> {
  input: I;
  items: number;
  enqueuedAt: bigint;
  deadline?: bigint;
  signal?: AbortSignal;
  resolve: (result: BatchResult<O>) => void;
  reject: (error: unknown) => void;
}

export class DynamicBatcher<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  private readonly batching: boolean;
  private readonly preferred: ReadonlySet<number>;
  /** Largest preferred size: a batch can grow to no preferred size past it. */
  private readonly largestPreferred: number;
  private readonly maxQueueDelayNs: bigint;
  /** Batches executing (bounded by instances). */
  private running = 0;
  /** Requests inside those batches. */
  private runningRequests = 0;
  private timer: unknown;
  /** When the armed timer is meant for; undefined = no timer armed. */
  private timerAt: bigint | undefined;
  private scheduleQueued = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: BatcherOptions,
    private readonly execute: BatchExecutor<I, O>,
    private readonly onRun: (batchSize: number, computeNs: number) => void = () => {},
    private readonly clock: BatcherClock = systemClock,
  ) {
    const { maxBatchSize } = options;
    this.batching = options.dynamic && maxBatchSize > 0;
    // Triton's config normalisation: no preferred sizes means max_batch_size is the one.
    const sizes = options.preferredBatchSizes.filter((size) => size >= 1 && size <= maxBatchSize);
    this.preferred = new Set(sizes.length > 0 ? sizes : [maxBatchSize]);
    this.largestPreferred = Math.max(...this.preferred);
    this.maxQueueDelayNs = BigInt(Math.max(0, Math.round(options.maxQueueDelayUs))) * 1000n;
  }

  /** Requests waiting, not yet running. */
  get depth(): number {
    return this.queue.length;
  }

  /** Requests executing now. */
  get inFlight(): number {
    return this.runningRequests;
  }

  /**
   * Queues `input` (`items` rows) for a run. Scheduling waits for a microtask, so
   * requests submitted in one synchronous stretch are batched together.
   */
  submit(input: I, items: number, options: SubmitOptions = {}): Promise<BatchResult<O>> {
    const { signal, queuedNs, deadline } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!Number.isSafeInteger(items) || items < 1) {
      return Promise.reject(new RangeError(`a request has at least one item, got ${items}`));
    }
    // Requests past their deadline give their places up before a live one is refused.
    if (this.queue.length >= this.options.maxQueueSize) this.dropExpired(this.clock.now());
    if (this.queue.length >= this.options.maxQueueSize) {
      return Promise.reject(new QueueFullError(`queue is full (${this.options.maxQueueSize} requests waiting); retry later`));
    }
    const alreadyQueued = queuedNs !== undefined && Number.isFinite(queuedNs) && queuedNs > 0 ? BigInt(Math.round(queuedNs)) : 0n;
    return new Promise((resolve, reject) => {
      // The listener goes when the request settles: a stream's signal outlives many requests.
      const onAbort = () => this.drop(pending);
      const settle = () => signal?.removeEventListener('abort', onAbort);
      const pending: Pending<I, O> = {
        input,
        items,
        enqueuedAt: this.clock.now() - alreadyQueued,
        deadline,
        signal,
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
      this.scheduleSoon();
    });
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private drop(pending: Pending<I, O>): void {
    const index = this.queue.indexOf(pending);
    if (index === -1) return; // already running: it runs to the end
    this.queue.splice(index, 1);
    pending.reject(pending.signal?.reason);
    // Without it, the requests behind may now form a preferred size.
    this.scheduleSoon();
  }

  private scheduleSoon(): void {
    if (this.scheduleQueued) return;
    this.scheduleQueued = true;
    queueMicrotask(() => {
      this.scheduleQueued = false;
      this.schedule();
    });
  }

  private schedule(): void {
    while (this.running < this.options.instances && this.queue.length > 0) {
      const take = this.takeBatch(this.clock.now());
      if (take === 0) break;
      void this.run(this.queue.splice(0, take));
    }
    if (this.queue.length === 0) this.disarmTimer();
    this.settleIdle();
  }

  /**
   * How many requests from the head of the queue to run now; 0 = none yet (a timer is
   * armed for when the oldest of them will have waited max_queue_delay). Requests whose
   * deadline has passed are rejected on the way, as Triton applies its timeout policy.
   *
   * Walking the queue in order while the batch stays within max_batch_size:
   * - the largest preferred size formed runs at once; so does the batch so far when
   *   the next request would carry it past every preferred size (it cannot grow into
   *   one), or past max_batch_size;
   * - otherwise it waits until the oldest request has waited max_queue_delay, then runs
   *   all that fits, preferred or not; a delay of 0 runs all that fits at once.
   */
  /** Refuses every queued request whose deadline has passed (DeadlineExceededError), never run. */
  private dropExpired(now: bigint): void {
    for (let i = 0; i < this.queue.length; ) {
      const pending = this.queue[i];
      if (pending.deadline !== undefined && pending.deadline <= now) {
        this.queue.splice(i, 1);
        pending.reject(new DeadlineExceededError(`deadline passed after ${(Number(now - pending.enqueuedAt) / 1e6).toFixed(3)} ms in the batch queue; not run`));
      } else {
        i++;
      }
    }
  }

  private takeBatch(now: bigint): number {
    let items = 0;
    let count = 0;
    let best = 0;
    let oldest = now;
    this.dropExpired(now);
    for (let i = 0; i < this.queue.length; ) {
      const pending = this.queue[i];
      if (!this.batching) return 1;
      // The first request always goes, even one larger than max_batch_size: it can only run alone.
      if (count > 0) {
        const grown = items + pending.items;
        if (best === 0 && grown > this.largestPreferred) best = count;
        if (grown > this.options.maxBatchSize) break;
      }
      items += pending.items;
      count++;
      i++;
      if (pending.enqueuedAt < oldest) oldest = pending.enqueuedAt;
      if (this.preferred.has(items)) best = count;
    }
    if (count === 0) return 0;
    const waited = now - oldest;
    const delayPassed = this.maxQueueDelayNs > 0n && waited >= this.maxQueueDelayNs;
    if (best > 0 && !delayPassed) return best;
    if (delayPassed || this.maxQueueDelayNs === 0n || items >= this.largestPreferred) return count;
    this.armTimer(oldest + this.maxQueueDelayNs, now);
    return 0;
  }

  /** Wakes the scheduler at `at` (clock ns), or at the earlier time already armed. */
  private armTimer(at: bigint, now: bigint): void {
    if (this.timerAt !== undefined && this.timerAt <= at) return;
    this.disarmTimer();
    // A delay past Node's limit is cut; the scheduler finds it early and arms again.
    const delayMs = Math.min(MAX_TIMER_DELAY_MS, Math.ceil(Number(at - now) / 1e6));
    this.timerAt = at;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = undefined;
      this.schedule();
    }, delayMs);
  }

  private disarmTimer(): void {
    if (this.timerAt === undefined) return;
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }

  private async run(batch: Pending<I, O>[]): Promise<void> {
    this.running++;
    this.runningRequests += batch.length;
    const started = this.clock.now();
    const items = batch.reduce((sum, p) => sum + p.items, 0);
    try {
      const outputs = await this.execute(batch.map((p) => p.input), items);
      if (outputs.length !== batch.length) {
        throw new Error(`batch executor returned ${outputs.length} outputs for ${batch.length} requests`);
      }
      const computeNs = Number(this.clock.now() - started);
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
