/**
 * Reads the PREDICTIONS stream with a durable consumer into ModelMetrics. Records arrive
 * in batches (PredictionBatch); the bus acks a batch only after every record in it is
 * counted, so a crash loses nothing (the batch comes again) and ModelMetrics' dedupe
 * keeps a redelivered record from counting twice.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace, type Context } from '@opentelemetry/api';
import { events, type Bus, type Received } from '@infermesh/bus';
import type { PredictionBatch__Output, PredictionRecord__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { ModelMetrics } from './model-metrics.js';

export const CONSUME_SPAN_NAME = 'infermesh.predictions consume';

export interface PredictionConsumer {
  /** Stops fetching; resolves once the record in hand is handled. */
  stop(): Promise<void>;
}

export function consumePredictions(bus: Bus, durable: string, metrics: ModelMetrics, logger: Logger): Promise<PredictionConsumer> {
  const handle = predictionHandler(metrics, logger, durable);
  return bus.consumeDurable('PREDICTIONS', durable, events.predictionBatch, (received: Received<PredictionBatch__Output>) => {
    for (const record of received.message.records) handle({ subject: received.subject, message: record, context: recordContext(record, received.context) });
  });
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
          else if (outcome === 'duplicate') logger.debug({ request_id: record.requestId }, 'dropped a redelivered prediction record');
        } catch (error) {
          // Rethrown: the bus leaves the record un-acked, so it is redelivered.
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
