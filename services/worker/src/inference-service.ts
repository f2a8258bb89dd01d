/**
 * What a worker serves: infermesh.v1.Worker's InferBatch (the requests a router coalesced)
 * and GRPCInferenceService for direct callers (the same requests one at a time, model
 * metadata and statistics). Both run requests through the same RequestRunner.
 */
import { ROOT_CONTEXT, context, propagation } from '@opentelemetry/api';
import { serveInferStream, serveStream, statusOf, unavailable, invalidArgument, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import { inferenceService } from '@infermesh/contracts';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '@infermesh/log';
import type {
  BatchedResponse, InferBatchRequest__Output, InferBatchResponse, ModelInferRequest__Output, ModelInferResponse, ModelMetadataRequest__Output,
  ModelReadyRequest__Output, ModelStatisticsRequest__Output, RepositoryIndexRequest__Output,
} from '@infermesh/contracts';
import type { ModelRegistry } from './model-registry.js';
import type { RequestRunner, RunOutcome } from './request-runner.js';

export interface WorkerState {
  workerId: string;
  draining: boolean;
  /** Aborted when the worker stops: its batch streams answer what they hold and end. */
  readonly drain: AbortController;
}

/** Items of one stream in progress at once; beyond this the stream stops reading (back-pressure). */
export const STREAM_WINDOW = 128;
/** Batches in progress on one router's stream; a router bounds its own far below this. */
export const BATCH_WINDOW = 256;

const inferCodec = inferenceService().ModelInfer as unknown as { requestDeserialize(bytes: Buffer): ModelInferRequest__Output };

/**
 * One request of a router's batch, decoded on its own: a request that is not a
 * ModelInferRequest, or that names another model than its batch, fails alone.
 */
function decodeBatched(bytes: Buffer, model: string, version: string): { request?: ModelInferRequest__Output; error?: unknown } {
  let request: ModelInferRequest__Output;
  try {
    request = inferCodec.requestDeserialize(bytes);
  } catch (error) {
    return { error: invalidArgument(`the request is not a ModelInferRequest: ${(error as Error).message}`) };
  }
  if (request.modelName !== model || (request.modelVersion && request.modelVersion !== version)) {
    return { request, error: invalidArgument(`a request for model '${request.modelName.slice(0, 128)}' came in a batch for '${model}' version '${version}'`) };
  }
  return { request };
}

const us = (ns: number) => String(Math.round(ns / 1000));

function deadlineOf(ctx: CallContext): number {
  const at = ctx.deadline instanceof Date ? ctx.deadline.getTime() : Number(ctx.deadline);
  return Number.isFinite(at) ? at : Infinity;
}

export interface WorkerHandlers {
  worker: ServiceHandlers;
  inference: ServiceHandlers;
}

export function workerHandlers(registry: ModelRegistry, runner: RequestRunner, state: WorkerState, version: string, logger: Logger): WorkerHandlers {
  function answer(outcome: RunOutcome): BatchedResponse {
    const timings = { preprocessUs: us(outcome.preprocessNs), queueUs: us(outcome.queueNs), computeUs: us(outcome.computeNs), batchSize: outcome.batchSize };
    if (outcome.response) {
      return {
        response: outcome.response, statusCode: 0, ...timings,
        requestId: outcome.requestId, driftBins: outcome.driftBins, profileId: outcome.profileId, predictedLabels: outcome.predictedLabels,
        outputSample: outcome.outputSample,
      };
    }
    const status = statusOf(outcome.error);
    if (status.internal) logger.error({ err: outcome.error }, 'request failed');
    return { statusCode: status.code, errorMessage: status.details, ...timings };
  }

  async function inferBatch(batch: InferBatchRequest__Output, ctx: CallContext): Promise<InferBatchResponse> {
    // The call fails as a whole only when the batch cannot run here: the router then tries another worker.
    if (state.draining) throw unavailable(`worker ${state.workerId} is shutting down`);
    const model = registry.resolve(batch.modelName, batch.modelVersion);
    const now = Date.now();
    const outcomes = await runner.run(model, batch.requests.map((item) => ({
      ...decodeBatched(item.request, batch.modelName, model.version),
      queuedNs: Number(item.queuedUs) * 1000,
      deadlineMs: item.timeoutUs === '0' ? deadlineOf(ctx) : now + Number(item.timeoutUs) / 1000,
      parent: item.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: item.traceparent }) : ROOT_CONTEXT,
      sampleOutputs: item.sampleOutputs,
    })), ctx.signal);
    return { batchId: batch.batchId, responses: outcomes.map(answer) };
  }

  async function modelInfer(request: ModelInferRequest__Output, ctx: CallContext): Promise<ModelInferResponse> {
    if (state.draining) throw unavailable(`worker ${state.workerId} is shutting down`);
    const model = registry.resolve(request.modelName, request.modelVersion);
    const [outcome] = await runner.run(model, [{ request, queuedNs: 0, deadlineMs: deadlineOf(ctx), parent: context.active() }], ctx.signal);
    if (!outcome.response) throw outcome.error;
    return outcome.response;
  }

  return {
    worker: {
      InferBatches: {
        bidi: (call, ctx) =>
          serveStream<InferBatchRequest__Output, InferBatchResponse>(call as unknown as grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>, ctx, {
            window: BATCH_WINDOW,
            logger,
            until: state.drain.signal,
            handle: inferBatch,
            failure: (batch, _message, status) => ({ batchId: batch.batchId, statusCode: status.code, errorMessage: status.details }),
          }),
      },
    },
    inference: {
      ServerLive: async () => ({ live: true }),
      ServerReady: async () => ({ ready: !state.draining && registry.ready().length > 0 }),
      ModelReady: async (request: ModelReadyRequest__Output) => {
        try {
          registry.resolve(request.name, request.version);
          return { ready: !state.draining };
        } catch {
          return { ready: false };
        }
      },
      ServerMetadata: async () => ({ name: 'infermesh-worker', version, extensions: ['model_repository', 'statistics', 'streaming', 'classification'] }),
      ModelMetadata: async (request: ModelMetadataRequest__Output) =>
        registry.resolve(request.name, request.version).metadata(registry.versionsOf(request.name)),
      ModelInfer: modelInfer,
      ModelStreamInfer: {
        bidi: (call, ctx) => serveInferStream(call as never, ctx, { window: STREAM_WINDOW, logger, infer: modelInfer }),
      },
      ModelStatistics: async (request: ModelStatisticsRequest__Output) => {
        const models = request.name ? [registry.resolve(request.name, request.version)] : registry.ready();
        return { modelStats: models.map((m) => m.stats.toProto(m.name, m.version)) };
      },
      RepositoryIndex: async (request: RepositoryIndexRequest__Output) => ({
        models: registry
          .list()
          .filter((e) => !request.ready || e.state === 'READY')
          .map((e) => ({ name: e.name, version: e.version, state: e.state, reason: e.reason })),
      }),
    },
  };
}
