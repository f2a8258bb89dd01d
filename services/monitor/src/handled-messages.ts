/**
 * How far the monitor got through each recent PredictionBatch message, by the message's
 * stream sequence. JetStream delivers at least once: a handler error, or an ack lost on
 * the way back, brings a message again with the same stream sequence, and its records
 * must not count twice. Request ids cannot tell a redelivery from a new request: clients
 * choose them and reuse them (batch tools do), or send none. Progress is kept per record,
 * so a message that failed halfway resumes after the last record it counted.
 *
 * A redelivery comes within the consumer's ack wait (seconds), so remembering the last
 * `capacity` messages is enough and memory stays flat.
 */
export class HandledMessages {
  // A Map iterates in insertion order, so its first key is the oldest message.
  private readonly handled = new Map<number, number>();

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** Records of the message at `streamSequence` handled so far; 0 for a message not seen (or forgotten). */
  handledOf(streamSequence: number): number {
    return this.handled.get(streamSequence) ?? 0;
  }

  /** Remembers that the first `records` records of the message at `streamSequence` are handled. */
  markHandled(streamSequence: number, records: number): void {
    const known = this.handled.has(streamSequence);
    this.handled.set(streamSequence, records);
    if (!known && this.handled.size > this.capacity) {
      const oldest = this.handled.keys().next();
      if (!oldest.done) this.handled.delete(oldest.value);
    }
  }

  get size(): number {
    return this.handled.size;
  }
}
