/** ShadowTraffic alone, with a stand-in for the Coalescer: what it sends, records and drops. */
import { describe, expect, it } from 'vitest';
import type { BatchResult } from '@infermesh/batching';
import type { ModelStatus__Output, PredictionRecord } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import type { Coalescer, WorkerAnswer } from './coalescer.js';
import { ShadowTraffic, type ShadowedRequest } from './traffic-shadow.js';
import { modelStatus } from './router.fixture.js';

const logger = createLogger('traffic-shadow-test', { level: 'silent' });

function answer(labels: string[], statusCode = 0, outputSample: number[] = []): WorkerAnswer {
  return {
    response: Buffer.alloc(0), statusCode, errorMessage: statusCode ? 'failed' : '', preprocessUs: 0, queueUs: 0, computeUs: 0, batchSize: 1,
    driftBins: Buffer.alloc(0), profileId: '', predictedLabels: labels, requestId: '', outputSample, workerId: 'w1',
  };
}

const request: ShadowedRequest = { header: { modelName: 'iris', modelVersion: '', id: 'r1', inputs: [] } as unknown as ShadowedRequest['header'], version: '1', bytes: Buffer.from('request'), items: 1, traceparent: '', clientId: 'k1' };

/** A coalescer whose shadow calls wait until the test answers them. */
function heldCoalescer() {
  const held: { version: string; bytes: Buffer; sampleOutputs?: boolean; resolve: (a: WorkerAnswer) => void; reject: (e: Error) => void }[] = [];
  const coalescer: Pick<Coalescer, 'submit'> = {
    submit: (_status: ModelStatus__Output, version, pending) =>
      new Promise<BatchResult<WorkerAnswer>>((resolve, reject) => held.push({ version, bytes: pending.bytes, sampleOutputs: pending.sampleOutputs, resolve: (a) => resolve({ output: a } as BatchResult<WorkerAnswer>), reject })),
  };
  return { coalescer, held };
}

function shadowsWith(coalescer: Pick<Coalescer, 'submit'>, maxInFlight = 64) {
  const records: PredictionRecord[] = [];
  const traffic = new ShadowTraffic({
    coalescer, table: { model: (name, version) => modelStatus(name, { version }) }, publish: (r) => records.push(r), logger, timeoutMs: 60_000, maxInFlight,
  });
  return { traffic, records };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));
async function until(check: () => boolean): Promise<void> {
  while (!check()) await turn();
}

describe('ShadowTraffic', () => {
  it('sends the same bytes to each shadow version, never to the version that answers the client', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic } = shadowsWith(coalescer);
    traffic.copy(request, ['1', '2', '3']);
    await until(() => held.length === 2);
    expect(held.map((h) => [h.version, h.bytes.toString()])).toEqual([['2', 'request'], ['3', 'request']]);
  });

  it('records a shadow that answered the client\'s labels as agreed, under its own version', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic, records } = shadowsWith(coalescer);
    const settle = traffic.copy(request, ['2']);
    await until(() => held.length === 1);
    held[0].resolve(answer(['setosa']));
    // The shadow answered first: its record waits for the client's answer to compare with.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(records).toHaveLength(0);
    settle(answer(['setosa']));
    await until(() => records.length === 1);
    expect(records[0]).toMatchObject({ model: 'iris', version: '2', shadowOfVersion: '1', shadowCompared: true, shadowAgreed: true, predictedLabels: ['setosa'], requestId: 'r1' });
  });

  it('records other labels as compared and not agreed', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic, records } = shadowsWith(coalescer);
    const settle = traffic.copy(request, ['2']);
    settle(answer(['setosa']));
    await until(() => held.length === 1);
    held[0].resolve(answer(['virginica']));
    await until(() => records.length === 1);
    expect(records[0]).toMatchObject({ shadowCompared: true, shadowAgreed: false });
  });

  it('records agreement as unknown when the shadow failed, the client got no answer, or the model has no labels', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic, records } = shadowsWith(coalescer);
    traffic.copy(request, ['2'])(answer(['setosa']));
    traffic.copy(request, ['2'])(undefined);
    traffic.copy(request, ['2'])(answer([]));
    await until(() => held.length === 3);
    held[0].reject(Object.assign(new Error('no worker'), { code: 14, details: 'no worker' }));
    held[1].resolve(answer(['setosa']));
    held[2].resolve(answer([]));
    await until(() => records.length === 3);
    expect(records.map((r) => [r.shadowCompared, r.shadowAgreed])).toEqual([[false, false], [false, false], [false, false]]);
    expect(records[0].statusCode).not.toBe(0);
  });

  it('asks the worker for an output sample on each copy', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic } = shadowsWith(coalescer);
    traffic.copy(request, ['2']);
    await until(() => held.length === 1);
    expect(held[0].sampleOutputs).toBe(true);
  });

  it('compares the output samples of a model without labels: within the tolerance agrees, beyond it does not', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic, records } = shadowsWith(coalescer);
    traffic.copy(request, ['2'])(answer([], 0, [1, 2]));
    traffic.copy(request, ['2'])(answer([], 0, [1, 2]));
    await until(() => held.length === 2);
    held[0].resolve(answer([], 0, [1.0005, 2]));
    held[1].resolve(answer([], 0, [1.01, 2]));
    await until(() => records.length === 2);
    expect(records.map((r) => [r.shadowCompared, r.shadowAgreed])).toEqual([[true, true], [true, false]]);
  });

  it('drops copies beyond its bound of copies in flight, and counts them', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic } = shadowsWith(coalescer, 2);
    for (let i = 0; i < 5; i++) traffic.copy(request, ['2'])(answer(['setosa']));
    await until(() => held.length === 2);
    expect([traffic.copiesInFlight, traffic.dropped]).toEqual([2, 3]);
    held[0].resolve(answer(['setosa']));
    await until(() => traffic.copiesInFlight === 1);
    traffic.copy(request, ['2'])(answer(['setosa']));
    await until(() => held.length === 3);
    expect(traffic.dropped).toBe(3);
  });

  it('submits nothing before the client\'s request is on its way (the next turn of the event loop)', async () => {
    const { coalescer, held } = heldCoalescer();
    const { traffic } = shadowsWith(coalescer);
    traffic.copy(request, ['2']);
    expect(held).toHaveLength(0);
    await until(() => held.length === 1);
  });
});
