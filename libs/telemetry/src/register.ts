/**
 * Starts the OpenTelemetry SDK. Loaded with `node --import @infermesh/telemetry/register`
 * so it runs before any other module of the service.
 *
 * Traces are exported over OTLP as the standard OTEL_* variables say (endpoint,
 * protocol, headers). Without an endpoint, spans are still created so trace ids
 * propagate and appear in logs, but nothing is exported. Metrics and logs use their own
 * paths (Prometheus, stdout), so their OTLP exporters are off unless asked for.
 */
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { SDK_KEY } from './sdk-key.js';

process.env.OTEL_METRICS_EXPORTER ??= 'none';
process.env.OTEL_LOGS_EXPORTER ??= 'none';

const exporting =
  process.env.OTEL_TRACES_EXPORTER !== undefined ||
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined;

const keepLocal: SpanProcessor = {
  onStart() {},
  onEnd() {},
  forceFlush: async () => {},
  shutdown: async () => {},
};

const sdk = new NodeSDK({
  instrumentations: [],
  ...(exporting ? {} : { spanProcessors: [keepLocal] }),
});
sdk.start();
(globalThis as Record<symbol, unknown>)[SDK_KEY] = sdk;
