/**
 * Publishes one PredictionRecord per request to JetStream, off the request path. Records
 * wait in a bounded buffer while JetStream is unreachable and are retried; the message id
 * is the request id, so a retry never stores a record twice.
 */
import { SpanKind, trace, type Context } from '@opentelemetry/api';
import { events, type Bus } from '@infermesh/bus';
import type { PredictionRecord } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';

interface Queued {
  record: PredictionRecord;
  context: Context;
}

export class PredictionPublisher {
  private readonly buffer: Queued[] = [];
  private inFlight = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private readonly tracer = trace.getTracer('infermesh-router');
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly capacity: number,
    private readonly concurrency = 64,
  ) {}

  publish(record: PredictionRecord, context: Context): void {
    if (this.buffer.length >= this.capacity) {
      this.buffer.shift();
      this.dropped++;
      if (this.dropped % 1000 === 1) this.logger.error({ dropped: this.dropped }, 'prediction record buffer full; dropping the oldest records');
    }
    this.buffer.push({ record, context });
    this.pump();
  }

  /** Waits until every buffered record is stored (or `timeoutMs` passes). */
  async flush(timeoutMs: number): Promise<void> {
    if (this.buffer.length === 0 && this.inFlight === 0) return;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
    if (this.buffer.length + this.inFlight > 0) this.logger.warn({ pending: this.buffer.length + this.inFlight }, 'prediction records not stored before shutdown');
  }

  private pump(): void {
    while (!this.retryTimer && this.inFlight < this.concurrency && this.buffer.length > 0) {
      const item = this.buffer.shift()!;
      this.inFlight++;
      void this.send(item).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.buffer.length === 0 && this.inFlight === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          waiters.forEach((resolve) => resolve());
        }
      });
    }
  }

  private async send(item: Queued): Promise<void> {
    const { record } = item;
    const subject = this.bus.subjects.prediction(record.model ?? '');
    await this.tracer.startActiveSpan(`${subject} publish`, { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject } }, item.context, async (span) => {
      try {
        await this.bus.publishDurable(subject, events.prediction, record, record.requestId);
      } catch (error) {
        this.logger.warn({ err: error, request_id: record.requestId }, 'prediction record not stored yet; will retry');
        this.buffer.unshift(item);
        this.retryTimer ??= setTimeout(() => {
          this.retryTimer = undefined;
          this.pump();
        }, 500);
      } finally {
        span.end();
      }
    });
  }
}
