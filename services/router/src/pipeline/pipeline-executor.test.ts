/**
 * The OCR pipeline's execution with stand-in steps: pages are JSON descriptions of their
 * lines, the stand-in detection finds one box per line, the stand-in crop glue writes each
 * line's id into its recognition tensor's first pixel (its last, for lines drawn upside
 * down), the stand-in recognizer reads the id back. So each test sees what went where: the
 * order of steps, the fan-out of lines, empty pages, failures named by step, cancellation.
 */
import { describe, expect, it, vi } from 'vitest';
import { trace } from '@opentelemetry/api';
import { Status, ServiceError, invalidArgument } from '@infermesh/grpc';
import type { Tensor } from '@infermesh/tensor';
import type { ModelStatus__Output, OcrCropRequest, OcrCropResponse__Output, PipelineStep__Output } from '@infermesh/contracts';
import { PipelineExecutor } from './pipeline-executor.js';
import type { StepContext, StepModels } from './model-step.js';
import type { OcrGlue } from './ocr-glue.js';
import { decodeOutputs, inferRequest } from './tensors.js';
import { MAX_PAGES, PAGES_AT_ONCE } from './ocr-pipeline.js';

const STEPS: PipelineStep__Output[] = [
  { name: 'detect', model: 'ocr-detection', glue: '', inputs: {}, outputs: {} },
  { name: 'crop', model: '', glue: 'ocr-crop', inputs: {}, outputs: {} },
  { name: 'direction', model: 'text-direction', glue: '', inputs: {}, outputs: {} },
  { name: 'recognize', model: 'ocr-recognition', glue: '', inputs: {}, outputs: {} },
];

const OCR: ModelStatus__Output = {
  name: 'ocr', version: '1', ready: true, state: 'READY', platform: 'pipeline', inputs: [], outputs: [], maxBatchSize: 0, reason: '',
  dynamicBatching: null, instances: 1, driftReference: null, classLabels: [], pipelineSteps: STEPS, placement: null,
};

/** A page: its lines; a line starting with '~' is upside down; `bad` makes detection refuse it; `score` per line. */
interface Page { lines: string[]; bad?: boolean; scores?: number[] }

const page = (p: Page) => Buffer.from(JSON.stringify(p));

class StandIns implements StepModels, OcrGlue {
  /** Every call: the step and its rows. */
  readonly calls: { step: string; rows: number }[] = [];
  private readonly texts: string[] = [];
  private readonly scoreOf: number[] = [];
  maxBatchOf: Record<string, number> = { 'text-direction': 32, 'ocr-recognition': 6 };
  /** Set: steps wait for it before answering (cancellation tests). */
  gate?: Promise<void>;
  fail?: { step: string; error: ServiceError };
  /** Steps that were waiting at the gate when their request's signal aborted. */
  aborted = 0;

  maxBatch(step: PipelineStep__Output): number {
    return this.maxBatchOf[step.model] ?? 0;
  }

  async run(step: PipelineStep__Output, inputs: readonly Tensor[], ctx: StepContext): Promise<Map<string, Tensor>> {
    const rows = inputs[0].shape[0];
    this.calls.push({ step: step.name, rows });
    const described = step.name === 'detect' ? JSON.parse((inputs[0].data as Buffer[])[0].toString()) as Page : undefined;
    if (described?.bad) throw invalidArgument("input 'image': element 0 is not an image that can be decoded");
    if (this.gate) {
      await Promise.race([this.gate, new Promise((_, reject) => ctx.signal.addEventListener('abort', () => {
        this.aborted++;
        reject(new ServiceError(Status.CANCELLED, 'cancelled'));
      }, { once: true }))]);
    }
    if (this.fail?.step === step.name) throw this.fail.error;
    if (described) {
      const k = described.lines.length;
      // Line i's box: x from 0 to 10 per character, y from 20 i to 20 i + 10.
      const boxes = new Float32Array(described.lines.flatMap((text, i) => [0, 20 * i, 10 * text.length, 20 * i, 10 * text.length, 20 * i + 10, 0, 20 * i + 10]));
      return tensors([{ name: 'boxes', datatype: 'FP32', shape: [k, 4, 2], data: boxes }, { name: 'scores', datatype: 'FP32', shape: [k], data: new Float32Array(k).fill(0.9) }, { name: 'image_index', datatype: 'INT32', shape: [k], data: new Int32Array(k) }]);
    }
    if (step.name === 'direction') {
      // The glue marks upside-down lines' direction frames with 255 in their first pixel.
      const pixels = inputs[0].data as Uint8Array;
      const frame = 48 * 192 * 3;
      const probabilities = new Float32Array(rows * 2);
      for (let i = 0; i < rows; i++) {
        const upside = pixels[i * frame] === 255;
        probabilities[i * 2] = upside ? 0.05 : 0.95;
        probabilities[i * 2 + 1] = upside ? 0.95 : 0.05;
      }
      return tensors([{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [rows, 2], data: probabilities }]);
    }
    // Recognition: the line's id is in the first 4 bytes of its pixels (after any turn back).
    const [, , width] = inputs[0].shape;
    const pixels = Buffer.from(inputs[0].data as Uint8Array);
    const ids = Array.from({ length: rows }, (_, i) => pixels.readUInt32LE(i * 48 * width * 3));
    return tensors([
      { name: 'text', datatype: 'BYTES', shape: [rows], data: ids.map((id) => Buffer.from(this.texts[id] ?? `?${id}`)) },
      { name: 'score', datatype: 'FP32', shape: [rows], data: Float32Array.from(ids.map((id) => this.scoreOf[id] ?? 0)) },
    ]);
  }

  async ocrCrop(request: OcrCropRequest, options: { signal: AbortSignal }): Promise<OcrCropResponse__Output> {
    this.calls.push({ step: 'crop', rows: (request.boxes?.length ?? 0) / 8 });
    if (this.fail?.step === 'crop') throw this.fail.error;
    options.signal.throwIfAborted();
    const described = JSON.parse(Buffer.from(request.image as Uint8Array).toString()) as Page;
    const widths = described.lines.map((text) => 48 * text.length);
    const direction = Buffer.alloc(described.lines.length * 48 * 192 * 3, 128);
    const recognition = Buffer.alloc(widths.reduce((n, w) => n + 48 * w * 3, 0), 128);
    let at = 0;
    described.lines.forEach((text, i) => {
      const id = this.texts.length;
      this.texts.push(text.replace(/^~/, ''));
      this.scoreOf.push(described.scores?.[i] ?? 0.99);
      const bytes = 48 * widths[i] * 3;
      if (text.startsWith('~')) {
        direction[i * 48 * 192 * 3] = 255;
        // Drawn upside down: the id sits in the last pixels, reversed pixel by pixel, as a 180° turn leaves it.
        const id4 = Buffer.alloc(4);
        id4.writeUInt32LE(id);
        const line = Buffer.alloc(bytes, 128);
        line.set(id4);
        const turned = Buffer.alloc(bytes);
        for (let p = 0; p < bytes / 3; p++) line.copy(turned, bytes - 3 - p * 3, p * 3, p * 3 + 3);
        turned.copy(recognition, at);
      } else {
        recognition.writeUInt32LE(id, at);
      }
      at += bytes;
    });
    return { direction, recognitionWidths: widths, recognition, width: 1000, height: 1000 };
  }

  close(): void {}
}

function tensors(list: Tensor[]): Map<string, Tensor> {
  return new Map(list.map((t) => [t.name, t]));
}

const span = trace.getTracer('test').startSpan('pipeline');

async function ocr(standIns: StandIns, pages: Buffer[], signal = new AbortController().signal): Promise<Map<string, Tensor>> {
  const executor = new PipelineExecutor({ models: standIns, glue: standIns });
  const bytes = inferRequest('ocr', 'req-1', [{ name: 'image', datatype: 'BYTES', shape: [pages.length], data: pages }]);
  const answer = await executor.infer(OCR, '1', bytes, { deadlineMs: Date.now() + 10_000, signal, span, clientId: '' });
  return decodeOutputs(answer.response);
}

const texts = (outputs: Map<string, Tensor>) => (outputs.get('text')!.data as Buffer[]).map(String);

describe('the OCR pipeline at the router', () => {
  it('reads each page\'s lines in order, with their boxes, scores and page index', async () => {
    const standIns = new StandIns();
    const outputs = await ocr(standIns, [page({ lines: ['hello', 'world'] }), page({ lines: ['third'] })]);
    expect(texts(outputs)).toEqual(['hello', 'world', 'third']);
    expect([...(outputs.get('image_index')!.data as Int32Array)]).toEqual([0, 0, 1]);
    expect(outputs.get('boxes')!.shape).toEqual([3, 4, 2]);
    expect([...(outputs.get('boxes')!.data as Float32Array).subarray(8, 16)]).toEqual([0, 20, 50, 20, 50, 30, 0, 30]);
    expect([...(outputs.get('scores')!.data as Float32Array)].map((s) => s.toFixed(2))).toEqual(['0.99', '0.99', '0.99']);
  });

  it('runs detect, crop, direction, recognize in order for each page: the page\'s lines in one direction request, one recognition request per line', async () => {
    const standIns = new StandIns();
    await ocr(standIns, [page({ lines: ['a', 'b', 'c'] })]);
    expect(standIns.calls).toEqual([{ step: 'detect', rows: 1 }, { step: 'crop', rows: 3 }, { step: 'direction', rows: 3 }, { step: 'recognize', rows: 1 }, { step: 'recognize', rows: 1 }, { step: 'recognize', rows: 1 }]);
  });

  it('recognizes each of a page\'s lines in a request of its own, all at once, and answers them in the page\'s order', async () => {
    const standIns = new StandIns();
    const lines = Array.from({ length: 14 }, (_, i) => `line${'x'.repeat(i % 5)}${i}`);
    const outputs = await ocr(standIns, [page({ lines })]);
    expect(texts(outputs)).toEqual(lines);
    expect(standIns.calls.filter((c) => c.step === 'recognize').map((c) => c.rows)).toEqual(new Array(14).fill(1));
  });

  it('turns upside-down lines back before recognition', async () => {
    const standIns = new StandIns();
    const outputs = await ocr(standIns, [page({ lines: ['upright', '~flipped'] })]);
    expect(texts(outputs)).toEqual(['upright', 'flipped']);
  });

  it('answers a page with no text with empty outputs, and runs no step after detection for it', async () => {
    const standIns = new StandIns();
    const outputs = await ocr(standIns, [page({ lines: [] })]);
    expect(outputs.get('text')!.shape).toEqual([0]);
    expect(outputs.get('boxes')!.shape).toEqual([0, 4, 2]);
    expect(outputs.get('image_index')!.shape).toEqual([0]);
    expect(standIns.calls.map((c) => c.step)).toEqual(['detect']);
  });

  it('leaves out lines recognized with a score under 0.5, as PaddleOCR does', async () => {
    const outputs = await ocr(new StandIns(), [page({ lines: ['kept', 'noise'], scores: [0.9, 0.3] })]);
    expect(texts(outputs)).toEqual(['kept']);
  });

  it('answers a failing step with its status, the step and its model named', async () => {
    const error = await ocr(new StandIns(), [page({ lines: ['a'], bad: true })]).catch((e: unknown) => e as ServiceError);
    expect(error).toMatchObject({ code: Status.INVALID_ARGUMENT, message: "ocr step 'detect' (model ocr-detection): input 'image': element 0 is not an image that can be decoded" });
  });

  it('names a failing glue step', async () => {
    const standIns = new StandIns();
    standIns.fail = { step: 'crop', error: new ServiceError(Status.RESOURCE_EXHAUSTED, 'too many lines') };
    await expect(ocr(standIns, [page({ lines: ['a'] })])).rejects.toMatchObject({ code: Status.RESOURCE_EXHAUSTED, message: "ocr step 'crop' (glue ocr-crop): too many lines" });
  });

  it('refuses a request without an image input, or with too many pages, before any step', async () => {
    const standIns = new StandIns();
    const executor = new PipelineExecutor({ models: standIns, glue: standIns });
    const call = { deadlineMs: Date.now() + 10_000, signal: new AbortController().signal, span, clientId: '' };
    const wrong = inferRequest('ocr', '', [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: [Buffer.from('x')] }]);
    await expect(executor.infer(OCR, '1', wrong, call)).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT, message: expect.stringMatching(/takes one input, 'image'/) });
    const many = inferRequest('ocr', '', [{ name: 'image', datatype: 'BYTES', shape: [MAX_PAGES + 1], data: new Array(MAX_PAGES + 1).fill(page({ lines: [] })) }]);
    await expect(executor.infer(OCR, '1', many, call)).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT, message: expect.stringMatching(/over the limit of 64/) });
    expect(standIns.calls).toEqual([]);
  });

  it('stops every page\'s steps when the request is cancelled', async () => {
    const standIns = new StandIns();
    standIns.gate = new Promise(() => undefined);
    const controller = new AbortController();
    const pending = ocr(standIns, [page({ lines: ['a'] }), page({ lines: ['b'] })], controller.signal);
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: Status.CANCELLED });
    expect(standIns.calls.map((c) => c.step)).toEqual(['detect', 'detect']);
  });

  it('cancels the other pages\' steps when one page fails', async () => {
    const standIns = new StandIns();
    // The good page's detection waits until its signal aborts; the bad page fails at once.
    standIns.gate = new Promise(() => undefined);
    const pending = ocr(standIns, [page({ lines: ['b'] }), page({ lines: ['a'], bad: true })]);
    await expect(pending).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    await vi.waitFor(() => expect(standIns.aborted).toBe(1));
  });

  it('keeps at most 8 pages of one request in flight, and reads them all in order', async () => {
    const standIns = new StandIns();
    let release!: () => void;
    standIns.gate = new Promise((resolve) => (release = resolve));
    const pending = ocr(standIns, Array.from({ length: 20 }, (_, i) => page({ lines: [`page ${i}`] })));
    await vi.waitFor(() => expect(standIns.calls.length).toBe(PAGES_AT_ONCE));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(standIns.calls.map((c) => c.step)).toEqual(new Array(PAGES_AT_ONCE).fill('detect'));
    release();
    expect(texts(await pending)).toEqual(Array.from({ length: 20 }, (_, i) => `page ${i}`));
  });

  it('counts the pipeline\'s requests for ModelStatistics', async () => {
    const standIns = new StandIns();
    const executor = new PipelineExecutor({ models: standIns, glue: standIns });
    const call = { deadlineMs: Date.now() + 10_000, signal: new AbortController().signal, span, clientId: '' };
    await executor.infer(OCR, '1', inferRequest('ocr', '', [{ name: 'image', datatype: 'BYTES', shape: [1], data: [page({ lines: ['a'] })] }]), call);
    await executor.infer(OCR, '1', inferRequest('ocr', '', [{ name: 'image', datatype: 'BYTES', shape: [1], data: [page({ lines: ['a'], bad: true })] }]), call).catch(() => undefined);
    const stats = executor.statistics('ocr', '1');
    expect(stats).toMatchObject({ inferenceCount: '1', executionCount: '2', inferenceStats: { success: { count: '1' }, fail: { count: '1' } } });
  });
});
