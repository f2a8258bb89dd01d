import { Metadata } from '@grpc/grpc-js';
import { context, propagation, type Context } from '@opentelemetry/api';

/** W3C trace context in gRPC metadata (traceparent / tracestate). */
export function injectTraceContext(metadata: Metadata = new Metadata(), ctx: Context = context.active()): Metadata {
  propagation.inject(ctx, metadata, {
    set: (carrier, key, value) => carrier.set(key, value),
  });
  return metadata;
}

export function extractTraceContext(metadata: Metadata): Context {
  return propagation.extract(context.active(), metadata, {
    get: (carrier, key) => {
      const values = carrier.get(key);
      return values.length ? values.map(String) : undefined;
    },
    keys: (carrier) => Object.keys(carrier.getMap()),
  });
}
