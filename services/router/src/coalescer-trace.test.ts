/**
 * The coalescer's batch span: one per message to a worker, the child of its first request's span
 * (a lone request's trace holds its batch) and linked to the span of every request it carried.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import * as grpc from '@grpc/grpc-js';
import { inferenceService, type ModelInferRequest, type ModelInferResponse__Output } from '@infermesh/contracts';
import { mulberry32 } from '@infermesh/testing';
import { Coalescer, linksOf, type PendingRequest } from './coalescer.js';
import { RoutingTable } from './routing-table.js';
import { WorkerPool } from './worker-pool.js';
import { echo, logger, modelStatus, standInWorker } from './router.fixture.js';

const spans = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));

const inferCodec = inferenceService().ModelInfer as unknown as grpc.MethodDefinition<ModelInferRequest, ModelInferResponse__Output>;
const cleanup: (() => void)[] = [];
afterAll(() => cleanup.forEach((c) => c()));

const traceparent = (n: number) => `00-${String(n).padStart(32, '0')}-${String(n).padStart(16, '0')}-01`;

function request(id: string, parent: string): PendingRequest {
  return { bytes: inferCodec.requestSerialize({ modelName: 'iris', id }), deadlineMs: Date.now() + 10_000, traceparent: parent, arrivedNs: process.hrtime.bigint() };
}

describe('batch spans', () => {
  it('reads the links of requests with a trace context, skipping those without', () => {
    expect(linksOf([request('a', traceparent(1)), request('b', ''), request('c', 'garbage')]).map((l) => l.context.spanId)).toEqual([String(1).padStart(16, '0')]);
  });

  it('sends a batch under one span linked to each request it served', async () => {
    const worker = await standInWorker({ current: echo });
    cleanup.push(() => worker.server.server.forceShutdown());
    const table = new RoutingTable(60_000, mulberry32(3));
    const pool = new WorkerPool(table, 4 * 1024 * 1024);
    cleanup.push(() => pool.closeAll());
    const model = modelStatus('iris', { dynamicBatching: { preferredBatchSize: [], maxQueueDelayUs: '0', maxQueueSize: 64 } });
    table.update({ workerId: 'w1', address: worker.address, device: 'cpu', models: [model], queueDepth: 0, inFlight: 0, sentAtMs: '0', draining: false, executionProvider: 'cpu', rssBytes: '0' });
    const coalescer = new Coalescer({ table, pool, logger, maxAttempts: 1, maxMessageBytes: 4 * 1024 * 1024 });
    const never = new AbortController().signal;
    await Promise.all([1, 2, 3].map((n) => coalescer.submit(model, '1', request(`r${n}`, traceparent(n)), 1, never)));
    const batches = spans.getFinishedSpans().filter((s) => s.name === 'batch iris');
    expect(batches.length).toBeGreaterThanOrEqual(1);
    const linked = batches.flatMap((s) => s.links.map((l) => l.context.spanId)).sort();
    expect(linked).toEqual([1, 2, 3].map((n) => String(n).padStart(16, '0')));
    expect(batches[0].attributes['infermesh.worker_id']).toBe('w1');
    // Each batch is in its first request's trace, under that request's span.
    for (const batch of batches) {
      const first = batch.links[0]!.context;
      expect([batch.spanContext().traceId, batch.parentSpanContext?.spanId]).toEqual([first.traceId, first.spanId]);
    }
  });
});
