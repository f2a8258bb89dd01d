/**
 * The `ocr` pipeline end to end, every service its own process (startMesh): the router runs
 * the steps (detection, the preprocessor's OcrCrop, text-direction, recognition) through its
 * coalescer; pages read their lines, empty pages read none, a bad image names the step and
 * the input, lines of concurrent pages share the recognizer's batches, the steps' models stay
 * callable on their own, and ModelMetadata describes the pipeline.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import * as grpc from '@grpc/grpc-js';
import { connect, tensor, type InferenceClient, type InferResult } from '@infermesh/client';
import { renderOcrPages, renderTextImage, type OcrPage } from '@infermesh/models';
import { startMesh, type Mesh } from './helpers/mesh.js';
import { characterErrorRate } from './helpers/ocr-score.js';
import { until } from './helpers/until.js';
import { bytesTensor, inferenceClient } from './helpers/client.js';

let mesh: Mesh;
let client: InferenceClient;
let pages: OcrPage[];

const texts = (result: InferResult) => (result.output('text').data as Uint8Array[]).map((t) => Buffer.from(t).toString('utf8'));

function ocr(images: Buffer[]): Promise<InferResult> {
  return client.infer({ model: 'ocr', inputs: [tensor.bytes('image', [images.length], images)] }, { timeoutMs: 120_000 });
}

beforeAll(async () => {
  pages = await renderOcrPages({ count: 8, seed: 3, rotation: (i) => (i % 2 ? 'alternate' : 'none') });
  // The router's default staleness (2.5 s): a recognition batch takes seconds on one intra-op
  // thread, and the worker keeps heartbeating through it (its sessions run in threads of their own).
  mesh = await startMesh();
  client = connect(mesh.routerAddress);
  await until('model ocr ready', async () => ((await client.modelReady('ocr')) ? true : undefined), 90_000, () => mesh.services.map((s) => `${s.name}: ${s.output().slice(-2000)}`).join('\n'));
  // Every step's model must be served before a page can pass.
  await until('ocr answering', async () => (texts(await ocr([pages[0].png])).length > 0 ? true : undefined), 120_000, () => mesh.services.map((s) => `${s.name}: ${s.output().slice(-3000)}`).join('\n'));
}, 300_000);

afterAll(async () => {
  client?.close();
  await mesh?.stop();
});

describe('the ocr pipeline', () => {
  it('reads the lines of a generated page, upside-down ones included, in order, with boxes, scores and page index', async () => {
    const page = pages[1];
    const result = await ocr([page.png]);
    const read = texts(result);
    expect(read.length).toBe(page.lines.length);
    read.forEach((text, i) => expect(characterErrorRate(text, page.lines[i].text), `${JSON.stringify(text)} for ${JSON.stringify(page.lines[i].text)}`).toBeLessThanOrEqual(0.15));
    expect(result.output('boxes').shape).toEqual([read.length, 4, 2]);
    expect(result.output('scores').shape).toEqual([read.length]);
    expect([...(result.output('image_index').data as Int32Array)]).toEqual(read.map(() => 0));
  }, 120_000);

  it('reads several pages of one request, each line with its page\'s index', async () => {
    const result = await ocr([pages[2].png, pages[3].png]);
    const index = [...(result.output('image_index').data as Int32Array)];
    expect(index.filter((i) => i === 0).length).toBe(pages[2].lines.length);
    expect(index.filter((i) => i === 1).length).toBe(pages[3].lines.length);
  }, 120_000);

  it('answers an empty page with no lines', async () => {
    const blank = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#ffffff' } }).png().toBuffer();
    const result = await ocr([blank]);
    expect(texts(result)).toEqual([]);
    expect(result.output('boxes').shape).toEqual([0, 4, 2]);
  }, 120_000);

  it('answers a bad image with INVALID_ARGUMENT naming the step and the input', async () => {
    const error = await ocr([Buffer.from('not an image')]).then(() => ({ code: 'OK', message: '' }), (e: unknown) => e as { code: string; message: string });
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(/ocr step 'detect' \(model ocr-detection\): .*input 'image'/);
  }, 60_000);

  // Each line is its own recognition request (at its own width), so the router's coalescer joins
  // the lines of concurrent pages into its batch messages to the worker; the worker then runs a
  // message as groups of similar width, so its session runs (ModelStatistics batch_stats) follow
  // the widths, not the pages. A batch message that carried more lines than any one page has
  // holds lines of several pages.
  it('batches the lines of concurrent pages together at the recognizer', async () => {
    const before = await client.modelStatistics('ocr-recognition');
    const seen = new Map((before[0]?.batchStats ?? []).map((b) => [b.batchSize, b.computeInfer.count]));
    const spansBefore = mesh.otlp.spans.length;
    await Promise.all(pages.map((page) => ocr([page.png])));
    const after = await client.modelStatistics('ocr-recognition');
    const most = Math.max(...pages.map((p) => p.lines.length));
    const grown = (after[0]?.batchStats ?? []).filter((b) => b.computeInfer.count > (seen.get(b.batchSize) ?? 0)).map((b) => b.batchSize);
    const messages = (all: typeof mesh.otlp.spans) => all.slice(spansBefore).filter((s) => s.service === 'infermesh-router' && s.name === 'batch ocr-recognition').map((s) => Number(s.attributes['infermesh.batch_requests']));
    const sizes = messages(await mesh.otlp.waitFor((all) => messages(all).some((n) => n > most), 30_000).catch(() => mesh.otlp.spans));
    console.log(`ocr-recognition, ${pages.length} concurrent pages (at most ${most} lines each): lines per batch message ${sizes.join(', ')}; session run sizes ${grown.join(', ')}`);
    expect(Math.max(...sizes)).toBeGreaterThan(most);
  }, 180_000);

  it('leaves the steps\' models callable on their own', async () => {
    const line = await renderTextImage('Hello World 2026', { scale: 3 });
    const direction = await client.infer({ model: 'text-direction', inputs: [tensor.bytes('image', [1], [line])] });
    expect(direction.output('softmax_0.tmp_0').shape).toEqual([1, 2]);
    const recognized = await client.infer({ model: 'ocr-recognition', inputs: [tensor.bytes('image', [1], [line])] });
    expect(texts(recognized)).toEqual(['Hello World 2026']);
  }, 60_000);

  it('answers over REST and in a ModelStreamInfer stream as over ModelInfer', async () => {
    const page = pages[4];
    const unary = texts(await ocr([page.png]));
    const rest = connect(mesh.routerHttpUrl);
    try {
      expect(texts(await rest.infer({ model: 'ocr', inputs: [tensor.bytes('image', [1], [page.png])] }, { timeoutMs: 120_000 }))).toEqual(unary);
    } finally {
      rest.close();
    }
    const streamed: string[][] = [];
    for await (const item of client.inferStream([{ model: 'ocr', inputs: [tensor.bytes('image', [1], [page.png])] }], { timeoutMs: 120_000 })) {
      if (!item.ok) throw item.error;
      streamed.push(texts(item.result));
    }
    expect(streamed).toEqual([unary]);
  }, 240_000);

  it('traces a page as one tree: the request, the page, a span per step, the steps\' work at the worker and preprocessor', async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientSpanId = randomBytes(8).toString('hex');
    const metadata = new grpc.Metadata();
    metadata.set('traceparent', `00-${traceId}-${clientSpanId}-01`);
    const raw = inferenceClient(mesh.routerAddress);
    try {
      await raw.call('ModelInfer', { model_name: 'ocr', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([pages[5].png])] }, { metadata, timeoutMs: 120_000 });
    } finally {
      raw.close();
    }
    const expected = [
      'infermesh-router: inference.GRPCInferenceService/ModelInfer', 'infermesh-router: ocr page',
      'infermesh-router: step detect', 'infermesh-router: step crop', 'infermesh-router: step direction', 'infermesh-router: step recognize',
      'infermesh-worker: infer ocr-detection', 'infermesh-preprocessor: preprocess ocr-detection', 'infermesh-preprocessor: ocr-crop',
      'infermesh-worker: infer text-direction', 'infermesh-worker: infer ocr-recognition',
    ];
    const named = (all: typeof mesh.otlp.spans) => all.filter((s) => s.traceId === traceId).map((s) => `${s.service}: ${s.name}`);
    const spans = (await mesh.otlp.waitFor((all) => expected.every((name) => named(all).includes(name)), 30_000)).filter((s) => s.traceId === traceId);
    expect(named(spans)).toEqual(expect.arrayContaining(expected));
    const ids = new Set([clientSpanId, ...spans.map((s) => s.spanId)]);
    for (const span of spans) expect(ids, `${span.service}: ${span.name}`).toContain(span.parentSpanId);
    // Each step's span is the page's child; the models' work is under the step that asked for it.
    const byName = (name: string) => spans.find((s) => s.name === name)!;
    for (const step of ['detect', 'crop', 'direction', 'recognize']) expect(byName(`step ${step}`).parentSpanId).toBe(byName('ocr page').spanId);
    expect(byName('infer ocr-recognition').parentSpanId).toBe(byName('step recognize').spanId);
    expect(byName('ocr-crop').parentSpanId).toBe(byName('step crop').spanId);
  }, 120_000);

  it('describes the pipeline in ModelMetadata: its platform and declared tensors', async () => {
    const metadata = await client.modelMetadata('ocr');
    expect(metadata.platform).toBe('pipeline');
    expect(metadata.inputs).toEqual([{ name: 'image', datatype: 'BYTES', shape: [-1] }]);
    expect(metadata.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['text', 'BYTES', [-1]], ['boxes', 'FP32', [-1, 4, 2]], ['scores', 'FP32', [-1]], ['image_index', 'INT32', [-1]],
    ]);
  });

  it('counts the pipeline\'s requests in its ModelStatistics', async () => {
    const [stats] = await client.modelStatistics('ocr');
    expect(stats.name).toBe('ocr');
    expect(stats.inferenceCount).toBeGreaterThan(0);
  });
});
