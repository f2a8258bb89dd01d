/**
 * At most `size` pieces of work at once; the rest wait their turn, first come first served.
 * A slot that frees passes straight to the next waiter, so a newcomer cannot overtake.
 */
export class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`slots: size ${size}; expected a whole number of at least 1`);
  }

  /** Work running now. */
  get inUse(): number {
    return this.busy;
  }

  /** Work waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Runs `work` in a slot. Work whose `signal` aborts while it waits leaves the queue and
   * rejects with the signal's reason: the slot goes to work someone still waits for.
   */
  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.busy >= this.size) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const at = this.waiting.indexOf(take);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(signal!.reason);
        };
        const take = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        this.waiting.push(take);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.busy++;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}
