/**
 * The OCR step models on their own, through a real worker and preprocessor with the real
 * PaddleOCR PP-OCRv4 graphs: ocr-detection finds the lines of generated pages (boxes in the
 * page's own pixels, around each true line), ocr-recognition reads rendered lines, sent as
 * images or as the pixel tensor the ocr pipeline sends, alone or batched with lines of other
 * widths; and ModelMetadata describes the post-processed outputs.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { connectBus, type Bus } from '@infermesh/bus';
import { inferenceService, workerService, type InferBatchRequest, type InferBatchResponse__Output, type ModelInferRequest } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { createPreprocessor, preprocessorConfig, type Preprocessor } from '@infermesh/preprocessor';
import { createWorker, workerConfig, type Worker } from '@infermesh/worker';
import { renderOcrPages, renderTextImage, type OcrPage } from '@infermesh/models';
import { decodeBytesElements } from '@infermesh/tensor';
import { ROOT, startNatsServer, type NatsServer } from '@infermesh/testing';
import { bytesTensor, codeOf, fp32, inferenceClient, type InferenceClient, type Json } from './helpers/client.js';
import { characterErrorRate } from './helpers/ocr-score.js';

const logger = createLogger('test', { level: 'silent' });

let nats: NatsServer;
let bus: Bus;
let preprocessor: Preprocessor;
let worker: Worker;
let client: InferenceClient;
let pages: OcrPage[];
let raw: grpc.Client;

type Codec<Req, Res> = grpc.MethodDefinition<Req, Res>;
const batchCodec = workerService().InferBatches as unknown as Codec<InferBatchRequest, InferBatchResponse__Output>;
const requestCodec = inferenceService().ModelInfer as unknown as Codec<ModelInferRequest, unknown>;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'ocr models test', prefix: 'ocrmodels', logger });
  const env = { NATS_URL: nats.url, NATS_SUBJECT_PREFIX: 'ocrmodels', GRPC_MAX_MESSAGE_BYTES: String(32 * 1024 * 1024) };
  preprocessor = createPreprocessor({ config: preprocessorConfig({ ...env, PREPROCESSOR_HOST: '127.0.0.1', PREPROCESSOR_PORT: '0' }), logger });
  const port = await preprocessor.start();
  worker = await createWorker({
    config: workerConfig({
      ...env, MODEL_REPOSITORY: join(ROOT, 'models'), WORKER_MODELS: 'ocr-detection,ocr-recognition', WORKER_ID: 'ocr-models-worker',
      WORKER_HOST: '127.0.0.1', WORKER_PORT: '0', PREPROCESSOR_ADDRESS: `127.0.0.1:${port}`,
    }),
    logger,
    bus,
  });
  const address = await worker.start();
  client = inferenceClient(address);
  raw = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  pages = await renderOcrPages({ count: 3, seed: 5, rotation: () => 'none' });
}, 120_000);

afterAll(async () => {
  client?.close();
  raw?.close();
  await worker?.stop();
  await preprocessor?.stop();
  await bus?.drain();
  await nats?.stop();
});

interface Output { name: string; datatype: string; shape: number[] }
interface Response { outputs: Output[]; raw_output_contents: Buffer[] }

function imagesRequest(model: string, images: Buffer[]): Json {
  return { model_name: model, inputs: [{ name: 'image', datatype: 'BYTES', shape: [images.length] }], raw_input_contents: [bytesTensor(images)] };
}

function output(response: Response, name: string): { shape: number[]; raw: Buffer } {
  const i = response.outputs.findIndex((o) => o.name === name);
  expect(i, `output ${name}`).toBeGreaterThanOrEqual(0);
  return { shape: response.outputs[i].shape.map(Number), raw: response.raw_output_contents[i] };
}

interface Box { corners: [number, number][]; score: number; image: number }

function boxesOf(response: Response): Box[] {
  const boxes = fp32(output(response, 'boxes').raw);
  const scores = fp32(output(response, 'scores').raw);
  const raw = Buffer.from(output(response, 'image_index').raw);
  const index = new Int32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  return Array.from(scores, (score, k) => ({
    corners: [0, 1, 2, 3].map((c) => [boxes[k * 8 + 2 * c], boxes[k * 8 + 2 * c + 1]] as [number, number]),
    score,
    image: index[k],
  }));
}

/** The share of `a`'s axis-aligned extent that `b`'s covers. */
function overlap(a: [number, number][], b: [number, number][]): number {
  const extent = (p: [number, number][]) => ({ x0: Math.min(...p.map((q) => q[0])), x1: Math.max(...p.map((q) => q[0])), y0: Math.min(...p.map((q) => q[1])), y1: Math.max(...p.map((q) => q[1])) });
  const ea = extent(a);
  const eb = extent(b);
  const w = Math.max(0, Math.min(ea.x1, eb.x1) - Math.max(ea.x0, eb.x0));
  const h = Math.max(0, Math.min(ea.y1, eb.y1) - Math.max(ea.y0, eb.y0));
  return (w * h) / ((ea.x1 - ea.x0) * (ea.y1 - ea.y0));
}

describe('ocr-detection', () => {
  it('answers a box around every line of a page, in the page\'s pixels, top to bottom', async () => {
    for (const page of pages) {
      const response = await client.call<Response>('ModelInfer', imagesRequest('ocr-detection', [page.png]), { timeoutMs: 60_000 });
      const boxes = boxesOf(response);
      expect(boxes.length, page.name).toBe(page.lines.length);
      page.lines.forEach((line, k) => {
        // The ink box lies inside the detected box (unclipped by 2.0, models/ocr-detection/config.yaml; descenders may stick out), which is not much larger.
        if (process.env.OCR_DEBUG) console.log(page.name, k, JSON.stringify(line.box), JSON.stringify(boxes[k].corners), line.text);
        expect(overlap(line.box, boxes[k].corners), `${page.name} line ${k}`).toBeGreaterThan(0.85);
        expect(overlap(boxes[k].corners, line.box), `${page.name} line ${k}`).toBeGreaterThan(0.4);
        expect(boxes[k].score).toBeGreaterThan(0.6);
        expect(boxes[k].image).toBe(0);
      });
    }
  }, 120_000);

  it('answers the boxes of several pages of different sizes in one request, each page\'s by image_index', async () => {
    // Twice the size: over 960 pixels, so shrunk to fit and its boxes scaled back; half the size: kept as it is.
    const large = await sharp(pages[0].png).resize(pages[0].width * 2).png().toBuffer();
    const small = await sharp(pages[1].png).resize(Math.round(pages[1].width / 2)).png().toBuffer();
    expect(pages[0].width * 2).toBeGreaterThan(960);
    const response = await client.call<Response>('ModelInfer', imagesRequest('ocr-detection', [large, small]), { timeoutMs: 60_000 });
    const boxes = boxesOf(response);
    for (const [n, page, factor] of [[0, pages[0], 2], [1, pages[1], 0.5]] as const) {
      const own = boxes.filter((b) => b.image === n);
      expect(own.length).toBe(page.lines.length);
      page.lines.forEach((line, k) => {
        const scaled = line.box.map(([x, y]) => [x * factor, y * factor] as [number, number]);
        expect(overlap(scaled, own[k].corners), `image ${n} line ${k}`).toBeGreaterThan(0.8);
        expect(overlap(own[k].corners, scaled), `image ${n} line ${k}`).toBeGreaterThan(0.4);
      });
    }
  }, 120_000);

  it('answers no boxes (K = 0) for a page without text', async () => {
    const blank = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 250, g: 250, b: 250 } } }).png().toBuffer();
    const response = await client.call<Response>('ModelInfer', imagesRequest('ocr-detection', [blank]), { timeoutMs: 60_000 });
    expect(output(response, 'boxes').shape).toEqual([0, 4, 2]);
    expect(output(response, 'scores').shape).toEqual([0]);
  }, 60_000);

  it('describes its post-processed outputs in ModelMetadata, not the graph\'s', async () => {
    const metadata = await client.call<{ inputs: Json[]; outputs: Json[] }>('ModelMetadata', { name: 'ocr-detection' });
    expect(metadata.inputs).toEqual([{ name: 'image', datatype: 'BYTES', shape: [-1] }]);
    expect(metadata.outputs).toEqual([
      { name: 'boxes', datatype: 'FP32', shape: [-1, 4, 2] },
      { name: 'scores', datatype: 'FP32', shape: [-1] },
      { name: 'image_index', datatype: 'INT32', shape: [-1] },
    ]);
  });
});

/** A rendered line as the pipeline sends it: UINT8 [1, 48, W, 3], resized to height 48. */
async function lineTensor(png: Buffer): Promise<{ width: number; pixels: Buffer }> {
  const { width, height } = await sharp(png).metadata();
  const w = Math.ceil((48 * width) / height);
  return { width: w, pixels: await sharp(png).removeAlpha().resize(w, 48, { fit: 'fill' }).raw().toBuffer() };
}

function textsOf(response: Response): { text: string[]; score: Float32Array } {
  return { text: decodeBytesElements('text', output(response, 'text').raw).map((b) => b.toString('utf8')), score: fp32(output(response, 'score').raw) };
}

describe('ocr-recognition', () => {
  const lines = ['Hello World 2026', 'The quick brown fox', 'Batch 32'];

  it('reads rendered lines sent as images, several in one request', async () => {
    const images = await Promise.all(lines.map((text) => renderTextImage(text, { scale: 3 })));
    const response = await client.call<Response>('ModelInfer', imagesRequest('ocr-recognition', images), { timeoutMs: 60_000 });
    const { text, score } = textsOf(response);
    expect(text).toEqual(lines);
    for (const s of score) expect(s).toBeGreaterThan(0.8);
  }, 60_000);

  it('reads lines sent as pixel tensors of different widths, as the ocr pipeline sends them', async () => {
    const tensors = await Promise.all(lines.map(async (text) => lineTensor(await renderTextImage(text, { scale: 4 }))));
    const responses = await Promise.all(tensors.map((t) => client.call<Response>('ModelInfer', {
      model_name: 'ocr-recognition', inputs: [{ name: 'x', datatype: 'UINT8', shape: [1, 48, t.width, 3] }], raw_input_contents: [t.pixels],
    }, { timeoutMs: 60_000 })));
    responses.forEach((response, i) => {
      const { text } = textsOf(response);
      expect(characterErrorRate(text[0], lines[i])).toBeLessThanOrEqual(0.1);
    });
  }, 60_000);

  it('reads lines of different widths run in one batch, each padded to the widest', async () => {
    const tensors = await Promise.all(lines.map(async (text) => lineTensor(await renderTextImage(text, { scale: 4 }))));
    expect(new Set(tensors.map((t) => t.width)).size).toBe(lines.length);
    // One InferBatches message, as a router sends it: its requests are queued together and run as one batch.
    const answer = await new Promise<InferBatchResponse__Output>((resolve, reject) => {
      const stream = raw.makeBidiStreamRequest(batchCodec.path, batchCodec.requestSerialize, batchCodec.responseDeserialize);
      stream.on('data', (message: InferBatchResponse__Output) => { resolve(message); stream.end(); });
      stream.on('error', reject);
      stream.write({
        modelName: 'ocr-recognition', modelVersion: '1', batchId: '1',
        requests: tensors.map((t, i) => ({
          request: requestCodec.requestSerialize({ modelName: 'ocr-recognition', id: String(i), inputs: [{ name: 'x', datatype: 'UINT8', shape: ['1', '48', String(t.width), '3'] }], rawInputContents: [t.pixels] }),
          timeoutUs: '60000000',
        })),
      });
    });
    expect(answer.responses.map((r) => [r.statusCode, r.errorMessage, r.batchSize])).toEqual(lines.map(() => [0, '', lines.length]));
    answer.responses.forEach((r, i) => {
      const text = decodeBytesElements('text', r.response!.rawOutputContents[r.response!.outputs.findIndex((o) => o.name === 'text')])[0].toString('utf8');
      expect(characterErrorRate(text, lines[i]), `${text} for ${lines[i]}`).toBeLessThanOrEqual(0.1);
    });
  }, 60_000);

  it('refuses a line wider than the frame, naming the bound', async () => {
    const width = 1600;
    const { code, details } = await codeOf(client.call('ModelInfer', {
      model_name: 'ocr-recognition', inputs: [{ name: 'x', datatype: 'UINT8', shape: [1, 48, width, 3] }], raw_input_contents: [Buffer.alloc(48 * width * 3, 200)],
    }));
    expect(code).toBe(3);
    expect(details).toContain('1536');
  });

  it('describes text [N] and score [N] in ModelMetadata', async () => {
    const metadata = await client.call<{ inputs: Json[]; outputs: Json[] }>('ModelMetadata', { name: 'ocr-recognition' });
    expect(metadata.outputs).toEqual([{ name: 'text', datatype: 'BYTES', shape: [-1] }, { name: 'score', datatype: 'FP32', shape: [-1] }]);
  });
});
