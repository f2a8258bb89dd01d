/**
 * Publishes one PredictionRecord per request to JetStream, off the request path and in
 * batches: records of one model wait up to `lingerMs` (or until `batchSize` of them) and
 * are stored as one PredictionBatch message. One JetStream round trip per request was the
 * largest cost of a request at the router (docs/performance.md); per batch it is small.
 *
 * Each record carries the traceparent of its request (set by the caller), so the monitor
 * continues every prediction's own trace; a span per publish would only add work, since
 * the publish of a batch is not any one request's. Batches wait in a bounded buffer while
 * JetStream is unreachable and are retried with the same message id, so a retry never
 * stores a batch twice.
 */
import { randomUUID } from 'node:crypto';
import { events, type Bus } from '@infermesh/bus';
import type { PredictionRecord } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';

interface Batch {
  id: string;
  model: string;
  records: PredictionRecord[];
}

export interface PublisherOptions {
  /** Records waiting (buffered or being stored) at most; beyond this the oldest batch is dropped and logged. */
  capacity: number;
  batchSize?: number;
  lingerMs?: number;
  /** Batches being stored at once. */
  concurrency?: number;
}

export class PredictionPublisher {
  private readonly open = new Map<string, { batch: Batch; timer: NodeJS.Timeout }>();
  private readonly ready: Batch[] = [];
  private inFlight = 0;
  private waiting = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly batchSize: number;
  private readonly lingerMs: number;
  private readonly concurrency: number;

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly options: PublisherOptions,
  ) {
    this.batchSize = options.batchSize ?? 256;
    // Records are for the monitor, not the client: waiting 50 ms costs nothing visible and
    // saves a JetStream round trip per few requests at low load.
    this.lingerMs = options.lingerMs ?? 50;
    this.concurrency = options.concurrency ?? 4;
  }

  publish(record: PredictionRecord): void {
    const model = record.model ?? '';
    let entry = this.open.get(model);
    if (!entry) {
      const batch: Batch = { id: randomUUID(), model, records: [] };
      entry = { batch, timer: setTimeout(() => this.close(model), this.lingerMs) };
      this.open.set(model, entry);
    }
    entry.batch.records.push(record);
    this.waiting++;
    if (entry.batch.records.length >= this.batchSize) this.close(model);
    this.enforceCapacity();
  }

  /** Stores everything buffered (or gives up after `timeoutMs`). */
  async flush(timeoutMs: number): Promise<void> {
    for (const model of [...this.open.keys()]) this.close(model);
    if (this.waiting === 0) return;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
    if (this.waiting > 0) this.logger.warn({ pending: this.waiting }, 'prediction records not stored before shutdown');
  }

  private close(model: string): void {
    const entry = this.open.get(model);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.open.delete(model);
    this.ready.push(entry.batch);
    this.pump();
  }

  private enforceCapacity(): void {
    while (this.waiting > this.options.capacity && this.ready.length > 0) {
      const oldest = this.ready.shift()!;
      this.waiting -= oldest.records.length;
      this.dropped += oldest.records.length;
      this.logger.error({ dropped: this.dropped }, 'prediction record buffer full (JetStream unreachable?); dropped the oldest records');
    }
  }

  private pump(): void {
    while (!this.retryTimer && this.inFlight < this.concurrency && this.ready.length > 0) {
      const batch = this.ready.shift()!;
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.waiting === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          waiters.forEach((resolve) => resolve());
        }
      });
    }
  }

  private async send(batch: Batch): Promise<void> {
    try {
      await this.bus.publishDurable(this.bus.subjects.prediction(batch.model), events.predictionBatch, { records: batch.records }, batch.id);
      this.waiting -= batch.records.length;
    } catch (error) {
      if (/max_payload/i.test((error as Error).message ?? '')) {
        // Larger than the NATS server takes: sent again it would fail again and hold back every
        // batch behind it. Halves go first instead (their ids derived from the batch's, so a
        // retry of a half is still stored once); a lone record that large cannot be stored.
        if (batch.records.length > 1) {
          const half = Math.ceil(batch.records.length / 2);
          this.ready.unshift({ ...batch, id: `${batch.id}.0`, records: batch.records.slice(0, half) }, { ...batch, id: `${batch.id}.1`, records: batch.records.slice(half) });
          return;
        }
        this.waiting -= 1;
        this.dropped += 1;
        this.logger.error({ err: error, model: batch.model, dropped: this.dropped }, 'prediction record dropped: larger than the NATS server\'s max_payload');
        return;
      }
      this.logger.warn({ err: error, records: batch.records.length }, 'prediction records not stored yet; will retry');
      this.ready.unshift(batch);
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.pump();
      }, 500);
    }
  }
}
