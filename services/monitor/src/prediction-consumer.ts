/**
 * Reads the PREDICTIONS stream with a durable consumer into ModelMetrics. Records arrive
 * in batches (PredictionBatch messages); the bus acks a message only after every record
 * in it is counted, so a crash loses nothing (the message comes again), and
 * HandledMessages keeps the records of a redelivered message from counting twice.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace, type Context } from '@opentelemetry/api';
import { events, type Bus, type Delivery, type Received } from '@infermesh/bus';
import type { PredictionBatch__Output, PredictionRecord__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { HandledMessages } from './handled-messages.js';
import type { ModelMetrics } from './model-metrics.js';

export const CONSUME_SPAN_NAME = 'infermesh.predictions consume';

export interface PredictionConsumer {
  /** Stops fetching; resolves once the record in hand is handled. */
  stop(): Promise<void>;
}

export function consumePredictions(bus: Bus, durable: string, metrics: ModelMetrics, handled: HandledMessages, logger: Logger): Promise<PredictionConsumer> {
  return bus.consumeDurable('PREDICTIONS', durable, events.predictionBatch, predictionBatchHandler(metrics, handled, logger, durable));
}

/**
 * Handles one PredictionBatch message: each of its records counts once, however often the
 * message is delivered. A message is known by its stream sequence, not by the request ids
 * inside it, which clients choose and may repeat or leave empty.
 */
export function predictionBatchHandler(metrics: ModelMetrics, handled: HandledMessages, logger: Logger, durable: string): (delivery: Delivery<PredictionBatch__Output>) => void {
  const handle = predictionHandler(metrics, logger, durable);
  return (delivery) => {
    const { records } = delivery.message;
    // A first delivery cannot have been handled before (and a recreated stream reuses
    // sequences), so only a redelivery is looked up.
    const done = delivery.deliveryCount > 1 ? handled.handledOf(delivery.streamSequence) : 0;
    if (done > 0) {
      metrics.skipRedelivered(done);
      logger.debug({ stream_seq: delivery.streamSequence, delivery_count: delivery.deliveryCount, records: done }, 'skipped the records of a redelivered message counted before');
    }
    for (let i = done; i < records.length; i++) {
      const record = records[i];
      handle({ subject: delivery.subject, message: record, context: recordContext(record, delivery.context) });
      handled.markHandled(delivery.streamSequence, i + 1);
    }
  };
}

/** The record's own trace context (set by the router per record), else the message's. */
function recordContext(record: PredictionRecord__Output, fallback: Context): Context {
  if (!record.traceparent) return fallback;
  return propagation.extract(ROOT_CONTEXT, { traceparent: record.traceparent });
}

/**
 * One CONSUMER span per record, child of the record's publish span, so the monitor's
 * work shows up inside the prediction's trace.
 */
export function predictionHandler(metrics: ModelMetrics, logger: Logger, durable: string): (received: Received<PredictionRecord__Output>) => void {
  const tracer = trace.getTracer('infermesh-monitor');
  return (received) => {
    const { message: record } = received;
    tracer.startActiveSpan(
      CONSUME_SPAN_NAME,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'process',
          'messaging.destination.name': received.subject,
          'messaging.consumer.group.name': durable,
          'infermesh.model': record.model,
          'infermesh.version': record.version,
          'infermesh.request_id': record.requestId,
        },
      },
      received.context,
      (span) => {
        try {
          const outcome = metrics.record(record);
          span.setAttribute('infermesh.record.outcome', outcome);
          if (outcome === 'invalid') logger.warn({ subject: received.subject, request_id: record.requestId }, 'dropped a prediction record without a model');
        } catch (error) {
          // Rethrown: the bus naks the message, so it is redelivered and resumes at this record.
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
          if (error instanceof Error) span.recordException(error);
          throw error;
        } finally {
          span.end();
        }
      },
    );
  };
}
