/**
 * What a router's prediction record holds of the worker's answer: a ModelInfer through a
 * router in this process to a stand-in worker, and the record read back from PREDICTIONS.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { events } from '@infermesh/bus';
import type { ModelInferRequest, ModelInferResponse__Output, PredictionRecord__Output } from '@infermesh/contracts';
import { echo, modelStatus, startRouter, unary, type RouterUnderTest } from './router.fixture.js';

let mesh: RouterUnderTest;

beforeAll(async () => {
  mesh = await startRouter();
  mesh.serve([modelStatus('iris', { maxBatchSize: 8 })]);
});

afterAll(async () => {
  await mesh?.stop();
});

/** Two rows of iris: the request's items. */
function twoRows(id: string): ModelInferRequest {
  return { modelName: 'iris', id, inputs: [{ name: 'features', datatype: 'FP32', shape: ['2', '4'] }], rawInputContents: [Buffer.alloc(32)] };
}

async function recordOf(requestId: string): Promise<PredictionRecord__Output> {
  return vi.waitFor(
    async () => {
      const records = (await mesh.stored('PREDICTIONS', (data) => events.predictionBatch.decode(data))).flatMap((batch) => batch.records);
      const found = records.find((r) => r.requestId === requestId);
      if (!found) throw new Error(`no record of ${requestId} yet`);
      return found;
    },
    { timeout: 10_000, interval: 50 },
  );
}

describe('prediction records', () => {
  it('carry the drift bins, profile id and predicted labels the worker answered with', async () => {
    mesh.answer.current = (request) => ({
      ...echo(request), driftBins: Buffer.from([0, 1, 2, 3, 3, 2, 1, 0]), profileId: 'profile-7', predictedLabels: ['setosa', 'virginica'], requestId: request.id,
    });
    await unary<ModelInferRequest, ModelInferResponse__Output>(mesh.inferenceClient(), 'ModelInfer', twoRows('told-1'));
    const record = await recordOf('told-1');
    expect({ bins: [...record.driftBins], profile: record.profileId, labels: record.predictedLabels, items: record.items }).toEqual({
      bins: [0, 1, 2, 3, 3, 2, 1, 0], profile: 'profile-7', labels: ['setosa', 'virginica'], items: 2,
    });
  });

  it('are filed under the request id the worker answered with (one it assigned when the client sent none)', async () => {
    mesh.answer.current = (request) => ({ ...echo(request), response: { modelName: 'iris', id: '0190aaaa-assigned' }, requestId: '0190aaaa-assigned' });
    const answered = await unary<ModelInferRequest, ModelInferResponse__Output>(mesh.inferenceClient(), 'ModelInfer', twoRows(''));
    expect(answered.id).toBe('0190aaaa-assigned');
    const record = await recordOf('0190aaaa-assigned');
    expect(record.statusCode).toBe(0);
  });

  it('are filed under the client\'s id when the worker tells none', async () => {
    mesh.answer.current = echo;
    await unary(mesh.inferenceClient(), 'ModelInfer', twoRows('client-id-1'));
    const record = await recordOf('client-id-1');
    expect([record.predictedLabels, record.driftBins.length, record.profileId]).toEqual([[], 0, '']);
  });

  it.each([
    ['over 256 characters', 'x'.repeat(300)],
    ['256 characters or fewer but over 256 bytes', 'é'.repeat(200)],
  ])('are not filed for a client id %s: the request is refused before any work, so no record holds an id feedback could not name', async (_, id) => {
    let reached = 0;
    mesh.answer.current = (request) => {
      reached++;
      return { ...echo(request), requestId: request.id };
    };
    await expect(unary(mesh.inferenceClient(), 'ModelInfer', twoRows(id))).rejects.toMatchObject({
      code: 3, details: `id is ${Buffer.byteLength(id)} bytes, over the limit of 256`,
    });
    // A request after it: once its record is stored, any record of the refused one would be too.
    await unary(mesh.inferenceClient(), 'ModelInfer', twoRows(`after-${Buffer.byteLength(id)}`));
    await recordOf(`after-${Buffer.byteLength(id)}`);
    const records = (await mesh.stored('PREDICTIONS', (data) => events.predictionBatch.decode(data))).flatMap((batch) => batch.records);
    expect({ reached, filed: records.filter((r) => r.requestId.startsWith(id.slice(0, 8))).length }).toEqual({ reached: 1, filed: 0 });
  });

  it('keep at most one predicted label per input, whatever the worker sends', async () => {
    mesh.answer.current = (request) => ({ ...echo(request), predictedLabels: ['a', 'b', 'c', 'd'], requestId: request.id });
    await unary(mesh.inferenceClient(), 'ModelInfer', twoRows('too-many-labels'));
    expect((await recordOf('too-many-labels')).predictedLabels).toEqual(['a', 'b']);
  });
});
