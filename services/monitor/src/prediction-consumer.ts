/**
 * Reads the PREDICTIONS stream with a durable consumer into ModelMetrics. The bus acks a
 * record only after the handler returns, so a crash loses nothing (the record comes
 * again) and ModelMetrics' dedupe keeps a redelivered record from counting twice.
 */
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { events, type Bus, type Received } from '@infermesh/bus';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { ModelMetrics } from './model-metrics.js';

export const CONSUME_SPAN_NAME = 'infermesh.predictions consume';

export interface PredictionConsumer {
  /** Stops fetching; resolves once the record in hand is handled. */
  stop(): Promise<void>;
}

export function consumePredictions(bus: Bus, durable: string, metrics: ModelMetrics, logger: Logger): Promise<PredictionConsumer> {
  return bus.consumeDurable('PREDICTIONS', durable, events.prediction, predictionHandler(metrics, logger, durable));
}

/**
 * One CONSUMER span per record, child of the publisher's context from the message
 * headers, so the monitor's work shows up inside the prediction's trace.
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
