/** GRPCInferenceService as served by a worker to the router. */
import { decodeInputs, encodeRaw, type Tensor } from '@infermesh/tensor';
import { serveInferStream, unavailable, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import { WORKER_RESPONSE_PARAMETERS } from '@infermesh/contracts';
import type {
  ModelInferRequest__Output, ModelInferResponse, ModelMetadataRequest__Output, ModelReadyRequest__Output,
  ModelStatisticsRequest__Output, RepositoryIndexRequest__Output,
} from '@infermesh/contracts';
import { trace } from '@opentelemetry/api';
import type { ModelRegistry } from './model-registry.js';
import { applyClassification } from './classification.js';

const TIMING_PARAMETERS = WORKER_RESPONSE_PARAMETERS;

export interface WorkerState {
  workerId: string;
  draining: boolean;
}

export function encodeOutputs(outputs: readonly Tensor[]): Pick<ModelInferResponse, 'outputs' | 'rawOutputContents'> {
  return {
    outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape.map(String) })),
    rawOutputContents: outputs.map((o) => encodeRaw(o.data)),
  };
}

/** Items of one stream in progress at once; beyond this the stream stops reading (back-pressure). */
export const STREAM_WINDOW = 128;

export function inferenceHandlers(registry: ModelRegistry, state: WorkerState, version: string, logger: Logger): ServiceHandlers {
  const tracer = trace.getTracer('infermesh-worker');

  async function modelInfer(request: ModelInferRequest__Output, ctx: CallContext): Promise<ModelInferResponse> {
    if (state.draining) throw unavailable(`worker ${state.workerId} is shutting down`);
    const model = registry.resolve(request.modelName, request.modelVersion);
    ctx.span.setAttributes({ 'infermesh.model': model.name, 'infermesh.model_version': model.version, 'infermesh.worker_id': state.workerId });
    const tensors = decodeInputs(request.inputs, request.rawInputContents);
    const result = await model.infer(tensors, request.outputs.map((o) => o.name), ctx.signal);
    recordQueueAndCompute(tracer, result.queueNs, result.computeNs, result.batchSize);
    const outputs = applyClassification(model.config, request.outputs, result.outputs);
    return {
      modelName: model.name,
      modelVersion: model.version,
      id: request.id,
      parameters: {
        [TIMING_PARAMETERS.queueUs]: { int64Param: String(Math.round(result.queueNs / 1000)) },
        [TIMING_PARAMETERS.computeUs]: { int64Param: String(Math.round(result.computeNs / 1000)) },
        [TIMING_PARAMETERS.batchSize]: { int64Param: String(result.batchSize) },
        [TIMING_PARAMETERS.workerId]: { stringParam: state.workerId },
      },
      ...encodeOutputs(outputs),
    };
  }

  return {
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
  };
}

/** Queue and compute as child spans of the request, with their measured times. */
function recordQueueAndCompute(tracer: ReturnType<typeof trace.getTracer>, queueNs: number, computeNs: number, batchSize: number): void {
  const now = Date.now();
  const computeStart = now - computeNs / 1e6;
  const queueStart = computeStart - queueNs / 1e6;
  tracer.startSpan('queue', { startTime: queueStart }).end(computeStart);
  tracer.startSpan('compute', { startTime: computeStart, attributes: { 'infermesh.batch_size': batchSize } }).end(now);
}
