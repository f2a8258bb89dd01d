/**
 * The last `capacity` ids seen, oldest forgotten first. JetStream delivers at least
 * once (an ack lost on the way back means the record comes again), so the monitor
 * remembers recent request ids to count each request once. A redelivery comes within
 * seconds of the original, so a bounded window is enough and memory stays flat.
 */
export class RecentIds {
  // A Set iterates in insertion order, so its first element is the oldest id.
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** Remembers `id`; false when it was already in the window. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next();
      if (!oldest.done) this.ids.delete(oldest.value);
    }
    return true;
  }

  get size(): number {
    return this.ids.size;
  }
}
