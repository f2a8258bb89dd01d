/**
 * Trace context across gRPC: W3C traceparent in the metadata, SERVER spans parented by
 * the caller's span, unaryCall's CLIENT spans. Spans go to an in-memory exporter.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, context, propagation, trace, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { contracts, inferenceService } from '@infermesh/contracts';
import type { GRPCInferenceServiceClient, ModelInferResponse, ModelInferResponse__Output, ServerLiveResponse__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import {
  ServiceError, Status, createGrpcServer, extractTraceContext, injectTraceContext, unaryCall, withSpan,
  type CallContext, type GrpcServer, type ServiceHandlers,
} from './index.js';

const logger = createLogger('grpc-tracing-test', { level: 'silent' });
const SERVICE = 'inference.GRPCInferenceService';
const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager();
const tracer = () => trace.getTracer('test');

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});

afterAll(() => {
  trace.disable();
  propagation.disable();
  context.disable();
});

const servers: GrpcServer[] = [];
const clients: grpc.Client[] = [];

afterEach(() => {
  exporter.reset();
  for (const client of clients.splice(0)) client.close();
  for (const server of servers.splice(0)) server.server.forceShutdown();
});

async function start(handlers: ServiceHandlers): Promise<GRPCInferenceServiceClient> {
  const server = createGrpcServer({ name: 'tracing-test', logger, maxMessageBytes: 1024 * 1024 });
  server.addService(SERVICE, inferenceService(), handlers);
  const port = await server.listen('127.0.0.1', 0);
  servers.push(server);
  const client = new (contracts().inference.GRPCInferenceService)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  clients.push(client);
  return client;
}

function serverSpan(): ReadableSpan {
  const spans = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER);
  expect(spans).toHaveLength(1);
  return spans[0];
}

function inferRaw(client: GRPCInferenceServiceClient, metadata: grpc.Metadata): Promise<ModelInferResponse__Output> {
  return new Promise((resolve, reject) =>
    client.ModelInfer({}, metadata, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response!))),
  );
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

describe('server spans', () => {
  it('makes the span in the client\'s traceparent metadata the parent of the SERVER span', async () => {
    const client = await start({ ModelInfer: async (): Promise<ModelInferResponse> => ({}) });
    const metadata = new grpc.Metadata();
    metadata.set('traceparent', `00-${TRACE_ID}-${PARENT_ID}-01`);
    await inferRaw(client, metadata);
    const span = serverSpan();
    expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(span.parentSpanContext?.isRemote).toBe(true);
  });

  it('starts a new trace when the metadata carries no trace context', async () => {
    const client = await start({ ModelInfer: async (): Promise<ModelInferResponse> => ({}) });
    await inferRaw(client, new grpc.Metadata());
    const span = serverSpan();
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.spanContext().traceId).not.toBe(TRACE_ID);
  });

  it('names the SERVER span service/method with the rpc attributes', async () => {
    const client = await start({ ModelInfer: async (): Promise<ModelInferResponse> => ({}) });
    await inferRaw(client, new grpc.Metadata());
    const span = serverSpan();
    expect(span.name).toBe(`${SERVICE}/ModelInfer`);
    expect(span.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': SERVICE, 'rpc.method': 'ModelInfer' });
    expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it('runs the handler with its SERVER span active and given as ctx.span', async () => {
    let active: Span | undefined;
    let given: Span | undefined;
    const client = await start({
      ModelInfer: async (_request: never, ctx: CallContext): Promise<ModelInferResponse> => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        active = trace.getActiveSpan();
        given = ctx.span;
        return {};
      },
    });
    await inferRaw(client, new grpc.Metadata());
    const span = serverSpan();
    expect(active?.spanContext().spanId).toBe(span.spanContext().spanId);
    expect(given?.spanContext().spanId).toBe(span.spanContext().spanId);
  });

  it('parents spans the handler starts under withSpan to its SERVER span', async () => {
    const client = await start({
      ModelInfer: async (_request: never, ctx: CallContext): Promise<ModelInferResponse> => {
        await withSpan(ctx.span, () => tracer().startActiveSpan('child', async (child) => child.end()));
        return {};
      },
    });
    await inferRaw(client, new grpc.Metadata());
    const child = exporter.getFinishedSpans().find((s) => s.name === 'child')!;
    expect(child.parentSpanContext?.spanId).toBe(serverSpan().spanContext().spanId);
  });

  it('marks the SERVER span as an error with the status code when the handler fails', async () => {
    const client = await start({ ModelInfer: async () => Promise.reject(new ServiceError(Status.NOT_FOUND, 'no such model')) });
    await expect(inferRaw(client, new grpc.Metadata())).rejects.toMatchObject({ code: Status.NOT_FOUND });
    const span = serverSpan();
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no such model' });
    expect(span.attributes['rpc.grpc.status_code']).toBe(Status.NOT_FOUND);
  });

  it('records the exception of an unexpected error on the SERVER span', async () => {
    const client = await start({ ModelInfer: async () => Promise.reject(new Error('bug')) });
    await expect(inferRaw(client, new grpc.Metadata())).rejects.toMatchObject({ code: Status.INTERNAL });
    const span = serverSpan();
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'internal error' });
    expect(span.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([['exception', 'bug']]);
  });
});

describe('unaryCall', () => {
  it('resolves with the response', async () => {
    const client = await start({ ServerLive: async () => ({ live: true }) });
    await expect(unaryCall<object, ServerLiveResponse__Output>(client, client.ServerLive, {})).resolves.toEqual({ live: true });
  });

  it('runs the call in a CLIENT span, child of the active span, that parents the SERVER span', async () => {
    const client = await start({ ModelInfer: async (): Promise<ModelInferResponse> => ({}) });
    await tracer().startActiveSpan('request', async (root) => {
      await unaryCall(client, client.ModelInfer, {}, { spanName: 'worker ModelInfer', attributes: { 'infermesh.model': 'iris' } });
      root.end();
    });
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'request')!;
    const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    expect(clientSpan.name).toBe('worker ModelInfer');
    expect(clientSpan.attributes['infermesh.model']).toBe('iris');
    expect(clientSpan.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    const server = serverSpan();
    expect(server.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(server.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
  });

  it('uses spanName for the CLIENT span when given', async () => {
    const client = await start({ ServerLive: async () => ({ live: true }) });
    await unaryCall(client, client.ServerLive, {}, { spanName: 'worker ServerLive' });
    expect(exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT).map((s) => s.name)).toEqual(['worker ServerLive']);
  });

  it('rejects with the gRPC error and marks the CLIENT span with its status', async () => {
    const client = await start({ ModelInfer: async () => Promise.reject(new ServiceError(Status.FAILED_PRECONDITION, 'model is loading')) });
    await expect(unaryCall(client, client.ModelInfer, {})).rejects.toMatchObject({ code: Status.FAILED_PRECONDITION, details: 'model is loading' });
    const clientSpan = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.CLIENT)!;
    expect(clientSpan.status).toEqual({ code: SpanStatusCode.ERROR, message: 'model is loading' });
    expect(clientSpan.attributes['rpc.grpc.status_code']).toBe(Status.FAILED_PRECONDITION);
  });

  it('fails with DEADLINE_EXCEEDED when the deadline passes', async () => {
    const client = await start({ ModelInfer: () => new Promise<never>(() => {}) });
    await expect(unaryCall(client, client.ModelInfer, {}, { deadline: Date.now() + 100 })).rejects.toMatchObject({ code: Status.DEADLINE_EXCEEDED });
  });

  it('cancels the call when the signal aborts, and the server sees the cancellation', async () => {
    let serverSignal: AbortSignal | undefined;
    const client = await start({
      ModelInfer: (_request: never, ctx: CallContext) => {
        serverSignal = ctx.signal;
        return new Promise<never>(() => {});
      },
    });
    const controller = new AbortController();
    const call = unaryCall(client, client.ModelInfer, {}, { signal: controller.signal });
    await expect.poll(() => serverSignal).toBeDefined();
    controller.abort();
    await expect(call).rejects.toMatchObject({ code: Status.CANCELLED });
    await expect.poll(() => serverSignal?.aborted).toBe(true);
  });

  it('does not start the call when the signal is already aborted', async () => {
    let handled = 0;
    const client = await start({
      ModelInfer: async (): Promise<ModelInferResponse> => {
        handled += 1;
        return {};
      },
    });
    const controller = new AbortController();
    controller.abort();
    await expect(unaryCall(client, client.ModelInfer, {}, { signal: controller.signal })).rejects.toMatchObject({ code: Status.CANCELLED });
    expect(handled).toBe(0);
  });
});

describe('trace context in metadata', () => {
  it('injects the active span as a W3C traceparent', () => {
    tracer().startActiveSpan('s', (span) => {
      const { traceId, spanId } = span.spanContext();
      expect(injectTraceContext().get('traceparent')).toEqual([`00-${traceId}-${spanId}-01`]);
      span.end();
    });
  });

  it('adds to the metadata it is given', () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-request-id', 'r1');
    tracer().startActiveSpan('s', (span) => {
      expect(injectTraceContext(metadata)).toBe(metadata);
      span.end();
    });
    expect(metadata.get('x-request-id')).toEqual(['r1']);
    expect(metadata.get('traceparent')).toHaveLength(1);
  });

  it('injects nothing outside a span', () => {
    expect(injectTraceContext().get('traceparent')).toEqual([]);
  });

  it('extracts the span context it injected, as a remote parent', () => {
    const metadata = new grpc.Metadata();
    metadata.set('traceparent', `00-${TRACE_ID}-${PARENT_ID}-01`);
    metadata.set('tracestate', 'vendor=value');
    const extracted = trace.getSpanContext(extractTraceContext(metadata));
    expect(extracted).toMatchObject({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 1, isRemote: true });
    expect(extracted?.traceState?.get('vendor')).toBe('value');
  });

  it('extracts no span context from metadata without traceparent', () => {
    expect(trace.getSpanContext(extractTraceContext(new grpc.Metadata()))).toBeUndefined();
  });
});

describe('client span names', () => {
  it('names the CLIENT span after the method by default', async () => {
    const client = await start({ ServerLive: async () => ({ live: true }) });
    await unaryCall(client, client.ServerLive, {});
    expect(exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT).map((s) => s.name)).toEqual(['inference.GRPCInferenceService/ServerLive']);
  });
});
