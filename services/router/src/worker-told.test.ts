/** What a prediction record takes from a worker's answer, bounded whatever the worker sends. */
import { describe, expect, it } from 'vitest';
import { createLogger } from '@infermesh/log';
import type { WorkerAnswer } from './coalescer.js';
import { MAX_DRIFT_BINS_BYTES, ToldFieldsReader, cutUtf8 } from './worker-told.js';

const logger = createLogger('test', { level: 'silent' });

function answer(overrides: Partial<WorkerAnswer> = {}): WorkerAnswer {
  return {
    response: Buffer.alloc(0), statusCode: 0, errorMessage: '', preprocessUs: 0, queueUs: 0, computeUs: 0, batchSize: 1,
    driftBins: Buffer.alloc(0), profileId: '', predictedLabels: [], requestId: '', outputSample: [], workerId: 'w1', ...overrides,
  };
}

describe('ToldFieldsReader', () => {
  it('takes the drift bins, profile id, predicted labels, request id and output sample as the worker told them', () => {
    const told = new ToldFieldsReader(logger).read(answer({ driftBins: Buffer.from([1, 0, 2, 3]), profileId: 'p1', predictedLabels: ['setosa', 'virginica'], requestId: 'r1', outputSample: [0.5] }), 2);
    expect({ ...told, driftBins: [...told.driftBins] }).toEqual({ driftBins: [1, 0, 2, 3], profileId: 'p1', predictedLabels: ['setosa', 'virginica'], requestId: 'r1', outputSample: [0.5] });
  });

  it('copies the drift bins out of the batch message they arrived in', () => {
    const message = Buffer.from([9, 1, 2, 9]);
    const told = new ToldFieldsReader(logger).read(answer({ driftBins: message.subarray(1, 3) }), 1);
    message.fill(0);
    expect([...told.driftBins]).toEqual([1, 2]);
  });

  it('drops drift bins over 64 KiB whole, and keeps 64 KiB', () => {
    const reader = new ToldFieldsReader(logger);
    expect(reader.read(answer({ driftBins: Buffer.alloc(MAX_DRIFT_BINS_BYTES + 1, 1) }), 1).driftBins.length).toBe(0);
    expect(reader.read(answer({ driftBins: Buffer.alloc(MAX_DRIFT_BINS_BYTES, 1) }), 1).driftBins.length).toBe(MAX_DRIFT_BINS_BYTES);
  });

  it('keeps at most one predicted label per input of the request', () => {
    expect(new ToldFieldsReader(logger).read(answer({ predictedLabels: ['a', 'b', 'c'] }), 2).predictedLabels).toEqual(['a', 'b']);
  });

  it('cuts a predicted label or profile id to 256 bytes', () => {
    const long = 'é'.repeat(200); // 400 bytes
    const told = new ToldFieldsReader(logger).read(answer({ predictedLabels: [long], profileId: long }), 1);
    expect([told.predictedLabels[0], told.profileId].map((s) => Buffer.byteLength(s))).toEqual([256, 256]);
  });

  it('tells no request id for one over 256 bytes: cut, no feedback could name it (the record falls back to the client\'s id)', () => {
    const reader = new ToldFieldsReader(logger);
    expect(reader.read(answer({ requestId: 'é'.repeat(129) }), 1).requestId).toBe('');
    expect(reader.read(answer({ requestId: 'é'.repeat(128) }), 1).requestId).toBe('é'.repeat(128));
  });

  it('tells nothing without an answer (a request refused before it reached a worker)', () => {
    expect(new ToldFieldsReader(logger).read(undefined, 1)).toEqual({ driftBins: Buffer.alloc(0), profileId: '', predictedLabels: [], requestId: '', outputSample: [] });
  });
});

describe('cutUtf8', () => {
  it('cuts on a character boundary, never inside a multi-byte character', () => {
    expect(cutUtf8('aé', 2)).toBe('a');
    expect(cutUtf8('a😀b', 4)).toBe('a');
    expect(cutUtf8('a😀b', 5)).toBe('a😀');
    expect(cutUtf8('short', 256)).toBe('short');
  });
});
