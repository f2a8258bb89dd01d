/** The public GRPCInferenceService: routes each request to a worker, through the preprocessor when the model has a pipeline. */
import { randomUUID } from 'node:crypto';
import { context, trace } from '@opentelemetry/api';
import * as grpc from '@grpc/grpc-js';
import {
  WORKER_RESPONSE_PARAMETERS, type ModelInferRequest, type ModelInferRequest__Output, type ModelInferResponse, type ModelInferResponse__Output,
  type ModelMetadataRequest__Output, type ModelReadyRequest__Output, type ModelStatus__Output, type ModelStatisticsRequest__Output, type ModelStatisticsResponse__Output, type PreprocessResponse__Output, type PredictionRecord,
} from '@infermesh/contracts';
import { invalidArgument, notFound, unavailable, statusOf, unaryCall, serveInferStream, Status, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import type { RoutingTable } from './routing-table.js';
import type { WorkerPool } from './worker-pool.js';
import type { PredictionPublisher } from './prediction-publisher.js';
import type { PreprocessorClient } from './preprocessor-client.js';
import { summarizeInputs } from './input-summary.js';
import { mergeStatistics } from './statistics.js';

export interface RouterDeps {
  table: RoutingTable;
  pool: WorkerPool;
  preprocessor: PreprocessorClient;
  publisher: PredictionPublisher;
  logger: Logger;
  requestTimeoutMs: number;
  maxAttempts: number;
  version: string;
}

export const EXTENSIONS = ['model_repository', 'statistics', 'streaming', 'classification', 'infermesh_preprocessing'];

/** The model / version label of records for names the mesh does not serve. */
export const UNKNOWN = '_unknown';

/** Items of one stream in progress at once; beyond this the stream stops reading (back-pressure). */
export const STREAM_WINDOW = 64;

interface Timings {
  preprocessUs: number;
  queueUs: number;
  computeUs: number;
  batchSize: number;
  workerId: string;
}

export function inferenceHandlers(deps: RouterDeps): ServiceHandlers {
  const { table, logger } = deps;

  function resolveModel(name: string, version: string) {
    if (!name) throw invalidArgument('model_name is empty');
    const status = table.model(name, version);
    if (status) return status;
    if (!table.isKnown(name)) throw notFound(`model '${name}' is not served by this mesh`);
    if (version && table.holders(name).length > 0) {
      throw notFound(`model '${name}' has no version '${version}' (versions: ${table.versions(name).join(', ')})`);
    }
    throw unavailable(`no worker currently serves model '${name}'${version ? ` version '${version}'` : ''}`);
  }

  function deadlineOf(ctx: CallContext): number {
    const client = ctx.deadline instanceof Date ? ctx.deadline.getTime() : Number(ctx.deadline);
    const own = Date.now() + deps.requestTimeoutMs;
    return Number.isFinite(client) ? Math.min(client, own) : own;
  }

  async function preprocess(request: ModelInferRequest__Output, status: ModelStatus__Output, ctx: CallContext, deadline: number): Promise<{ request: ModelInferRequest; us: number }> {
    const pipeline = status.pipeline;
    const spec = pipeline?.image ?? pipeline?.tabular;
    if (!pipeline || !spec) return { request, us: 0 };
    const names = request.inputs.map((i) => i.name);
    if (!names.includes(spec.input)) {
      if (names.includes(spec.output)) return { request, us: 0 }; // the client sent the model's tensor itself
      const kind = pipeline.image ? 'one encoded PNG/JPEG image per element' : 'one JSON object per row';
      throw invalidArgument(`model '${request.modelName}' takes input '${spec.input}' (BYTES, ${kind}) or its tensor '${spec.output}'; got ${names.map((n) => `'${n}'`).join(', ') || 'no inputs'}`);
    }
    const started = process.hrtime.bigint();
    const response: PreprocessResponse__Output = await deps.preprocessor.preprocess(
      { modelName: request.modelName, pipeline, inputs: request.inputs, rawInputContents: request.rawInputContents },
      { deadline, signal: ctx.signal },
    );
    return {
      request: { ...request, inputs: response.inputs, rawInputContents: response.rawInputContents },
      us: Number(process.hrtime.bigint() - started) / 1000,
    };
  }

  /**
   * Sends to a worker. A worker that is unreachable, draining, or vanishes while the
   * request is in progress (its heartbeats stop) is skipped and the request tried on
   * another: inference has no side effects, so a retry is safe.
   */
  async function forward(request: ModelInferRequest, ctx: CallContext, deadline: number): Promise<ModelInferResponse__Output> {
    const tried = new Set<string>();
    let lastError: unknown;
    for (let attempt = 0; attempt < deps.maxAttempts; attempt++) {
      const worker = table.pick(request.modelName ?? '', request.modelVersion ?? '', tried);
      if (!worker) break;
      tried.add(worker.id);
      worker.outstanding++;
      const tracked = deps.pool.track(worker.id, ctx.signal);
      try {
        const client = deps.pool.client(worker.id, worker.address);
        return await unaryCall(client, client.ModelInfer, request, {
          deadline, signal: tracked.signal, spanName: 'worker ModelInfer',
          attributes: { 'infermesh.worker_id': worker.id, 'infermesh.attempt': attempt + 1 },
        });
      } catch (error) {
        const code = (error as grpc.ServiceError).code;
        const retry = tracked.vanished || code === Status.UNAVAILABLE;
        if (!retry || ctx.signal.aborted || Date.now() >= deadline) throw error;
        lastError = error;
        logger.warn({ worker_id: worker.id, details: tracked.vanished ? 'vanished' : (error as grpc.ServiceError).details }, 'worker unavailable; trying another');
        // A worker that refuses connections is gone until its next heartbeat says otherwise.
        if (!tracked.vanished) table.remove(worker.id, 'unreachable');
      } finally {
        tracked.release();
        worker.outstanding--;
      }
    }
    if (lastError) throw unavailable(`no worker could serve model '${request.modelName}': ${(lastError as grpc.ServiceError).details ?? (lastError as Error).message}`);
    throw unavailable(`no worker currently serves model '${request.modelName}'`);
  }

  function takeTimings(response: ModelInferResponse__Output): Timings {
    const p = response.parameters ?? {};
    const int = (key: string) => Number(p[key]?.int64Param ?? 0);
    const timings = {
      preprocessUs: 0,
      queueUs: int(WORKER_RESPONSE_PARAMETERS.queueUs),
      computeUs: int(WORKER_RESPONSE_PARAMETERS.computeUs),
      batchSize: int(WORKER_RESPONSE_PARAMETERS.batchSize),
      workerId: p[WORKER_RESPONSE_PARAMETERS.workerId]?.stringParam ?? '',
    };
    for (const key of Object.values(WORKER_RESPONSE_PARAMETERS)) delete p[key];
    return timings;
  }

  async function modelInfer(request: ModelInferRequest__Output, ctx: CallContext): Promise<ModelInferResponse> {
    const started = process.hrtime.bigint();
    const requestId = request.id || randomUUID();
    const requestContext = context.active();
    ctx.span.setAttributes({ 'infermesh.model': request.modelName, 'infermesh.request_id': requestId });
    let forwarded: ModelInferRequest = request;
    let timings: Timings | undefined;
    let preprocessUs = 0;
    try {
      const deadline = deadlineOf(ctx);
      // Resolved once; an unversioned request is pinned to the newest version, so it is
      // preprocessed and run by the same version during a rollout.
      const status = resolveModel(request.modelName, request.modelVersion);
      const pinned = request.modelVersion ? request : { ...request, modelVersion: status.version };
      const pre = await preprocess(pinned, status, ctx, deadline);
      forwarded = pre.request;
      preprocessUs = pre.us;
      const response = await forward(forwarded, ctx, deadline);
      timings = takeTimings(response);
      record(request, requestId, forwarded, response.modelVersion, Status.OK, '', started, { ...timings, preprocessUs }, requestContext);
      return { ...response, id: request.id };
    } catch (error) {
      const status = statusOf(error);
      // Errors count against the version that would have served the request.
      const version = request.modelVersion || table.model(request.modelName)?.version || '';
      record(request, requestId, forwarded, version, status.code, status.details, started, timings ?? { preprocessUs, queueUs: 0, computeUs: 0, batchSize: 0, workerId: '' }, requestContext);
      throw error;
    }
  }

  function record(
    request: ModelInferRequest__Output, requestId: string, forwarded: ModelInferRequest, version: string, code: number, message: string,
    started: bigint, timings: Timings, ctx: ReturnType<typeof context.active>,
  ): void {
    if (!request.modelName) return;
    // Any client can name any model or version: label records with names the mesh serves
    // only, so refused requests cannot grow the monitor's series without bound.
    const model = table.isKnown(request.modelName) ? request.modelName : UNKNOWN;
    const knownVersion = model !== UNKNOWN && (!version || table.versions(model).includes(version) || version === table.model(model)?.version);
    let inputs: PredictionRecord['inputs'] = [];
    try {
      inputs = summarizeInputs(
        (forwarded.inputs ?? []).map((i) => ({ name: i.name ?? '', datatype: i.datatype ?? '', shape: (i.shape ?? []).map(String) })),
        (forwarded.rawInputContents ?? []) as Uint8Array[],
      );
    } catch {
      // A malformed input is already reported to the client; the record keeps no summary.
    }
    const firstShape = inputs[0]?.shape;
    deps.publisher.publish(
      {
        requestId,
        model,
        version: knownVersion ? version : UNKNOWN,
        workerId: timings.workerId,
        statusCode: code,
        errorMessage: message,
        latencyUs: String(Math.round(Number(process.hrtime.bigint() - started) / 1000)),
        preprocessUs: String(Math.round(timings.preprocessUs)),
        queueUs: String(timings.queueUs),
        computeUs: String(timings.computeUs),
        batchSize: timings.batchSize,
        traceId: trace.getSpan(ctx)?.spanContext().traceId ?? '',
        timestampMs: String(Date.now()),
        inputs,
        items: firstShape && firstShape.length > 0 ? Number(firstShape[0]) : 0,
      },
      ctx,
    );
  }

  return {
    ServerLive: async () => ({ live: true }),
    ServerReady: async () => ({ ready: table.list().length > 0 }),
    ModelReady: async (request: ModelReadyRequest__Output) => ({ ready: table.holders(request.name, request.version).length > 0 }),
    ServerMetadata: async () => ({ name: 'infermesh', version: deps.version, extensions: EXTENSIONS }),
    ModelMetadata: async (request: ModelMetadataRequest__Output) => {
      const status = resolveModel(request.name, request.version);
      return { name: status.name, versions: table.versions(status.name), platform: status.platform, inputs: status.inputs, outputs: status.outputs };
    },
    ModelInfer: modelInfer,
    ModelStreamInfer: {
      bidi: (call, ctx) => serveInferStream(call as never, ctx, { window: STREAM_WINDOW, logger, infer: modelInfer }),
    },
    ModelStatistics: async (request: ModelStatisticsRequest__Output, ctx: CallContext) => {
      if (request.name) resolveModel(request.name, request.version);
      const workers = request.name ? table.holders(request.name, request.version) : table.list();
      const answers = await Promise.all(
        workers.map((worker) => {
          const client = deps.pool.client(worker.id, worker.address);
          return unaryCall<object, ModelStatisticsResponse__Output>(client, client.ModelStatistics, request, { deadline: Date.now() + 5000, signal: ctx.signal }).then(
            (response) => response.modelStats,
            (error: unknown) => {
              logger.warn({ worker_id: worker.id, err: error }, 'worker statistics unavailable');
              return [];
            },
          );
        }),
      );
      return { modelStats: mergeStatistics(answers.flat()) };
    },
    // The routing table holds only ready models, so `ready: true` and `ready: false` list the same.
    RepositoryIndex: async () => {
      const seen = new Map<string, { name: string; version: string; state: string; reason: string }>();
      for (const worker of table.list()) {
        for (const model of worker.models) seen.set(`${model.name}:${model.version}`, { name: model.name, version: model.version, state: 'READY', reason: '' });
      }
      return { models: [...seen.values()].sort((a, b) => a.name.localeCompare(b.name) || Number(a.version) - Number(b.version)) };
    },
  };
}
