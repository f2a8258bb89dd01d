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

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.busy >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}
