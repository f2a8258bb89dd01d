/**
 * The dynamic batcher's decision rule (Triton's GetDynamicBatch) and request lifecycle,
 * on a fake clock: time moves only when a test advances it, so nothing really waits.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  DeadlineExceededError, DynamicBatcher, QueueFullError,
  type BatchExecutor, type BatcherClock, type BatcherOptions, type BatchResult,
} from './index.js';

const MS = 1_000_000n;

/** Timers fire only inside `advance`, in the order they are due. */
class FakeClock implements BatcherClock {
  /** Every delay a timer was armed with, in ms. */
  readonly armedDelaysMs: number[] = [];
  private nowNs = 0n;
  private nextId = 1;
  private readonly timers = new Map<number, { at: bigint; callback: () => void }>();

  now(): bigint {
    return this.nowNs;
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.armedDelaysMs.push(delayMs);
    this.timers.set(id, { at: this.nowNs + BigInt(delayMs) * MS, callback });
    return id;
  }

  clearTimer(timer: unknown): void {
    this.timers.delete(timer as number);
  }

  advance(ns: bigint): void {
    const until = this.nowNs + ns;
    // A batcher that re-arms a timer for "now" forever would hang the test instead of failing it.
    for (let fired = 0; ; fired++) {
      if (fired > 1000) throw new Error('timers kept firing without time passing');
      const due = [...this.timers].filter(([, t]) => t.at <= until).sort(([, a], [, b]) => (a.at < b.at ? -1 : 1))[0];
      if (!due) break;
      const [id, timer] = due;
      this.timers.delete(id);
      this.nowNs = timer.at;
      timer.callback();
    }
    this.nowNs = until;
  }
}

interface Run {
  inputs: string[];
  items: number;
  finish(): void;
  fail(error: Error): void;
}

const DEFAULTS: BatcherOptions = {
  maxBatchSize: 8,
  preferredBatchSizes: [],
  maxQueueDelayUs: 1000,
  maxQueueSize: 100,
  instances: 1,
  dynamic: true,
};

/** A batcher whose runs stay in progress until the test finishes or fails them. */
function setup(options: Partial<BatcherOptions> = {}) {
  const clock = new FakeClock();
  const runs: Run[] = [];
  const execute: BatchExecutor<string, string> = (inputs, items) =>
    new Promise((resolve, reject) => {
      runs.push({ inputs, items, finish: () => resolve(inputs.map((input) => `out:${input}`)), fail: reject });
    });
  const batcher = new DynamicBatcher<string, string>({ ...DEFAULTS, ...options }, execute, undefined, clock);
  /** The inputs of each run so far. */
  const batches = () => runs.map((run) => run.inputs);
  return { batcher, clock, runs, batches };
}

/** Lets microtasks and promise callbacks run (the batcher schedules in a microtask). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Marks a promise's rejection as handled and hands back how it settled. */
function outcome<T>(promise: Promise<T>): () => { value?: T; error?: unknown; settled: boolean } {
  const state: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { value, settled: true }),
    (error: unknown) => Object.assign(state, { error, settled: true }),
  );
  return () => state;
}

describe('forming a batch', () => {
  it('runs at once when the queued requests form the largest preferred size', async () => {
    const { batcher, batches } = setup({ preferredBatchSizes: [2, 4] });
    for (const input of ['a', 'b', 'c', 'd']) void batcher.submit(input, 1);
    await settle();
    expect(batches()).toEqual([['a', 'b', 'c', 'd']]);
  });

  it('runs a smaller preferred size at once when a larger one cannot be formed', async () => {
    const { batcher, batches } = setup({ preferredBatchSizes: [2, 4] });
    for (const input of ['a', 'b', 'c']) void batcher.submit(input, 1);
    await settle();
    expect(batches()).toEqual([['a', 'b']]);
  });

  it('runs a full batch of max_batch_size items at once', async () => {
    const { batcher, runs } = setup({ maxBatchSize: 4 });
    void batcher.submit('a', 2);
    void batcher.submit('b', 2);
    await settle();
    expect(runs.map((run) => [run.inputs, run.items])).toEqual([[['a', 'b'], 4]]);
  });

  it('runs what fits at once when the next request would not fit', async () => {
    const { batcher, batches } = setup({ maxBatchSize: 4 });
    void batcher.submit('a', 3);
    void batcher.submit('b', 2);
    await settle();
    expect(batches()).toEqual([['a']]);
  });

  it('runs at once when the next request would carry the batch past every preferred size', async () => {
    const { batcher, batches } = setup({ maxBatchSize: 16, preferredBatchSizes: [4] });
    void batcher.submit('a', 3);
    void batcher.submit('b', 2);
    await settle();
    expect(batches()).toEqual([['a']]);
  });

  it('waits until the oldest request has waited max_queue_delay, then runs what is queued', async () => {
    const { batcher, clock, batches } = setup({ maxQueueDelayUs: 1000 });
    void batcher.submit('a', 1);
    void batcher.submit('b', 1);
    await settle();
    clock.advance(MS - 1n);
    await settle();
    expect(batches()).toEqual([]);
    clock.advance(1n);
    await settle();
    expect(batches()).toEqual([['a', 'b']]);
  });

  it('runs all that fits, past the largest preferred size, once max_queue_delay has passed', async () => {
    const { batcher, clock, runs, batches } = setup({ preferredBatchSizes: [2], maxQueueDelayUs: 1000 });
    void batcher.submit('a', 8);
    await settle();
    for (const input of ['b', 'c', 'd']) void batcher.submit(input, 1);
    clock.advance(MS);
    runs[0].finish();
    await settle();
    expect(batches()).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('is greedy when max_queue_delay is 0: a lone request runs at once', async () => {
    const { batcher, batches } = setup({ maxQueueDelayUs: 0 });
    void batcher.submit('a', 1);
    await settle();
    expect(batches()).toEqual([['a']]);
  });

  it('batches requests submitted in the same tick together', async () => {
    const { batcher, batches } = setup({ maxQueueDelayUs: 0 });
    for (const input of ['a', 'b', 'c']) void batcher.submit(input, 1);
    await settle();
    expect(batches()).toEqual([['a', 'b', 'c']]);
  });

  it('never arms a timer past 2^31-1 ms, and arms again until max_queue_delay has passed', async () => {
    const limitMs = 2 ** 31 - 1;
    const { batcher, clock, batches } = setup({ maxQueueDelayUs: (limitMs + 1000) * 1000 });
    void batcher.submit('a', 1);
    await settle();
    clock.advance(BigInt(limitMs) * MS);
    await settle();
    expect(batches()).toEqual([]);
    clock.advance(1000n * MS);
    await settle();
    expect(clock.armedDelaysMs).toEqual([limitMs, 1000]);
    expect(batches()).toEqual([['a']]);
  });
});

describe('instances', () => {
  it('runs no more batches at once than there are instances', async () => {
    const { batcher, batches } = setup({ maxBatchSize: 1, instances: 2 });
    for (const input of ['a', 'b', 'c']) void batcher.submit(input, 1);
    await settle();
    expect(batches()).toEqual([['a'], ['b']]);
    expect(batcher.depth).toBe(1);
  });

  it('forms the next batch from the requests queued while every instance was busy', async () => {
    const { batcher, runs, batches } = setup({ maxQueueDelayUs: 0 });
    void batcher.submit('a', 1);
    await settle();
    for (const input of ['b', 'c', 'd']) void batcher.submit(input, 1);
    await settle();
    expect(batches()).toEqual([['a']]);
    runs[0].finish();
    await settle();
    expect(batches()).toEqual([['a'], ['b', 'c', 'd']]);
  });
});

describe('a request', () => {
  it('that aborts while queued is rejected with the signal reason and never run', async () => {
    const { batcher, clock, batches } = setup();
    const controller = new AbortController();
    const a = outcome(batcher.submit('a', 1, { signal: controller.signal }));
    void batcher.submit('b', 1);
    await settle();
    const reason = new Error('client went away');
    controller.abort(reason);
    clock.advance(MS);
    await settle();
    expect(a().error).toBe(reason);
    expect(batches()).toEqual([['b']]);
  });

  it('that aborts while queued lets the requests behind it form a preferred size at once', async () => {
    const { batcher, batches } = setup({ preferredBatchSizes: [2, 4] });
    const controller = new AbortController();
    void batcher.submit('a', 1, { signal: controller.signal }).catch(() => {});
    void batcher.submit('b', 2);
    await settle();
    expect(batches()).toEqual([]);
    controller.abort();
    await settle();
    expect(batches()).toEqual([['b']]);
  });

  it('that aborts while running runs to the end and gets its result', async () => {
    const { batcher, runs } = setup({ maxQueueDelayUs: 0 });
    const controller = new AbortController();
    const a = outcome(batcher.submit('a', 1, { signal: controller.signal }));
    await settle();
    controller.abort();
    runs[0].finish();
    await settle();
    expect(a().value?.output).toBe('out:a');
  });

  it('removes its abort listener once it settles', async () => {
    const { batcher, runs } = setup({ maxQueueDelayUs: 0 });
    const { signal } = new AbortController();
    const a = batcher.submit('a', 1, { signal });
    expect(getEventListeners(signal, 'abort')).toHaveLength(1);
    await settle();
    runs[0].finish();
    await a;
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('that already queued upstream for queuedNs waits only the rest of max_queue_delay', async () => {
    const { batcher, clock, batches } = setup({ maxQueueDelayUs: 5000 });
    void batcher.submit('a', 1, { queuedNs: 3_000_000 });
    await settle();
    clock.advance(2n * MS - 1n);
    await settle();
    expect(batches()).toEqual([]);
    clock.advance(1n);
    await settle();
    expect(batches()).toEqual([['a']]);
  });

  it('reports the time it queued upstream (queuedNs) in its queueNs', async () => {
    const { batcher, clock, runs } = setup({ maxQueueDelayUs: 5000 });
    const a = batcher.submit('a', 1, { queuedNs: 3_000_000 });
    await settle();
    clock.advance(2n * MS);
    await settle();
    runs[0].finish();
    expect((await a).queueNs).toBe(5_000_000);
  });

  it('whose deadline has passed when the batch forms is rejected with DeadlineExceededError and never run', async () => {
    const { batcher, clock, batches } = setup({ maxQueueDelayUs: 1000 });
    const a = outcome(batcher.submit('a', 1, { deadline: 500_000n }));
    void batcher.submit('b', 1);
    await settle();
    clock.advance(MS);
    await settle();
    expect(a().error).toBeInstanceOf(DeadlineExceededError);
    expect((a().error as Error).name).toBe('DeadlineExceededError');
    expect(batches()).toEqual([['b']]);
  });

  it('is refused at once with QueueFullError when max_queue_size requests wait', async () => {
    const { batcher } = setup({ maxQueueSize: 2 });
    void batcher.submit('a', 1);
    void batcher.submit('b', 1);
    const c = batcher.submit('c', 1);
    await expect(c).rejects.toBeInstanceOf(QueueFullError);
    await expect(c).rejects.toThrow('queue is full (2 requests waiting); retry later');
  });

  it('takes the place of a waiting request whose deadline has passed when the queue is full', async () => {
    const { batcher, clock, batches, runs } = setup({ maxQueueSize: 2, maxQueueDelayUs: 10_000 });
    const a = outcome(batcher.submit('a', 1, { deadline: MS }));
    void batcher.submit('b', 1);
    await settle();
    clock.advance(2n * MS);
    const c = outcome(batcher.submit('c', 1));
    await settle();
    expect(a().error).toBeInstanceOf(DeadlineExceededError);
    expect(c().error).toBeUndefined();
    clock.advance(10n * MS);
    await settle();
    runs[0].finish();
    await settle();
    expect(batches()).toEqual([['b', 'c']]);
    expect(c().value?.output).toBe('out:c');
  });

  it('gets its output, queueNs, computeNs and the items of its run as batchSize', async () => {
    const { batcher, clock, runs } = setup({ maxQueueDelayUs: 1000 });
    const a = batcher.submit('a', 3);
    void batcher.submit('b', 2);
    await settle();
    clock.advance(MS);
    await settle();
    clock.advance(5n * MS);
    runs[0].finish();
    expect(await a).toEqual<BatchResult<string>>({ output: 'out:a', queueNs: 1_000_000, computeNs: 5_000_000, batchSize: 5 });
  });
});

describe('a failing executor', () => {
  it('rejects every request of its batch with its error', async () => {
    const { batcher, runs } = setup({ maxQueueDelayUs: 0 });
    const a = outcome(batcher.submit('a', 1));
    const b = outcome(batcher.submit('b', 1));
    await settle();
    const error = new Error('session run failed');
    runs[0].fail(error);
    await settle();
    expect([a().error, b().error]).toEqual([error, error]);
  });

  it('leaves the batcher running the next batch', async () => {
    const { batcher, runs, batches } = setup({ maxQueueDelayUs: 0 });
    void batcher.submit('a', 1).catch(() => {});
    await settle();
    runs[0].fail(new Error('session run failed'));
    await settle();
    const b = batcher.submit('b', 1);
    await settle();
    runs[1].finish();
    expect((await b).output).toBe('out:b');
    expect(batches()).toEqual([['a'], ['b']]);
  });
});

describe('without dynamic batching', () => {
  it('runs every request alone', async () => {
    const { batcher, runs, batches } = setup({ dynamic: false });
    for (const input of ['a', 'b']) void batcher.submit(input, 1);
    await settle();
    runs[0].finish();
    await settle();
    expect(batches()).toEqual([['a'], ['b']]);
  });

  it('runs every request alone when max_batch_size is 0', async () => {
    const { batcher, runs, batches } = setup({ maxBatchSize: 0 });
    for (const input of ['a', 'b']) void batcher.submit(input, 1);
    await settle();
    runs[0].finish();
    await settle();
    expect(batches()).toEqual([['a'], ['b']]);
  });
});

describe('depth, inFlight and idle()', () => {
  it('counts queued requests in depth and running ones in inFlight', async () => {
    const { batcher } = setup({ maxBatchSize: 2, maxQueueDelayUs: 0 });
    for (const input of ['a', 'b', 'c']) void batcher.submit(input, 1);
    await settle();
    expect([batcher.depth, batcher.inFlight]).toEqual([1, 2]);
  });

  it('idle() resolves once nothing is queued or running', async () => {
    const { batcher, runs } = setup({ maxQueueDelayUs: 0 });
    void batcher.submit('a', 1);
    const idle = outcome(batcher.idle());
    await settle();
    expect(idle().settled).toBe(false);
    runs[0].finish();
    await settle();
    expect(idle().settled).toBe(true);
  });
});
