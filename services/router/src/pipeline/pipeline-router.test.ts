/**
 * A pipeline through a router in this process: the `ocr` pipeline announced like a model, its
 * model steps answered by a stand-in worker (as the real models answer), its glue by a real
 * preprocessor's OcrCrop on a rendered page. What a client sees (the answer, ModelMetadata,
 * a missing preprocessor) and what the mesh records: one record for the pipeline request,
 * and each step's requests under the step's model.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import sharp from 'sharp';
import { events } from '@infermesh/bus';
import type { ModelInferRequest, ModelInferResponse__Output, ModelMetadataResponse__Output, PredictionRecord__Output } from '@infermesh/contracts';
import { createPreprocessor, preprocessorConfig, type Preprocessor } from '@infermesh/preprocessor';
import { decodeBytesElements, encodeBytesElements } from '@infermesh/tensor';
import { logger, modelStatus, startRouter, unary, type RouterUnderTest } from '../router.fixture.js';
import { inferRequest, requestCodec } from './tensors.js';

const STEPS = [
  { name: 'detect', model: 'ocr-detection', glue: '', inputs: {}, outputs: {} },
  { name: 'crop', model: '', glue: 'ocr-crop', inputs: {}, outputs: {} },
  { name: 'direction', model: 'text-direction', glue: '', inputs: {}, outputs: {} },
  { name: 'recognize', model: 'ocr-recognition', glue: '', inputs: {}, outputs: {} },
];
const OUTPUTS = [
  { name: 'text', datatype: 'BYTES', shape: ['-1'] }, { name: 'boxes', datatype: 'FP32', shape: ['-1', '4', '2'] },
  { name: 'scores', datatype: 'FP32', shape: ['-1'] }, { name: 'image_index', datatype: 'INT32', shape: ['-1'] },
];
const models = [
  modelStatus('ocr', { platform: 'pipeline', maxBatchSize: 0, pipelineSteps: STEPS, inputs: [{ name: 'image', datatype: 'BYTES', shape: ['-1'] }], outputs: OUTPUTS }),
  modelStatus('ocr-detection', { maxBatchSize: 4 }),
  modelStatus('text-direction', { maxBatchSize: 32 }),
  modelStatus('ocr-recognition', { maxBatchSize: 32 }),
  // A dataflow whose step is the ocr pipeline: refused, pipelines do not nest.
  modelStatus('nested', {
    platform: 'pipeline', maxBatchSize: 0, inputs: [{ name: 'image', datatype: 'BYTES', shape: ['-1'] }], outputs: [{ name: 'lines', datatype: 'BYTES', shape: ['-1'] }],
    pipelineSteps: [{ name: 'inner', model: 'ocr', glue: '', inputs: { image: 'image' }, outputs: { text: 'lines' } }],
  }),
];

let preprocessor: Preprocessor;
let mesh: RouterUnderTest;
let withoutGlue: RouterUnderTest;
let page: Buffer;

/** Two boxes on the page (the stand-in detection finds these), as [K, 4, 2]. */
const BOXES = [20, 20, 220, 20, 220, 60, 20, 60, 20, 100, 180, 100, 180, 140, 20, 140];

beforeAll(async () => {
  page = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#ffffff' } }).png().toBuffer();
  preprocessor = createPreprocessor({ config: preprocessorConfig({ NATS_URL: 'nats://127.0.0.1:1', PREPROCESSOR_HOST: '127.0.0.1', PREPROCESSOR_PORT: '0' }), logger });
  const port = await preprocessor.start();
  mesh = await startRouter({ env: { PREPROCESSOR_ADDRESS: `127.0.0.1:${port}` } });
  mesh.serve(models);
  // The stand-in worker answers each step's model as the real one does, from the tensors' shapes.
  mesh.answer.current = (request) => {
    const rows = Number(request.inputs![0].shape![0]);
    const raw = (tensors: { name: string; datatype: string; shape: number[]; data: Buffer }[]) => ({
      response: { modelName: request.modelName, id: request.id, outputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) })), rawOutputContents: tensors.map((t) => t.data) },
      statusCode: 0,
    });
    if (request.modelName === 'ocr-detection') {
      return raw([{ name: 'boxes', datatype: 'FP32', shape: [2, 4, 2], data: Buffer.from(new Float32Array(BOXES).buffer) }, { name: 'scores', datatype: 'FP32', shape: [2], data: Buffer.from(new Float32Array([0.9, 0.8]).buffer) }, { name: 'image_index', datatype: 'INT32', shape: [2], data: Buffer.alloc(8) }]);
    }
    if (request.modelName === 'text-direction') return raw([{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [rows, 2], data: Buffer.from(new Float32Array(rows * 2).fill(0.5).buffer) }]);
    const width = Number(request.inputs![0].shape![2]);
    return raw([
      { name: 'text', datatype: 'BYTES', shape: [rows], data: encodeBytesElements(Array.from({ length: rows }, () => Buffer.from(`line ${width}`))) },
      { name: 'score', datatype: 'FP32', shape: [rows], data: Buffer.from(new Float32Array(rows).fill(0.95).buffer) },
    ]);
  };
  withoutGlue = await startRouter();
  withoutGlue.serve(models);
  withoutGlue.answer.current = mesh.answer.current;
}, 60_000);

afterAll(async () => {
  await mesh?.stop();
  await withoutGlue?.stop();
  await preprocessor?.stop();
});

function ocrRequest(id: string): ModelInferRequest {
  return requestCodec.decode(inferRequest('ocr', id, [{ name: 'image', datatype: 'BYTES', shape: [1], data: [page] }])) as unknown as ModelInferRequest;
}

async function records(): Promise<PredictionRecord__Output[]> {
  return (await mesh.stored('PREDICTIONS', (data) => events.predictionBatch.decode(data))).flatMap((batch) => batch.records);
}

describe('a pipeline through the router', () => {
  it('answers ModelInfer with the lines of the page: the crop glue\'s widths reached the recognizer', async () => {
    const response = await unary<ModelInferRequest, ModelInferResponse__Output>(mesh.inferenceClient(), 'ModelInfer', ocrRequest('page-1'));
    expect(response.modelName).toBe('ocr');
    expect(response.outputs.map((o) => [o.name, o.shape])).toEqual([['text', ['2']], ['boxes', ['2', '4', '2']], ['scores', ['2']], ['image_index', ['2']]]);
    // Each line its own recognition request at its own width (200 x 40 → 240, 160 x 40 → 192): no padding at the router.
    expect(decodeBytesElements('text', response.rawOutputContents[0]).map(String)).toEqual(['line 240', 'line 192']);
  });

  it('records the pipeline request once under its name, and each step\'s request under the step\'s model', async () => {
    await unary(mesh.inferenceClient(), 'ModelInfer', ocrRequest('page-2'));
    const found = await vi.waitFor(async () => {
      const all = await records();
      const mine = all.filter((r) => r.requestId === 'page-2' || r.requestId.startsWith('page-2/'));
      if (mine.length < 5) throw new Error(`${mine.length} records so far`);
      return mine;
    }, { timeout: 10_000, interval: 50 });
    // The page's two lines are two recognition requests (one per line).
    expect(found.map((r) => [r.model, r.statusCode]).sort()).toEqual([['ocr', 0], ['ocr-detection', 0], ['ocr-recognition', 0], ['ocr-recognition', 0], ['text-direction', 0]]);
    const pipeline = found.find((r) => r.model === 'ocr')!;
    const steps = found.filter((r) => r.model !== 'ocr');
    // One trace: every step's record is in the pipeline request's trace.
    expect(new Set(steps.map((r) => r.traceId))).toEqual(new Set([pipeline.traceId]));
  });

  it('answers a request without an id with a UUIDv7, the id its record is kept under (as a model\'s request)', async () => {
    const response = await unary<ModelInferRequest, ModelInferResponse__Output>(mesh.inferenceClient(), 'ModelInfer', ocrRequest(''));
    expect(response.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const record = await vi.waitFor(async () => {
      const found = (await records()).find((r) => r.model === 'ocr' && r.requestId === response.id);
      if (!found) throw new Error('no record yet');
      return found;
    }, { timeout: 10_000, interval: 50 });
    expect(record.statusCode).toBe(0);
  });

  it('describes the pipeline in ModelMetadata with its declared tensors', async () => {
    const metadata = await unary<object, ModelMetadataResponse__Output>(mesh.inferenceClient(), 'ModelMetadata', { name: 'ocr' });
    expect(metadata.platform).toBe('pipeline');
    expect(metadata.outputs.map((o) => o.name)).toEqual(['text', 'boxes', 'scores', 'image_index']);
  });

  it('answers UNAVAILABLE naming the glue step when the router has no preprocessor', async () => {
    const error = await unary(withoutGlue.inferenceClient(), 'ModelInfer', ocrRequest('page-3')).catch((e: unknown) => e as { code: number; details: string });
    expect(error).toMatchObject({ code: 14, details: "ocr step 'crop' (glue ocr-crop): this router has no preprocessor to call (PREPROCESSOR_ADDRESS is not set)" });
  });

  it('refuses a step whose model is a pipeline with FAILED_PRECONDITION naming the step', async () => {
    const request = requestCodec.decode(inferRequest('nested', 'n-1', [{ name: 'image', datatype: 'BYTES', shape: [1], data: [page] }])) as unknown as ModelInferRequest;
    const error = await unary(mesh.inferenceClient(), 'ModelInfer', request).catch((e: unknown) => e as { code: number; details: string });
    expect(error).toMatchObject({ code: 9, details: "nested step 'inner' (model ocr): model 'ocr' is a pipeline: a step runs a model, pipelines do not nest" });
    const ready = await unary<object, { ready: boolean }>(mesh.inferenceClient(), 'ModelReady', { name: 'nested' });
    expect(ready.ready).toBe(false);
  });

  it('is ready only while every model it runs is served', async () => {
    const ready = () => unary<object, { ready: boolean }>(withoutGlue.inferenceClient(), 'ModelReady', { name: 'ocr' }).then((r) => r.ready);
    expect(await ready()).toBe(true);
    withoutGlue.serve(models.filter((m) => m.name !== 'ocr-recognition'));
    expect(await ready()).toBe(false);
    withoutGlue.serve(models);
    expect(await ready()).toBe(true);
  });
});
