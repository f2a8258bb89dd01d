/**
 * The handler of PredictionBatch messages alone, with deliveries as the bus hands them
 * over: every record counts, whatever its request id, and a record that cannot be
 * counted is counted as failed and skipped without holding back the others.
 */
import { describe, expect, it, vi } from 'vitest';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import type { Delivery } from '@infermesh/bus';
import type { PredictionBatch__Output, PredictionRecord__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { MonitorState } from './monitor-state.js';
import { recordsHandler } from './prediction-consumer.js';
import { record as fixture } from './records.fixture.js';

const logger = createLogger('prediction-consumer-test', { level: 'silent' });

function record(overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  return fixture({ requestId: 'same', timestampMs: String(Date.now()), ...overrides });
}

function delivery(streamSequence: number, records: PredictionRecord__Output[]): Delivery<PredictionBatch__Output> {
  return { subject: 'infermesh.predictions.iris', message: { records }, context: ROOT_CONTEXT, streamSequence };
}

function monitor() {
  const state = new MonitorState();
  state.known.add('iris', '1');
  const handle = recordsHandler(state, logger);
  const requests = () => state.models.stats('iris').reduce((sum, s) => sum + s.requestCount, 0);
  return { state, handle, requests };
}

describe('recordsHandler', () => {
  it('counts every record of a message, also records that share a request id or have none', () => {
    const { handle, requests } = monitor();
    handle(delivery(1, [record(), record(), record({ requestId: '' }), record({ requestId: '' })]));
    expect(requests()).toBe(4);
  });

  it('counts a record it cannot take as failed and goes on with the records after it, in the message and after', () => {
    const { state, handle, requests } = monitor();
    const count = state.count.bind(state);
    vi.spyOn(state, 'count').mockImplementation((r) => {
      if (r.workerId === 'poison') throw new Error('cannot count this one');
      return count(r);
    });
    expect(() => handle(delivery(1, [record(), record({ workerId: 'poison' }), record()]))).not.toThrow();
    handle(delivery(2, [record()]));
    expect(requests()).toBe(3);
    expect(state.droppedCounts().failed).toBe(1);
    expect(state.prometheus()).toContain('infermesh_monitor_records_dropped_total{reason="failed"} 1');
  });

  it('counts an invalid record as invalid and the valid ones beside it', () => {
    const { state, handle, requests } = monitor();
    handle(delivery(1, [record(), record({ latencyUs: '-7' }), record()]));
    expect(requests()).toBe(2);
    expect(state.droppedCounts().invalid).toBe(1);
  });
});
