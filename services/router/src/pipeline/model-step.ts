/**
 * A pipeline's model step: its tensors go to the step's model as a ModelInferRequest through
 * the router's own Coalescer, exactly as a client's request would (so the requests of
 * concurrent pages, and of other clients, share batches), to a worker chosen by the
 * routing table (placement included). Each request is recorded under the step's model, so
 * the monitor sees the models' own traffic; the pipeline request is recorded once, under
 * the pipeline.
 */
import { context as otelContext, trace, SpanStatusCode, type Span } from '@opentelemetry/api';
import { invalidArgument, ServiceError, Status, statusOf, unavailable } from '@infermesh/grpc';
import { TensorError, ARRAY_TYPE, type NumericArray, type Tensor } from '@infermesh/tensor';
import type { ModelStatus__Output, PredictionRecord, PipelineStep__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { Coalescer, WorkerAnswer } from '../coalescer.js';
import type { RoutingTable } from '../routing-table.js';
import { cutUtf8 } from '../worker-told.js';
import { answerFields, traceparentOf } from '../record-fields.js';
import { decodeOutputs, inferRequest, type RequestedOutput } from './tensors.js';

const tracer = trace.getTracer('infermesh-router');

/** Where a step runs: the pipeline request it serves. */
export interface StepContext {
  /** The pipeline's name, for messages ("ocr step 'detect' ..."). */
  pipeline: string;
  /** The pipeline request's id: step requests are `<id>/<step>/<n>`. */
  requestId: string;
  deadlineMs: number;
  signal: AbortSignal;
  /** The span steps are children of (the page's, or the pipeline request's). */
  parent: Span;
  /** The API key id of the pipeline request; steps are recorded as its. */
  clientId: string;
}

/** What runs a model step's tensors (ModelSteps; a stand-in in tests). */
export interface StepModels {
  /** The step's answer's outputs by name (those of `outputs` when given, else all); rejects with a status naming the step. */
  run(step: PipelineStep__Output, inputs: readonly Tensor[], ctx: StepContext, outputs?: readonly RequestedOutput[]): Promise<Map<string, Tensor>>;
  /** The rows one request to the step's model may carry (its max_batch_size; 0: no limit). */
  maxBatch(step: PipelineStep__Output): number;
}

/** A step's failure as the client sees it: the step's own status, its message naming the step. */
export function stepError(pipeline: string, step: PipelineStep__Output, error: unknown): ServiceError {
  const status = statusOf(error);
  const what = step.model ? `model ${step.model}` : `glue ${step.glue}`;
  const prefix = `${pipeline} step '${step.name}' (${what}): `;
  if (status.details.startsWith(prefix)) return error as ServiceError;
  return new ServiceError(status.code, `${prefix}${status.details}`);
}

export interface ModelStepsDeps {
  table: RoutingTable;
  coalescer: Coalescer;
  publish(record: PredictionRecord): void;
  logger: Logger;
}

/**
 * Runs one step of a pipeline in a span of its own under the page's; a failure is answered
 * with the step named (stepError) and recorded on the span.
 */
export async function inStepSpan<T>(step: PipelineStep__Output, ctx: StepContext, attributes: Record<string, string>, run: (span: Span) => Promise<T>): Promise<T> {
  const span = tracer.startSpan(`step ${step.name}`, { attributes: { 'infermesh.step': step.name, ...attributes } }, trace.setSpan(otelContext.active(), ctx.parent));
  try {
    return await run(span);
  } catch (error) {
    const failure = stepError(ctx.pipeline, step, error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
    throw failure;
  } finally {
    span.end();
  }
}

export class ModelSteps implements StepModels {
  private sequence = 0;

  constructor(private readonly deps: ModelStepsDeps) {}

  maxBatch(step: PipelineStep__Output): number {
    return this.deps.table.model(step.model)?.maxBatchSize ?? 0;
  }

  /**
   * Runs the inputs as one request, or, when they hold more rows than the model takes in one
   * request, as several (split along the first dimension) whose outputs are joined in order.
   */
  async run(step: PipelineStep__Output, inputs: readonly Tensor[], ctx: StepContext, outputs: readonly RequestedOutput[] = []): Promise<Map<string, Tensor>> {
    return inStepSpan(step, ctx, { 'infermesh.model': step.model }, async (span) => {
      const status = this.deps.table.model(step.model);
      if (!status) throw unavailable(`no worker currently serves model '${step.model}'`);
      // A router executes a pipeline's steps as model requests to workers; a pipeline as a step would go to a worker that cannot run it.
      if (status.platform === 'pipeline') throw new ServiceError(Status.FAILED_PRECONDITION, `model '${step.model}' is a pipeline: a step runs a model, pipelines do not nest`);
      // A model without a batch dimension takes the tensors as they are; one that batches takes at most max_batch_size rows a request.
      const batching = status.maxBatchSize > 0;
      const rows = batching ? (inputs[0]?.shape[0] ?? 0) : 1;
      let chunks: Tensor[][] = [[...inputs]];
      if (batching && rows > status.maxBatchSize) {
        const disagree = inputs.find((t) => t.shape[0] !== rows);
        if (disagree) throw invalidArgument(`inputs disagree on the batch size: '${inputs[0].name.slice(0, 64)}' has ${rows} rows, '${disagree.name.slice(0, 64)}' ${disagree.shape[0] ?? 'none'}`);
        chunks = [];
        for (let from = 0; from < rows; from += status.maxBatchSize) chunks.push(inputs.map((t) => rowsOf(t, from, Math.min(rows, from + status.maxBatchSize))));
      }
      span.setAttributes({ 'infermesh.items': rows, 'infermesh.requests': chunks.length });
      // Anything else about the tensors (a batch of 0 rows, rows that disagree within one request) is the worker's to judge, as for a client's request.
      const answers = await Promise.all(chunks.map((chunk) => this.request(status, chunk, batching ? (chunk[0]?.shape[0] ?? 0) : 1, outputs, span, ctx)));
      return joinRows(answers);
    });
  }

  private async request(status: ModelStatus__Output, inputs: Tensor[], items: number, outputs: readonly RequestedOutput[], span: Span, ctx: StepContext): Promise<Map<string, Tensor>> {
    // Within the id limit whatever the client's id (REQUEST_LIMITS.nameBytes: 256).
    const id = `${cutUtf8(ctx.requestId, 128)}/${status.name.slice(0, 64)}/${++this.sequence}`;
    const bytes = inferRequest(status.name, id, inputs, outputs);
    const arrivedNs = process.hrtime.bigint();
    const traceparent = traceparentOf(span);
    let answer: WorkerAnswer | undefined;
    try {
      const result = await this.deps.coalescer.submit(status, status.version, { bytes, deadlineMs: ctx.deadlineMs, traceparent, arrivedNs }, items, ctx.signal);
      answer = result.output;
      if (answer.statusCode !== Status.OK) throw new ServiceError(answer.statusCode, answer.errorMessage);
      this.record(status, id, items, Status.OK, '', arrivedNs, traceparent, ctx, answer);
      return decodeOutputs(answer.response);
    } catch (error) {
      const failure = statusOf(error);
      this.record(status, id, items, failure.code, failure.details, arrivedNs, traceparent, ctx, answer);
      throw error;
    }
  }

  private record(status: ModelStatus__Output, id: string, items: number, code: number, message: string, arrivedNs: bigint, traceparent: string, ctx: StepContext, answer?: WorkerAnswer): void {
    this.deps.publish({
      requestId: answer?.requestId || id,
      model: status.name,
      version: status.version,
      ...answerFields(arrivedNs, traceparent, answer),
      statusCode: code,
      errorMessage: message.slice(0, 1024),
      items,
      clientId: ctx.clientId,
      driftBins: answer?.driftBins ?? Buffer.alloc(0),
      profileId: answer?.profileId ?? '',
      predictedLabels: (answer?.predictedLabels ?? []).slice(0, items),
    });
  }
}


/** Rows [from, to) of a tensor (along its first dimension). */
export function rowsOf(tensor: Tensor, from: number, to: number): Tensor {
  const rows = tensor.shape[0];
  if (from === 0 && to === rows) return tensor;
  const shape = [to - from, ...tensor.shape.slice(1)];
  if (tensor.datatype === 'BYTES') return { ...tensor, shape, data: (tensor.data as Buffer[]).slice(from, to) };
  const per = tensor.shape.slice(1).reduce((a, b) => a * b, 1);
  return { ...tensor, shape, data: (tensor.data as NumericArray).subarray(from * per, to * per) as NumericArray };
}

/** The outputs of several requests joined row after row, in order. */
export function joinRows(parts: readonly Map<string, Tensor>[]): Map<string, Tensor> {
  if (parts.length === 1) return parts[0];
  const joined = new Map<string, Tensor>();
  for (const [name, first] of parts[0] ?? []) {
    const all = parts.map((p) => {
      const t = p.get(name);
      if (!t || t.datatype !== first.datatype) throw new TensorError(`output '${name}' differs between the requests of one step`);
      return t;
    });
    const shape = [all.reduce((n, t) => n + t.shape[0], 0), ...first.shape.slice(1)];
    if (first.datatype === 'BYTES') {
      joined.set(name, { ...first, shape, data: all.flatMap((t) => t.data as Buffer[]) });
      continue;
    }
    const total = all.reduce((n, t) => n + (t.data as NumericArray).length, 0);
    const data = new ARRAY_TYPE[first.datatype](total);
    let at = 0;
    for (const t of all) {
      (data as { set(a: ArrayLike<number | bigint>, o: number): void }).set(t.data as ArrayLike<number | bigint>, at);
      at += (t.data as NumericArray).length;
    }
    joined.set(name, { ...first, shape, data });
  }
  return joined;
}
