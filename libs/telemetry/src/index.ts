import { trace, type Span, type Tracer } from '@opentelemetry/api';
import { SDK_KEY } from './sdk-key.js';

interface Shutdownable {
  shutdown(): Promise<void>;
}

/** Flushes and stops the SDK started by register.ts; a no-op when it was not loaded. */
export async function shutdownTelemetry(): Promise<void> {
  const sdk = (globalThis as Record<symbol, unknown>)[SDK_KEY] as Shutdownable | undefined;
  if (!sdk) return;
  (globalThis as Record<symbol, unknown>)[SDK_KEY] = undefined;
  await sdk.shutdown();
}

export function tracer(name: string): Tracer {
  return trace.getTracer(name);
}

/** The active span's trace id, or '' when there is none. */
export function activeTraceId(): string {
  const span = trace.getActiveSpan();
  return span?.spanContext().traceId ?? '';
}

export function traceIdOf(span: Span): string {
  return span.spanContext().traceId;
}
