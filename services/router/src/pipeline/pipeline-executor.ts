/**
 * Pipelines at the router: a request for a model announced with platform `pipeline` is
 * executed here, step by step (dataflow.ts; ocr-pipeline.ts for the OCR flow), instead of going to one worker. The answer is
 * a ModelInferResponse as a worker would encode it, so the rest of the request's handling
 * (the client's answer, its one prediction record, its span) is a model's.
 */
import { invalidArgument, Status, unavailable } from '@infermesh/grpc';
import { uuidv7, type ModelStatistics, type ModelStatus__Output } from '@infermesh/contracts';
import type { Span } from '@opentelemetry/api';
import type { WorkerAnswer } from '../coalescer.js';
import type { StepModels } from './model-step.js';
import type { OcrGlue } from './ocr-glue.js';
import { ocrSteps, runOcr } from './ocr-pipeline.js';
import { dataflowSteps, runDataflow } from './dataflow.js';
import { decodeRequest, inferResponse } from './tensors.js';

export interface PipelineCall {
  deadlineMs: number;
  signal: AbortSignal;
  /** The pipeline request's span: the steps' spans are its children. */
  span: Span;
  clientId: string;
}

interface Totals {
  lastInference: number;
  success: { count: bigint; ns: bigint };
  fail: { count: bigint; ns: bigint };
}

export class PipelineExecutor {
  /** Per pipeline version: what ModelStatistics answers for it (its steps' models have their own). */
  private readonly totals = new Map<string, Totals>();

  constructor(private readonly deps: { models: StepModels; glue: OcrGlue }) {}

  /** The request's answer (status OK); rejects with the status of what failed, a step's naming the step. */
  async infer(status: ModelStatus__Output, version: string, bytes: Buffer, call: PipelineCall): Promise<WorkerAnswer> {
    const started = process.hrtime.bigint();
    let ok = false;
    try {
      const ocr = ocrSteps(status.pipelineSteps);
      const dataflow = ocr ? undefined : dataflowSteps(status.pipelineSteps);
      if (!ocr && !dataflow) throw unavailable(`pipeline '${status.name}' announces steps this router cannot run (${status.pipelineSteps.map((s) => s.glue || s.model).join(' → ')})`);
      const request = decodeRequest(bytes);
      // Every answer has an id, as a model's does (the worker makes one there): the client's, else a UUIDv7.
      request.id ||= uuidv7();
      const ctx = { pipeline: status.name, requestId: request.id, deadlineMs: call.deadlineMs, signal: call.signal, parent: call.span, clientId: call.clientId };
      if (ocr && request.outputs.some((o) => o.parameters?.classification)) throw invalidArgument(`${status.name}'s outputs cannot be classified (its lines are text, not class scores)`);
      const outputs = ocr
        ? await runOcr(ocr, request.inputs, request.requested, this.deps, ctx)
        : await runDataflow(status, dataflow!, request.inputs, request.outputs, this.deps.models, ctx);
      const computeUs = Math.round(Number(process.hrtime.bigint() - started) / 1000);
      ok = true;
      return {
        response: inferResponse(status.name, version, request.id, outputs), statusCode: Status.OK, errorMessage: '', preprocessUs: 0, queueUs: 0, computeUs, batchSize: 0,
        driftBins: Buffer.alloc(0), profileId: '', predictedLabels: [], requestId: request.id, outputSample: [], workerId: '',
      };
    } finally {
      this.count(status.name, version, ok, process.hrtime.bigint() - started);
    }
  }

  private count(name: string, version: string, ok: boolean, ns: bigint): void {
    const key = `${name}\u0000${version}`;
    let totals = this.totals.get(key);
    if (!totals) {
      totals = { lastInference: 0, success: { count: 0n, ns: 0n }, fail: { count: 0n, ns: 0n } };
      this.totals.set(key, totals);
    }
    totals.lastInference = Date.now();
    const which = ok ? totals.success : totals.fail;
    which.count += 1n;
    which.ns += ns;
  }

  /** ModelStatistics of a pipeline version, counted here (a pipeline runs at routers, not at workers). */
  statistics(name: string, version: string): ModelStatistics {
    const totals = this.totals.get(`${name}\u0000${version}`);
    const duration = (d?: { count: bigint; ns: bigint }) => ({ count: String(d?.count ?? 0n), ns: String(d?.ns ?? 0n) });
    return {
      name, version,
      lastInference: String(totals?.lastInference ?? 0),
      inferenceCount: String(totals?.success.count ?? 0n),
      executionCount: String((totals?.success.count ?? 0n) + (totals?.fail.count ?? 0n)),
      inferenceStats: { success: duration(totals?.success), fail: duration(totals?.fail) },
      batchStats: [],
    };
  }
}

