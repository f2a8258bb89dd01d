/**
 * Runs clients' requests on one served model: decode each request, turn raw inputs into
 * the model's tensors (images through the preprocessor, all of a batch's images in one
 * call; rows parsed here), queue them on the model's batcher in the same tick so they run
 * together, and encode each answer. Each request is answered on its own: one bad request
 * fails only itself.
 *
 * Every request gets one span in its own trace (`infer <model>`), with `queue` and
 * `compute` children; the preprocessor adds its span under it.
 *
 * An answered request also carries what its prediction record needs: its id (the client's, or
 * a UUIDv7 made here), its inputs' drift bins (from the feature tensor, or the preprocessor's
 * image statistics) and its predicted class labels.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { decodeInputs, encodeBytesElements, encodeRaw, formatShape, TensorError, type Tensor } from '@infermesh/tensor';
import { preprocessResultBytes, type ImageStatistics__Output, type ModelInferRequest__Output, type ModelInferResponse } from '@infermesh/contracts';
import { packWithin } from '@infermesh/batching';
import { deadlineExceeded, statusOf } from '@infermesh/grpc';
import type { ServedModel } from './served-model.js';
import type { PreprocessorClient } from './preprocessor-client.js';
import { imagePipeline, imagePipelineMessage, tabularPipeline, type ImagePipelineConfig } from './model-config.js';
import { checkFeatureTensor, rowsToTensor } from './tabular-rows.js';
import { requestIdOf } from './request-id.js';
import { outputSample } from './output-sample.js';
import { cropFrames, paddedFrame, resizedSize, variableDims } from './variable-size.js';
import type { ImageGeometry } from './postprocess/geometry.js';

/** One request to run. */
export interface RunItem {
  /** The decoded request (absent when it could not be decoded: `error` says why). */
  request?: ModelInferRequest__Output;
  /** Set when the request already failed before it came here (malformed, wrong model). */
  error?: unknown;
  /** Time the request already waited in a router's queue. */
  queuedNs: number;
  /** When the client's deadline passes (ms since the epoch); Infinity for none. */
  deadlineMs: number;
  /** The trace the request belongs to. */
  parent: Context;
  /** The router compares this answer with another version's: return an output sample (models without labels). */
  sampleOutputs?: boolean;
}

/** What became of one request. */
export interface RunOutcome {
  /** The answer, when the request succeeded. */
  response?: ModelInferResponse;
  /** Why it failed: anything libs/grpc's statusOf maps. */
  error?: unknown;
  preprocessNs: number;
  queueNs: number;
  computeNs: number;
  batchSize: number;
  /** Answered requests: the id recorded for the request ('' when the client's is too long to record). */
  requestId?: string;
  /** Answered requests of a model with a profile: one byte per input and feature (see PredictionRecord.drift_bins). */
  driftBins?: Buffer;
  /** The profile the bins were computed with; '' without bins. */
  profileId?: string;
  /** Answered requests of a classifier: each input's predicted label. */
  predictedLabels?: string[];
  /** Answered requests that asked for it, of a model without a classifier output: see output-sample.ts. */
  outputSample?: number[];
}

export interface RunnerDeps {
  preprocessor: PreprocessorClient;
  workerId: string;
  /** The largest message a call to the preprocessor may carry, each way. */
  maxMessageBytes: number;
}

/** A request on its way: its span, its tensors once known, or the error that ended it. */
interface InFlight {
  item: RunItem;
  span: Span;
  tensors?: Tensor[];
  /** Per image, from the preprocessor: what an image model's drift bins are computed from. */
  statistics?: ImageStatistics__Output[];
  /** Per image of a variable-size model: where it is in the pixel tensor, and its size as sent. */
  geometry?: ImageGeometry[];
  error?: unknown;
  preprocessNs: number;
}

const tracer = trace.getTracer('infermesh-worker');

/** The W3C traceparent of a span, formatted directly. */
function traceparentOf(span: Span): string {
  const context = span.spanContext();
  if (!trace.isSpanContextValid(context)) return '';
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags & 1 ? '01' : '00'}`;
}

export class RequestRunner {
  /** Runs in progress (preprocessing included), so a stopping worker can wait for them. */
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly deps: RunnerDeps) {}

  /** Resolves when no run is in progress. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async run(model: ServedModel, items: readonly RunItem[], signal?: AbortSignal): Promise<RunOutcome[]> {
    this.running++;
    try {
      return await this.runItems(model, items, signal);
    } finally {
      if (--this.running === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private async runItems(model: ServedModel, items: readonly RunItem[], signal?: AbortSignal): Promise<RunOutcome[]> {
    const now = Date.now();
    const flights: InFlight[] = items.map((item) => {
      const span = tracer.startSpan(`infer ${model.name}`, {
        kind: SpanKind.SERVER,
        attributes: { 'infermesh.model': model.name, 'infermesh.model_version': model.version, 'infermesh.worker_id': this.deps.workerId, 'infermesh.request_id': (item.request?.id ?? '').slice(0, 256) },
      }, item.parent);
      const flight: InFlight = { item, span, preprocessNs: 0 };
      if (item.error !== undefined || !item.request) {
        flight.error = item.error;
      } else if (item.deadlineMs <= now) {
        // Passed its deadline on the way here (a batch sent again after a worker vanished): no work for it.
        flight.error = deadlineExceeded('the request\'s deadline passed before it reached a worker');
      } else {
        try {
          flight.tensors = decodeInputs(item.request.inputs, item.request.rawInputContents);
        } catch (error) {
          flight.error = error;
        }
      }
      return flight;
    });
    await this.prepare(model, flights.filter((f) => f.tensors), signal);
    // Every request is queued in the same tick, so the batcher considers them together.
    const runs = flights.map((flight) => {
      if (!flight.tensors) return Promise.reject(flight.error);
      const deadlineNs = Number.isFinite(flight.item.deadlineMs)
        ? process.hrtime.bigint() + BigInt(Math.max(0, Math.round((flight.item.deadlineMs - Date.now()) * 1e6)))
        : undefined;
      return model.infer(flight.tensors, flight.item.request!.outputs, { signal, queuedNs: flight.item.queuedNs, deadlineNs, geometry: flight.geometry });
    });
    const settled = await Promise.allSettled(runs);
    return settled.map((result, i) => this.finish(model, flights[i], result));
  }

  /** Replaces each request's raw input (images, rows) by the model tensor it stands for. */
  private async prepare(model: ServedModel, flights: InFlight[], signal?: AbortSignal): Promise<void> {
    const image = imagePipeline(model.config);
    const tabular = tabularPipeline(model.config);
    const pipeline = image ?? tabular;
    if (!pipeline) return;
    const needImages: InFlight[] = [];
    for (const flight of flights) {
      const tensors = flight.tensors!;
      const raw = tensors.find((t) => t.name === pipeline.input);
      if (!raw) {
        const own = tensors.find((t) => t.name === pipeline.output);
        if (own) {
          // The client sent the model tensor itself: features must still be numbers the model can use.
          if (tabular) {
            try {
              checkFeatureTensor(tabular, own);
            } catch (error) {
              flight.error = error;
              flight.tensors = undefined;
            }
          }
          continue;
        }
        const names = tensors.map((t) => `'${t.name}'`).join(', ') || 'no inputs';
        const kind = image ? 'one encoded PNG/JPEG image per element' : 'one JSON object per row';
        flight.error = new TensorError(`model '${model.name}' takes input '${pipeline.input}' (BYTES, ${kind}) or its tensor '${pipeline.output}'; got ${names}`);
        flight.tensors = undefined;
        continue;
      }
      try {
        if (raw.datatype !== 'BYTES') throw new TensorError(`input '${raw.name}': datatype ${raw.datatype}, expected BYTES (${image ? 'one encoded image' : 'one JSON object'} per element)`);
        if (raw.shape.length === 0 || raw.shape.slice(1).some((d) => d !== 1)) throw new TensorError(`input '${raw.name}': shape ${formatShape(raw.shape)}, expected [N] (one element per item)`);
        // Checked before any work: a request over the limit costs nothing to refuse.
        const count = raw.shape[0];
        const most = Math.max(1, model.config.max_batch_size);
        if (count < 1 || count > most) {
          throw new TensorError(`input '${raw.name}': batch size ${count}, model '${model.name}' accepts ${most === 1 ? '1' : `1 to ${most}`}`);
        }
        if (image) {
          needImages.push(flight);
        } else {
          const started = process.hrtime.bigint();
          flight.tensors = tensors.map((t) => (t === raw ? rowsToTensor(tabular!, raw) : t));
          flight.preprocessNs = Number(process.hrtime.bigint() - started);
        }
      } catch (error) {
        flight.error = error;
        flight.tensors = undefined;
      }
    }
    if (needImages.length > 0) await this.preprocessImages(model, needImages, signal);
  }

  /**
   * The images of every request that has some, in as few preprocessor calls as the message
   * limit allows each way (encoded images out, pixel frames back), made at once.
   */
  private async preprocessImages(model: ServedModel, flights: InFlight[], signal?: AbortSignal): Promise<void> {
    const spec = imagePipeline(model.config)!;
    const frame = spec.width * spec.height * 3;
    const items = flights.map((flight) => {
      const images = flight.tensors!.find((t) => t.name === spec.input)!.data as Buffer[];
      return { flight, images: encodeBytesElements(images), pixels: preprocessResultBytes(images.length, frame) };
    });
    // Room for the call's own framing, the pipeline and the traceparents (a quarter of a small limit).
    const limit = this.deps.maxMessageBytes;
    const budget = limit - Math.min(64 * 1024, Math.floor(limit / 4));
    const fitting = items.filter((item) => {
      if (item.images.length <= budget && item.pixels <= budget) return true;
      const what = item.images.length > budget ? `images (${item.images.length} bytes)` : `pixels (${item.pixels} bytes)`;
      item.flight.error = new TensorError(`input '${spec.input}': the request's ${what} exceed the ${this.deps.maxMessageBytes}-byte message limit (GRPC_MAX_MESSAGE_BYTES)`);
      item.flight.tensors = undefined;
      return false;
    });
    const calls = packWithin(fitting, budget, (item) => [item.images.length, item.pixels]);
    await Promise.all(calls.map((call) => this.preprocessCall(model, spec, call, signal)));
  }

  private async preprocessCall(model: ServedModel, spec: ImagePipelineConfig, items: { flight: InFlight; images: Buffer }[], signal?: AbortSignal): Promise<void> {
    const flights = items.map((i) => i.flight);
    const started = process.hrtime.bigint();
    const deadlineMs = Math.max(...flights.map((f) => f.item.deadlineMs));
    try {
      const results = await this.deps.preprocessor.preprocess(model.name, imagePipelineMessage(spec), items.map((i) => ({ images: i.images, traceparent: traceparentOf(i.flight.span) })), {
        deadlineMs: Number.isFinite(deadlineMs) ? deadlineMs : Date.now() + 30_000,
        signal,
      });
      const elapsed = Number(process.hrtime.bigint() - started);
      flights.forEach((flight, i) => {
        const result = results[i];
        flight.preprocessNs = elapsed;
        if (result.error) {
          flight.error = new TensorError(result.error);
          flight.tensors = undefined;
          return;
        }
        if (result.statistics.length === result.count) flight.statistics = result.statistics;
        let pixels = new Uint8Array(result.pixels.buffer, result.pixels.byteOffset, result.pixels.byteLength);
        let [height, width] = [spec.height, spec.width];
        const variable = variableDims(model.config, spec);
        if (variable && flight.statistics) {
          // Each image's resized size in its frame; the request's tensor is cut down to the largest of them.
          const sizes = flight.statistics.map((s) => resizedSize(spec, s.width, s.height));
          flight.geometry = sizes.map((size, n) => ({ ...size, sourceHeight: flight.statistics![n].height, sourceWidth: flight.statistics![n].width }));
          ({ height, width } = paddedFrame({ ...spec, min_width: undefined }, variable, sizes));
          pixels = cropFrames(pixels, result.count, spec, height, width);
        }
        const tensor: Tensor = { name: spec.output, datatype: 'UINT8', shape: [result.count, height, width, 3], data: pixels };
        flight.tensors = flight.tensors!.map((t) => (t.name === spec.input ? tensor : t));
      });
    } catch (error) {
      for (const flight of flights) {
        flight.error = error;
        flight.tensors = undefined;
      }
    }
  }

  private finish(model: ServedModel, flight: InFlight, result: PromiseSettledResult<Awaited<ReturnType<ServedModel['infer']>>>): RunOutcome {
    const { span, item } = flight;
    if (result.status === 'rejected') {
      const status = statusOf(result.reason);
      span.setStatus({ code: SpanStatusCode.ERROR, message: status.details });
      span.setAttribute('rpc.grpc.status_code', status.code);
      span.end();
      return { error: result.reason, preprocessNs: flight.preprocessNs, queueNs: 0, computeNs: 0, batchSize: 0 };
    }
    const { outputs, queueNs, computeNs, batchSize, predictedLabels } = result.value;
    const { responseId, recordedId } = requestIdOf(item.request!.id);
    if (responseId !== item.request!.id) span.setAttribute('infermesh.request_id', responseId);
    recordQueueAndCompute(span, queueNs, computeNs, batchSize);
    span.end();
    const driftBins = driftBinsOf(model, flight);
    return {
      response: {
        modelName: model.name,
        modelVersion: model.version,
        id: responseId,
        outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape.map(String) })),
        rawOutputContents: outputs.map((o) => encodeRaw(o.data)),
      },
      preprocessNs: flight.preprocessNs,
      queueNs,
      computeNs,
      batchSize,
      requestId: recordedId,
      driftBins,
      profileId: driftBins ? model.drift!.profileId : '',
      predictedLabels,
      outputSample: item.sampleOutputs && !model.classifier ? outputSample(outputs[0]) : undefined,
    };
  }
}

/**
 * The drift bins of an answered request: from the preprocessor's statistics of its images, or
 * from its feature tensor (parsed rows, or the tensor the client sent: the same raw units).
 * None for a model without a profile, or for an image model sent its pixel tensor directly
 * (the images as sent are unknown then). At most the model's batch of inputs is binned.
 */
function driftBinsOf(model: ServedModel, flight: InFlight): Buffer | undefined {
  const drift = model.drift;
  if (!drift) return undefined;
  const most = Math.max(1, model.config.max_batch_size);
  if (flight.statistics) return flight.statistics.length <= most ? drift.binImages(flight.statistics) : undefined;
  const tabular = tabularPipeline(model.config);
  const features = tabular && flight.tensors?.find((t) => t.name === tabular.output);
  if (!features || features.shape.length === 0 || features.shape[0] > most) return undefined;
  return drift.binRows(features);
}

/** Queue and compute as children of the request's span, with their measured times. */
function recordQueueAndCompute(parent: Span, queueNs: number, computeNs: number, batchSize: number): void {
  if (!parent.isRecording()) return;
  const context = trace.setSpan(ROOT_CONTEXT, parent);
  const now = Date.now();
  const computeStart = now - computeNs / 1e6;
  const queueStart = computeStart - queueNs / 1e6;
  tracer.startSpan('queue', { startTime: queueStart }, context).end(computeStart);
  tracer.startSpan('compute', { startTime: computeStart, attributes: { 'infermesh.batch_size': batchSize } }, context).end(now);
  parent.setAttribute('infermesh.batch_size', batchSize);
}
