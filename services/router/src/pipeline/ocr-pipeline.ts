/**
 * The OCR flow (PaddleOCR's TextSystem: det → crop → cls → rec), as a pipeline whose steps
 * are a detection model, the `ocr-crop` glue, an optional text-direction model and a
 * recognition model. Each page (element of the `image` input) goes through the steps on its
 * own, concurrently with the request's other pages: its lines go to direction as one request
 * and to recognition as one request per line (each at its own width), and the coalescer joins
 * them with the lines of every other page in flight into the models' batches.
 */
import { context as otelContext, trace, SpanStatusCode } from '@opentelemetry/api';
import { invalidArgument, ServiceError, Status } from '@infermesh/grpc';
import { TensorError, type Tensor } from '@infermesh/tensor';
import type { PipelineStep__Output } from '@infermesh/contracts';
import { inStepSpan, stepError, type StepContext, type StepModels } from './model-step.js';
import type { OcrGlue } from './ocr-glue.js';
import { output } from './tensors.js';
import { traceparentOf } from '../record-fields.js';

const tracer = trace.getTracer('infermesh-router');

/** Pages in one request at most: each is decoded twice (detection, crop) and fans out to its lines. */
export const MAX_PAGES = 64;
/**
 * Pages of one request in flight at once: enough to fill the steps' batches, few enough that
 * one large request does not fill a step model's queue (ocr-detection's holds 64) by itself.
 */
export const PAGES_AT_ONCE = 8;
/** PaddleOCR's cls_thresh: a line is turned back only when the classifier is this sure it is upside down. */
export const ROTATED_THRESHOLD = 0.9;
/** PaddleOCR's drop_score: lines recognized with a lower score are left out, as TextSystem leaves them out. */
export const DROP_SCORE = 0.5;
/** The line tensors' height and the text-direction frame's width (OcrCrop's). */
const LINE_HEIGHT = 48;
const DIRECTION_WIDTH = 192;

export const OCR_OUTPUTS = ['text', 'boxes', 'scores', 'image_index'] as const;

/** An OCR pipeline's steps by their part in the flow. */
export interface OcrSteps {
  detect: PipelineStep__Output;
  crop: PipelineStep__Output;
  direction?: PipelineStep__Output;
  recognize: PipelineStep__Output;
}

/** The steps as announced (the worker checked the config; a heartbeat is still checked here). */
export function ocrSteps(steps: readonly PipelineStep__Output[]): OcrSteps | undefined {
  const [detect, crop, ...rest] = steps;
  if (!detect?.model || crop?.glue !== 'ocr-crop' || rest.length < 1 || rest.length > 2 || rest.some((s) => !s.model)) return undefined;
  return rest.length === 2 ? { detect, crop, direction: rest[0], recognize: rest[1] } : { detect, crop, recognize: rest[0] };
}

export interface OcrDeps {
  models: StepModels;
  glue: OcrGlue;
}

/** One page's lines. */
interface PageLines {
  text: Buffer[];
  /** [K, 4, 2] flat. */
  boxes: number[];
  scores: number[];
}

/**
 * The pipeline's outputs for the request's `image` input: every kept line of every page, in
 * page order, each page's lines in detection order (top to bottom, left to right).
 * `requested` (the request's outputs) narrows them; an unknown name is INVALID_ARGUMENT.
 */
export async function runOcr(steps: OcrSteps, inputs: readonly Tensor[], requested: readonly string[], deps: OcrDeps, ctx: StepContext): Promise<Tensor[]> {
  const image = inputs.find((t) => t.name === 'image');
  if (!image || inputs.length !== 1) throw invalidArgument(`${ctx.pipeline} takes one input, 'image' (BYTES, one encoded page per element); the request has ${inputs.map((t) => `'${t.name.slice(0, 64)}'`).join(', ') || 'none'}`);
  if (image.datatype !== 'BYTES') throw invalidArgument(`input 'image': datatype ${image.datatype}, BYTES expected (one encoded page per element)`);
  const pages = image.data as Buffer[];
  if (pages.length === 0) throw invalidArgument("input 'image': no pages");
  if (pages.length > MAX_PAGES) throw invalidArgument(`input 'image': ${pages.length} pages in one request, over the limit of ${MAX_PAGES}`);
  const unknown = requested.filter((name) => !(OCR_OUTPUTS as readonly string[]).includes(name));
  if (unknown.length) throw invalidArgument(`${ctx.pipeline} has no output '${unknown[0].slice(0, 64)}' (outputs: ${OCR_OUTPUTS.join(', ')})`);

  // A page that fails ends the request: the others' steps are cancelled, not left to run.
  const failed = new AbortController();
  const signal = AbortSignal.any([ctx.signal, failed.signal]);
  const results = new Array<PageLines>(pages.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(PAGES_AT_ONCE, pages.length) }, async () => {
    for (let index = next++; index < pages.length; index = next++) {
      signal.throwIfAborted();
      results[index] = await readPage(steps, pages[index], index, deps, { ...ctx, signal }).catch((error: unknown) => {
        failed.abort(error);
        throw error;
      });
    }
  }));

  const count = results.reduce((n, r) => n + r.text.length, 0);
  const tensors: Record<(typeof OCR_OUTPUTS)[number], Tensor> = {
    text: { name: 'text', datatype: 'BYTES', shape: [count], data: results.flatMap((r) => r.text) },
    boxes: { name: 'boxes', datatype: 'FP32', shape: [count, 4, 2], data: Float32Array.from(results.flatMap((r) => r.boxes)) },
    scores: { name: 'scores', datatype: 'FP32', shape: [count], data: Float32Array.from(results.flatMap((r) => r.scores)) },
    image_index: { name: 'image_index', datatype: 'INT32', shape: [count], data: Int32Array.from(results.flatMap((r, i) => r.text.map(() => i))) },
  };
  return (requested.length ? requested : OCR_OUTPUTS).map((name) => tensors[name as keyof typeof tensors]);
}

async function readPage(steps: OcrSteps, page: Buffer, index: number, deps: OcrDeps, outer: StepContext): Promise<PageLines> {
  const span = tracer.startSpan('ocr page', { attributes: { 'infermesh.page': index } }, trace.setSpan(otelContext.active(), outer.parent));
  const ctx: StepContext = { ...outer, parent: span };
  try {
    const lines = await pageLines(steps, page, deps, ctx);
    span.setAttribute('infermesh.lines', lines.text.length);
    return lines;
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    throw error;
  } finally {
    span.end();
  }
}

async function pageLines(steps: OcrSteps, page: Buffer, deps: OcrDeps, ctx: StepContext): Promise<PageLines> {
  const detected = await runStep(deps.models, steps.detect, [{ name: 'image', datatype: 'BYTES', shape: [1], data: [page] }], ctx);
  const boxes = checked(steps.detect, ctx, () => {
    const tensor = output(detected, 'boxes', 'FP32');
    if (tensor.shape.length !== 3 || tensor.shape[1] !== 4 || tensor.shape[2] !== 2) throw new TensorError(`output 'boxes' has shape [${tensor.shape.join(', ')}], [K, 4, 2] expected`);
    return tensor.data as Float32Array;
  });
  const count = boxes.length / 8;
  if (count === 0) return { text: [], boxes: [], scores: [] };

  const crops = await inStepSpan(steps.crop, ctx, { 'infermesh.glue': steps.crop.glue }, (span) => deps.glue.ocrCrop({ image: page, boxes: Array.from(boxes), traceparent: traceparentOf(span) }, { deadlineMs: ctx.deadlineMs, signal: ctx.signal }));
  const widths = crops.recognitionWidths;
  checked(steps.crop, ctx, () => {
    if (widths.length !== count || crops.direction.length !== count * LINE_HEIGHT * DIRECTION_WIDTH * 3) throw new TensorError(`answered ${widths.length} lines for ${count} boxes`);
  });

  let upsideDown: boolean[] = new Array<boolean>(count).fill(false);
  if (steps.direction) {
    const direction = steps.direction;
    const classes = await runStep(deps.models, direction, [{ name: 'x', datatype: 'UINT8', shape: [count, LINE_HEIGHT, DIRECTION_WIDTH, 3], data: new Uint8Array(crops.direction.buffer, crops.direction.byteOffset, crops.direction.length) }], ctx);
    const scores = checked(direction, ctx, () => {
      const tensor = [...classes.values()].find((t) => t.datatype === 'FP32' && t.shape.length === 2 && t.shape[0] === count && t.shape[1] === 2);
      if (!tensor) throw new TensorError(`no FP32 [${count}, 2] output (upright, rotated_180) in the answer`);
      return tensor.data as Float32Array;
    });
    upsideDown = upsideDown.map((_, k) => scores[k * 2 + 1] >= ROTATED_THRESHOLD);
  }

  // Each line's recognition tensor, turned back when upside down.
  const lines: Uint8Array[] = [];
  let at = 0;
  for (let k = 0; k < count; k++) {
    const bytes = LINE_HEIGHT * widths[k] * 3;
    const line = crops.recognition.subarray(at, at + bytes);
    lines.push(upsideDown[k] ? rotate180(line) : line);
    at += bytes;
  }
  const recognized = await recognize(steps.recognize, lines, widths, deps.models, ctx);

  const kept: PageLines = { text: [], boxes: [], scores: [] };
  for (let k = 0; k < count; k++) {
    if (recognized.scores[k] < DROP_SCORE) continue;
    kept.text.push(recognized.text[k]);
    kept.scores.push(recognized.scores[k]);
    for (let i = 0; i < 8; i++) kept.boxes.push(boxes[k * 8 + i]);
  }
  return kept;
}

/**
 * The lines recognized, in their order. Each line is its own request (one item at its own
 * width, no padding here), all of the page's lines at once: the coalescer joins them with the
 * lines of every page in flight into the model's batches, and the worker runs a batch as
 * groups of similar width (services/worker/src/variable-size.ts widthGroups), so no line is
 * padded to a page's widest. PP-OCRv4 recognition mixes the whole line: padding a short line
 * to a long one costs compute in proportion and changes what it reads (spaces dropped).
 */
async function recognize(step: PipelineStep__Output, lines: readonly Uint8Array[], widths: readonly number[], models: StepModels, ctx: StepContext): Promise<{ text: Buffer[]; scores: Float32Array }> {
  const text = new Array<Buffer>(lines.length);
  const scores = new Float32Array(lines.length);
  await Promise.all(lines.map(async (line, k) => {
    const answer = await runStep(models, step, [{ name: 'x', datatype: 'UINT8', shape: [1, LINE_HEIGHT, widths[k], 3], data: line }], ctx);
    checked(step, ctx, () => {
      const read = output(answer, 'text', 'BYTES');
      const score = output(answer, 'score', 'FP32');
      if (read.shape[0] !== 1 || (score.data as Float32Array).length !== 1) throw new TensorError(`answered ${read.shape[0]} lines for 1`);
      text[k] = (read.data as Buffer[])[0];
      scores[k] = (score.data as Float32Array)[0];
    });
  }));
  return { text, scores };
}

/** An image [48, w, 3] turned 180°: its pixels in reverse order. */
export function rotate180(line: Uint8Array): Uint8Array {
  const out = new Uint8Array(line.length);
  const pixels = line.length / 3;
  for (let i = 0; i < pixels; i++) {
    const from = i * 3;
    const to = (pixels - 1 - i) * 3;
    out[to] = line[from];
    out[to + 1] = line[from + 1];
    out[to + 2] = line[from + 2];
  }
  return out;
}

/** A model step; its failure names it, whatever runs it. */
function runStep(models: StepModels, step: PipelineStep__Output, inputs: Tensor[], ctx: StepContext): Promise<Map<string, Tensor>> {
  return models.run(step, inputs, ctx).catch((error: unknown) => {
    throw stepError(ctx.pipeline, step, error);
  });
}

/** A step's answer that the pipeline cannot read: INTERNAL naming the step (the model answered, but not as the pipeline expects). */
function checked<T>(step: PipelineStep__Output, ctx: StepContext, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof TensorError)) throw error;
    throw stepError(ctx.pipeline, step, new ServiceError(Status.INTERNAL, error.message));
  }
}


