/**
 * Publishes one PredictionRecord per request to JetStream, off the request path and in
 * batches: records of one model wait up to `lingerMs` (or until `batchSize` of them) and
 * are stored as one PredictionBatch message. One JetStream round trip per request was the
 * largest cost of a request at the router (docs/performance.md); per batch it is small.
 *
 * Each record carries the traceparent of its request (set by the caller), so the monitor
 * continues every prediction's own trace; a span per publish would only add work, since
 * the publish of a batch is not any one request's.
 *
 * While JetStream answers, batches wait in memory (at most `capacity` records). Once a
 * publish fails, batches go to the RecordSpool on disk instead, the failed one first, and
 * one batch at a time is retried from the spool until JetStream takes it again; then the
 * spool is delivered in order and batches wait in memory again. Records are dropped only
 * when the spool is full, counted in the log line "prediction records dropped" (its
 * `dropped_total` is the count since the router started).
 *
 * A batch is never stored twice although it may be published more than once (a publish
 * whose answer was lost to the outage, a batch spooled at shutdown while its publish was
 * still on the way): every attempt carries the batch's message id, fixed when the batch is
 * formed and kept in the spool, and JetStream stores a message id once within the stream's
 * duplicate window (2 minutes, libs/bus). Only a batch whose first publish reached the
 * server unacknowledged and that is published again more than 2 minutes later could be
 * stored twice.
 */
import { randomUUID } from 'node:crypto';
import { ROOT_CONTEXT, context } from '@opentelemetry/api';
import { events, type Bus } from '@infermesh/bus';
import type { PredictionRecord } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { RecordBatch, RecordSpool } from './record-spool.js';

export interface PublisherOptions {
  /** Records waiting in memory (buffered or being stored) at most; beyond this the oldest batches go to the spool. */
  capacity: number;
  /** Where batches wait while JetStream is unreachable, and across a restart. */
  spool: RecordSpool;
  batchSize?: number;
  lingerMs?: number;
  /** Batches being stored at once. */
  concurrency?: number;
  /** Between attempts to deliver the spool while JetStream is unreachable. */
  retryMs?: number;
}

/**
 * Runs the publisher's own work outside the request that happened to start it: its log lines
 * and publishes belong to no one request's trace (each record carries its own).
 */
const outsideRequests = <T>(fn: () => T): T => context.with(ROOT_CONTEXT, fn);

/** Thrown by a publish that the NATS server refuses as larger than its max_payload. */
const isTooLarge = (error: unknown) => /max_payload/i.test((error as Error)?.message ?? '');

export class PredictionPublisher {
  private readonly open = new Map<string, { batch: RecordBatch; timer: NodeJS.Timeout }>();
  private readonly ready: RecordBatch[] = [];
  private readonly inFlight = new Set<RecordBatch>();
  /** Records in memory: in open or ready batches, or being published from memory. */
  private waiting = 0;
  /** Set from a failed publish until the spool is delivered: new batches go to the spool meanwhile. */
  private spooling = false;
  private delivering: Promise<void> | undefined;
  /** Set from a spool read or update that failed until one succeeds: logged once per such run. */
  private spoolFailing = false;
  private spoolRetry: NodeJS.Timeout | undefined;
  private spooledRecords = 0;
  private dropped = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private readonly batchSize: number;
  private readonly lingerMs: number;
  private readonly concurrency: number;
  private readonly retryMs: number;
  private readonly spool: RecordSpool;

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
    this.retryMs = options.retryMs ?? 500;
    this.spool = options.spool;
    let left: RecordBatch | undefined;
    try {
      left = this.spool.head();
    } catch (error) {
      this.spoolFailed(error);
    }
    if (left) {
      // Left by a router that stopped while JetStream was unreachable.
      this.logger.info({ dir: this.spool.dir, bytes: this.spool.bytes }, 'delivering prediction records spooled before this start');
      this.spooling = true;
      this.deliverSpool();
    }
  }

  publish(record: PredictionRecord): void {
    const model = record.model ?? '';
    let entry = this.open.get(model);
    if (!entry) {
      const batch: RecordBatch = { id: randomUUID(), model, records: [] };
      entry = { batch, timer: outsideRequests(() => setTimeout(() => this.close(model), this.lingerMs)) };
      this.open.set(model, entry);
    }
    entry.batch.records.push(record);
    this.waiting++;
    if (entry.batch.records.length >= this.batchSize) this.close(model);
    this.enforceCapacity();
  }

  /**
   * Stores everything buffered, waiting at most `timeoutMs`; what is not stored by then is
   * left in the spool, for this router's next start to deliver. No records are taken after.
   */
  async flush(timeoutMs: number): Promise<void> {
    for (const model of [...this.open.keys()]) this.close(model);
    if (!this.idle()) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]);
    }
    this.closed = true;
    const pending = [...this.inFlight, ...this.ready.splice(0)];
    for (const batch of pending) this.toSpool(batch);
    clearTimeout(this.spoolRetry);
    let left = false;
    try {
      left = this.spool.head() !== undefined;
    } catch (error) {
      this.spoolFailed(error);
    }
    if (pending.length > 0 || left) {
      this.logger.warn({ records: pending.reduce((n, b) => n + b.records.length, 0), dir: this.spool.dir, bytes: this.spool.bytes }, 'prediction records not stored before shutdown are kept in the spool for the next start');
    }
  }

  private idle(): boolean {
    return this.waiting === 0 && !this.delivering;
  }

  private notifyIfIdle(): void {
    if (!this.idle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((resolve) => resolve());
  }

  private close(model: string): void {
    const entry = this.open.get(model);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.open.delete(model);
    if (this.spooling || this.closed) {
      this.waiting -= entry.batch.records.length;
      this.toSpool(entry.batch);
      return;
    }
    this.ready.push(entry.batch);
    this.pump();
  }

  /** JetStream slower than requests come: the oldest batches wait on disk rather than in memory. */
  private enforceCapacity(): void {
    let moved = false;
    while (this.waiting > this.options.capacity && this.ready.length > 0) {
      const oldest = this.ready.shift()!;
      this.waiting -= oldest.records.length;
      this.toSpool(oldest);
      moved = true;
    }
    if (moved) this.deliverSpool();
  }

  private pump(): void {
    while (!this.spooling && this.inFlight.size < this.concurrency && this.ready.length > 0) {
      const batch = this.ready.shift()!;
      this.inFlight.add(batch);
      void outsideRequests(() => this.store(batch).then(
        () => {},
        (error: unknown) => {
          if (this.closed) return; // spooled by flush already
          this.startSpooling(error);
          this.toSpool(batch);
        },
      ).finally(() => {
        this.inFlight.delete(batch);
        this.waiting -= batch.records.length;
        this.pump();
        this.notifyIfIdle();
      }));
    }
  }

  private startSpooling(error: unknown): void {
    if (!this.spooling) {
      this.logger.warn({ err: error, dir: this.spool.dir }, 'JetStream unreachable: prediction records go to the spool until it answers again');
    }
    this.spooling = true;
    // What waits in memory goes to disk too, so a router that dies during the outage keeps it.
    for (const batch of this.ready.splice(0)) {
      this.waiting -= batch.records.length;
      this.toSpool(batch);
    }
    this.deliverSpool();
  }

  private toSpool(batch: RecordBatch): void {
    if (this.spool.append(batch)) {
      this.spooledRecords += batch.records.length;
      return;
    }
    this.dropped += batch.records.length;
    this.logger.error(
      { dropped: batch.records.length, dropped_total: this.dropped, dir: this.spool.dir, bytes: this.spool.bytes },
      'prediction records dropped: the record spool is full (ROUTER_RECORD_SPOOL_MAX_BYTES)',
    );
  }

  /** Delivers the spool, oldest batch first, retrying while JetStream is unreachable. */
  private deliverSpool(): void {
    this.delivering ??= outsideRequests(async () => {
      let delivered = 0;
      try {
        // A flushed publisher stops trying: what is left waits in the spool for the next start.
        for (let batch = this.spool.head(); batch && !this.closed; batch = this.spool.head()) {
          try {
            await this.store(batch);
          } catch {
            await new Promise((resolve) => setTimeout(resolve, this.retryMs));
            continue;
          }
          this.spool.shift();
          delivered += batch.records.length;
        }
        if (this.spoolFailing) this.logger.info({ dir: this.spool.dir }, 'the prediction record spool can be read and updated again');
        this.spoolFailing = false;
      } catch (error) {
        this.spoolFailed(error);
      }
      if (delivered > 0) this.logger.info({ records: delivered, spooled_total: this.spooledRecords }, 'spooled prediction records delivered');
    }).finally(() => {
      this.delivering = undefined;
      this.spooling = false;
      this.pump();
      this.notifyIfIdle();
    }).catch((error: unknown) => this.logger.error({ err: error }, 'prediction record publisher failed after delivering the spool'));
  }

  /**
   * A spool that cannot be read or updated (a full or read-only disk) must not stop the
   * router: its batches stay on disk and delivery is tried again after `retryMs`; records
   * go through memory meanwhile, and to the spool (or are counted dropped) if JetStream fails.
   */
  private spoolFailed(error: unknown): void {
    if (!this.spoolFailing) {
      this.logger.error({ err: error, dir: this.spool.dir }, 'the prediction record spool cannot be read or updated: its batches stay there and delivery is retried');
    }
    this.spoolFailing = true;
    if (this.closed || this.spoolRetry) return;
    this.spoolRetry = setTimeout(() => {
      this.spoolRetry = undefined;
      if (!this.closed) this.deliverSpool();
    }, this.retryMs);
    this.spoolRetry.unref();
  }

  /**
   * Stores a batch. One larger than the NATS server takes would fail again on every retry and
   * hold back every batch behind it: its halves are stored instead, their ids derived from
   * the batch's so a retried half is still stored once; a lone record that large is dropped.
   */
  private async store(batch: RecordBatch): Promise<void> {
    try {
      await this.bus.publishDurable(this.bus.subjects.prediction(batch.model), events.predictionBatch, { records: batch.records }, batch.id);
    } catch (error) {
      if (!isTooLarge(error)) throw error;
      if (batch.records.length > 1) {
        const half = Math.ceil(batch.records.length / 2);
        await this.store({ ...batch, id: `${batch.id}.0`, records: batch.records.slice(0, half) });
        await this.store({ ...batch, id: `${batch.id}.1`, records: batch.records.slice(half) });
        return;
      }
      this.dropped += 1;
      this.logger.error({ err: error, model: batch.model, dropped: 1, dropped_total: this.dropped }, 'prediction records dropped: larger than the NATS server\'s max_payload');
    }
  }
}
