/**
 * The PredictionBatch handler alone, with deliveries as the bus hands them over: each
 * record of a message counts once however often JetStream delivers the message, and
 * request ids (chosen by clients) play no part in it.
 */
import { describe, expect, it, vi } from 'vitest';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import type { Delivery } from '@infermesh/bus';
import type { PredictionBatch__Output, PredictionRecord__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { HandledMessages } from './handled-messages.js';
import { ModelMetrics } from './model-metrics.js';
import { predictionBatchHandler } from './prediction-consumer.js';
import { record as fixture } from './records.fixture.js';

const logger = createLogger('prediction-consumer-test', { level: 'silent' });

function record(overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  return fixture({ requestId: 'same', ...overrides });
}

function delivery(streamSequence: number, deliveryCount: number, records: PredictionRecord__Output[]): Delivery<PredictionBatch__Output> {
  return { subject: 'infermesh.predictions.iris', message: { records }, context: ROOT_CONTEXT, streamSequence, deliveryCount };
}

function monitor(capacity = 100) {
  const metrics = new ModelMetrics();
  const handle = predictionBatchHandler(metrics, new HandledMessages(capacity), logger, 'monitor-test');
  const requests = () => metrics.stats('iris').reduce((sum, s) => sum + s.requestCount, 0);
  return { metrics, handle, requests };
}

describe('predictionBatchHandler', () => {
  it('counts every record of a message, also records that share a request id or have none', () => {
    const { handle, requests } = monitor();
    handle(delivery(1, 1, [record(), record(), record({ requestId: '' }), record({ requestId: '' })]));
    expect(requests()).toBe(4);
  });

  it('counts the records of a new message even when an earlier message had the same request ids', () => {
    const { handle, requests } = monitor();
    handle(delivery(1, 1, [record(), record({ requestId: '' })]));
    handle(delivery(2, 1, [record(), record({ requestId: '' })]));
    expect(requests()).toBe(4);
  });

  it('counts a redelivered message (same stream sequence) once, and says so in the dropped counter', async () => {
    const { metrics, handle, requests } = monitor();
    handle(delivery(5, 1, [record(), record({ requestId: 'other' }), record({ requestId: '' })]));
    handle(delivery(5, 2, [record(), record({ requestId: 'other' }), record({ requestId: '' })]));
    expect(requests()).toBe(3);
    expect(await metrics.registry.metrics()).toContain('infermesh_monitor_records_dropped_total{reason="redelivered"} 3');
  });

  it('resumes a message that failed halfway after the last record it counted', () => {
    const { metrics, handle, requests } = monitor();
    const count = metrics.record.bind(metrics);
    let failed = false;
    vi.spyOn(metrics, 'record').mockImplementation((r) => {
      if (r.workerId === 'fails-once' && !failed) {
        failed = true;
        throw new Error('metrics unavailable');
      }
      return count(r);
    });
    const records = [record(), record({ workerId: 'fails-once' }), record()];
    expect(() => handle(delivery(8, 1, records))).toThrow('metrics unavailable');
    expect(requests()).toBe(1);
    handle(delivery(8, 2, records));
    expect(requests()).toBe(3);
  });

  it('counts a first delivery even when its stream sequence was handled before, as after a stream is recreated', () => {
    const { handle, requests } = monitor();
    handle(delivery(1, 1, [record()]));
    handle(delivery(1, 1, [record()]));
    expect(requests()).toBe(2);
  });

  it('counts a redelivered message again once it is older than the messages it remembers', () => {
    const { handle, requests } = monitor(2);
    for (const sequence of [1, 2, 3]) handle(delivery(sequence, 1, [record()]));
    handle(delivery(1, 2, [record()]));
    handle(delivery(3, 2, [record()]));
    expect(requests()).toBe(4);
  });
});
