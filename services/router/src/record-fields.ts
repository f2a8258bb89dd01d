/**
 * What every PredictionRecord the router publishes takes from the call and the worker's answer
 * (timings, worker, trace), for clients' requests (inference-service.ts) and pipelines' step
 * requests (pipeline/model-step.ts) alike.
 */
import { trace, type Span } from '@opentelemetry/api';
import type { PredictionRecord } from '@infermesh/contracts';
import type { WorkerAnswer } from './coalescer.js';

/** The W3C traceparent of a span, formatted directly (no propagator round trip on the hot path). */
export function traceparentOf(span: Span): string {
  const context = span.spanContext();
  if (!trace.isSpanContextValid(context)) return '';
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags & 1 ? '01' : '00'}`;
}

type AnswerFields = Pick<PredictionRecord, 'workerId' | 'latencyUs' | 'preprocessUs' | 'queueUs' | 'computeUs' | 'batchSize' | 'traceId' | 'timestampMs' | 'traceparent'>;

/** A record's timings, worker and trace: from the request's arrival to now, and the worker's own figures (zero without an answer). */
export function answerFields(arrivedNs: bigint, traceparent: string, answer?: WorkerAnswer): AnswerFields {
  return {
    workerId: answer?.workerId ?? '',
    latencyUs: String(Math.round(Number(process.hrtime.bigint() - arrivedNs) / 1000)),
    preprocessUs: String(answer?.preprocessUs ?? 0),
    queueUs: String(answer?.queueUs ?? 0),
    computeUs: String(answer?.computeUs ?? 0),
    batchSize: answer?.batchSize ?? 0,
    traceId: traceparent.slice(3, 35),
    timestampMs: String(Date.now()),
    traceparent,
  };
}
