/**
 * The public GRPCInferenceService. ModelInfer and ModelStreamInfer read only a request's
 * routing fields, queue it with the other requests for its model version (Coalescer), and
 * answer with the worker's bytes; the tensors are never decoded here.
 */
import * as grpc from '@grpc/grpc-js';
import {
  inferenceService, itemsOf, encodeStreamInferResponse,
  type ModelMetadataRequest__Output, type ModelReadyRequest__Output, type ModelStatus__Output, type ModelStatisticsRequest__Output,
  type ModelStatisticsResponse__Output, type PredictionRecord, type InferRequestHeader,
} from '@infermesh/contracts';
import { ServiceError, invalidArgument, notFound, unavailable, statusOf, serveStream, unaryCall, Status, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import type { RoutingTable } from './routing-table.js';
import type { WorkerPool } from './worker-pool.js';
import type { Coalescer, WorkerAnswer } from './coalescer.js';
import type { PredictionPublisher } from './prediction-publisher.js';
import { encodeStreamError, type RawInferRequest } from './raw-inference.js';
import { openAccess, type AccessControl, type Caller } from './auth/index.js';
import { mergeStatistics } from './statistics.js';
import { answerFields, traceparentOf } from './record-fields.js';
import { ToldFieldsReader } from './worker-told.js';
import { repositoryHandlers } from './repository-service.js';
import type { RepositoryControl } from './repository-control.js';
import type { TrafficTable } from './traffic-table.js';
import type { ShadowTraffic, SettleClient } from './traffic-shadow.js';
import type { PipelineExecutor } from './pipeline/pipeline-executor.js';

export interface InferenceDeps {
  table: RoutingTable;
  pool: WorkerPool;
  coalescer: Coalescer;
  publisher: PredictionPublisher;
  logger: Logger;
  requestTimeoutMs: number;
  version: string;
  /** API keys; without it every call is served (the open API of `npm start`). */
  access?: AccessControl;
  /** Carries RepositoryModelLoad / RepositoryModelUnload to the workers; absent, they answer UNAVAILABLE. */
  control?: RepositoryControl;
  /** The models' traffic policies (canary weights, shadow versions); without it the newest version serves every unversioned request. */
  traffic?: TrafficTable;
  /** Sends the shadow copies of requests; required for a policy's shadows to get any. */
  shadows?: ShadowTraffic;
  /** Executes models announced with platform `pipeline`; without it they answer UNAVAILABLE. */
  pipelines?: PipelineExecutor;
}

export const EXTENSIONS = ['model_repository', 'statistics', 'streaming', 'classification', 'infermesh_preprocessing'];
/** The model / version label of records for names the mesh does not serve. */
export const UNKNOWN = '_unknown';
/** Items of one stream in progress at once; beyond this the stream stops reading (back-pressure). */
export const STREAM_WINDOW = 64;
/** Client-chosen names are quoted in messages up to this length: a 100 KB name is not echoed back. */
const MAX_QUOTED = 128;
/** Models named in a NOT_FOUND message, at most. */
const MAX_LISTED = 20;

/**
 * Client-chosen strings kept in records and spans at most this long: a record must fit a NATS
 * message (1 MB by default) with 255 others, whatever a client sends.
 */
const MAX_RECORDED_ID = 256;
const MAX_RECORDED_MESSAGE = 1024;

function bounded(text: string, most: number): string {
  return text.length <= most ? text : `${text.slice(0, most)}…`;
}

export function quote(name: string): string {
  return name.length <= MAX_QUOTED ? `'${name}'` : `'${name.slice(0, MAX_QUOTED)}…' (${name.length} characters)`;
}

/**
 * NOT_FOUND for a model name no worker has announced, naming the models that were; UNAVAILABLE
 * while no worker has announced any (a mesh still starting cannot tell that a model is not served).
 */
export function modelNotServed(table: RoutingTable, name: string): ServiceError {
  const models = table.knownModels();
  if (models.length === 0) return unavailable(`model ${quote(name)} is not served yet: no worker has announced a model to this router; retry`);
  const listed = models.length > MAX_LISTED ? `${models.slice(0, MAX_LISTED).join(', ')}, … (${models.length} in all)` : models.join(', ');
  return notFound(`model ${quote(name)} is not served by this mesh (models: ${listed})`);
}

export { traceparentOf };

type Generated = grpc.MethodDefinition<object, object>;

export function inferenceHandlers(deps: InferenceDeps): ServiceHandlers {
  const { table, logger } = deps;
  const access = deps.access ?? openAccess;
  const told = new ToldFieldsReader(logger);

  /** The per-method check: the call's key, refused here before the handler does any work. */
  function guarded<Req, Res>(method: string, handler: (request: Req, ctx: CallContext, caller: Caller) => Promise<Res>) {
    return (request: Req, ctx: CallContext) => handler(request, ctx, access.authorize(method, ctx.metadata));
  }

  function resolveModel(name: string, version: string): ModelStatus__Output {
    if (!name) throw invalidArgument('model_name is empty');
    const status = table.model(name, version);
    if (status) return status;
    // Just started: a model missing here may not be announced yet. NOT_FOUND would be final to clients.
    if (!table.filled) throw unavailable('routing table not yet filled: the router has just started; retry');
    if (!table.isKnown(name)) throw modelNotServed(table, name);
    if (version && table.holders(name).length > 0) {
      throw notFound(`model ${quote(name)} has no version ${quote(version)} (versions: ${table.versions(name).join(', ')})`);
    }
    throw unavailable(`no worker currently serves model ${quote(name)}${version ? ` version ${quote(version)}` : ''}`);
  }

  function deadlineOf(ctx: CallContext): number {
    const client = ctx.deadline instanceof Date ? ctx.deadline.getTime() : Number(ctx.deadline);
    const own = Date.now() + deps.requestTimeoutMs;
    return Number.isFinite(client) ? Math.min(client, own) : own;
  }

  async function modelInfer(request: RawInferRequest, ctx: CallContext, caller: Caller): Promise<Buffer> {
    const arrivedNs = process.hrtime.bigint();
    if (!request.header) throw invalidArgument(request.malformed ?? 'the request is not a ModelInferRequest');
    const header = request.header;
    ctx.span.setAttributes({ 'infermesh.model': bounded(header.modelName, MAX_QUOTED), 'infermesh.request_id': bounded(header.id, MAX_RECORDED_ID) });
    const traceparent = traceparentOf(ctx.span);
    let answer: WorkerAnswer | undefined;
    let version = header.modelVersion;
    let settleShadows: SettleClient | undefined;
    try {
      caller.admitInference(header.modelName, itemsOf(header));
      // An unversioned request is pinned here, so during a rollout it is preprocessed and
      // run by the same version: the model's traffic policy picks it by weight, else the newest.
      const weighted = version ? undefined : deps.traffic?.versionFor(header.modelName, (v) => table.hasVersion(header.modelName, v));
      const status = resolveModel(header.modelName, version || (weighted ?? ''));
      version ||= status.version;
      if (status.platform === 'pipeline') {
        // Its steps go through the coalescer each; the pipeline request is recorded once, here.
        if (!deps.pipelines) throw unavailable(`model ${quote(status.name)} is a pipeline and this router does not execute pipelines`);
        answer = await deps.pipelines.infer(status, version, request.bytes, { deadlineMs: deadlineOf(ctx), signal: ctx.signal, span: ctx.span, clientId: caller.keyId });
        record(header, version, caller.keyId, Status.OK, '', arrivedNs, traceparent, answer);
        return answer.response;
      }
      const shadows = deps.shadows ? deps.traffic?.shadowsOf(status.name) ?? [] : [];
      // A model with shadows: the client's answer carries the output sample the shadows' are compared with.
      const sampleOutputs = shadows.length > 0;
      const submitted = deps.coalescer.submit(status, version, { bytes: request.bytes, deadlineMs: deadlineOf(ctx), traceparent, arrivedNs, sampleOutputs }, itemsOf(header), ctx.signal);
      if (shadows.length > 0 && deps.shadows) {
        settleShadows = deps.shadows.copy({ header, version, bytes: request.bytes, items: itemsOf(header), traceparent, clientId: caller.keyId }, shadows);
      }
      const result = await submitted;
      answer = result.output;
      if (answer.statusCode !== Status.OK) throw new ServiceError(answer.statusCode, answer.errorMessage);
      record(header, version, caller.keyId, Status.OK, '', arrivedNs, traceparent, answer);
      return answer.response;
    } catch (error) {
      const status = statusOf(error);
      record(header, version, caller.keyId, status.code, status.details, arrivedNs, traceparent, answer);
      throw error;
    } finally {
      settleShadows?.(answer);
    }
  }

  function record(header: InferRequestHeader, version: string, clientId: string, code: number, message: string, arrivedNs: bigint, traceparent: string, answer?: WorkerAnswer): void {
    if (!header.modelName) return;
    // Any client can name any model or version: label records with names the mesh serves
    // only, so refused requests cannot grow the monitor's series without bound.
    const model = table.isKnown(header.modelName) ? header.modelName : UNKNOWN;
    const knownVersion = model !== UNKNOWN && (!version || table.hasVersion(model, version));
    const items = itemsOf(header);
    const fromWorker = told.read(answer, items);
    const record: PredictionRecord = {
      // The id the client was answered with: the one the worker assigned, or the client's own
      // (whole: readInferRequestHeader refused one over 256 bytes, so feedback can name any).
      requestId: fromWorker.requestId || header.id,
      model,
      version: knownVersion ? version : UNKNOWN,
      ...answerFields(arrivedNs, traceparent, answer),
      statusCode: code,
      errorMessage: bounded(message, MAX_RECORDED_MESSAGE),
      items,
      clientId,
      driftBins: fromWorker.driftBins,
      profileId: fromWorker.profileId,
      predictedLabels: fromWorker.predictedLabels,
    };
    deps.publisher.publish(record);
  }

  const statisticsMethod = inferenceService().ModelStatistics as unknown as Generated;

  return {
    ServerLive: guarded('ServerLive', async () => ({ live: true })),
    ServerReady: guarded('ServerReady', async () => ({ ready: table.list().length > 0 })),
    ModelReady: guarded('ModelReady', async (request: ModelReadyRequest__Output, _ctx, caller) => {
      caller.checkModel(request.name);
      if (table.holders(request.name, request.version).length === 0) return { ready: false };
      // A pipeline is ready when every model it runs is served somewhere.
      const status = table.model(request.name, request.version);
      // A step whose model is itself a pipeline never runs (pipelines do not nest).
      if (status?.platform === 'pipeline') return { ready: status.pipelineSteps.every((step) => !step.model || (table.holders(step.model).length > 0 && table.model(step.model)?.platform !== 'pipeline')) };
      return { ready: true };
    }),
    ServerMetadata: guarded('ServerMetadata', async () => ({ name: 'infermesh', version: deps.version, extensions: EXTENSIONS })),
    ModelMetadata: guarded('ModelMetadata', async (request: ModelMetadataRequest__Output, _ctx, caller) => {
      caller.checkModel(request.name);
      const status = resolveModel(request.name, request.version);
      return { name: status.name, versions: table.versions(status.name), platform: status.platform, inputs: status.inputs, outputs: status.outputs };
    }),
    ModelInfer: guarded('ModelInfer', modelInfer),
    ModelStreamInfer: {
      bidi: async (call, ctx) => {
        // The stream's key is read once, from the call's metadata; each item is then admitted on its own.
        const caller = access.authorize('ModelStreamInfer', ctx.metadata);
        return serveStream<RawInferRequest, Buffer>(call as unknown as grpc.ServerDuplexStream<RawInferRequest, Buffer>, ctx, {
          window: STREAM_WINDOW,
          logger,
          itemSpanName: 'inference.GRPCInferenceService/ModelStreamInfer item',
          handle: async (request, itemCtx) => encodeStreamInferResponse(await modelInfer(request, itemCtx, caller)),
          failure: (request, message) => encodeStreamError({
            errorMessage: message,
            inferResponse: { id: request.header?.id ?? '', modelName: request.header?.modelName ?? '', modelVersion: request.header?.modelVersion ?? '' },
          }),
        });
      },
    },
    ModelStatistics: guarded('ModelStatistics', async (request: ModelStatisticsRequest__Output, ctx: CallContext) => {
      const named = request.name ? resolveModel(request.name, request.version) : undefined;
      // A pipeline runs at the routers: its statistics are this router's count (its steps' models have their own).
      if (named?.platform === 'pipeline' && deps.pipelines) return { modelStats: [deps.pipelines.statistics(named.name, request.version || named.version)] };
      const workers = request.name ? table.holders(request.name, request.version) : table.list();
      const answers = await Promise.all(
        workers.map((worker) => {
          const client = deps.pool.client(worker.id, worker.address);
          const method = (req: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: object) => void) =>
            client.makeUnaryRequest(statisticsMethod.path, statisticsMethod.requestSerialize, statisticsMethod.responseDeserialize, req, metadata, options, callback);
          return unaryCall<object, ModelStatisticsResponse__Output>(client, method as never, request, { deadline: Date.now() + 5000, signal: ctx.signal }).then(
            (response) => response.modelStats,
            (error: unknown) => {
              logger.warn({ worker_id: worker.id, err: error }, 'worker statistics unavailable');
              return [];
            },
          );
        }),
      );
      return { modelStats: mergeStatistics(answers.flat()) };
    }),
    // RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload and ModelConfig.
    ...repositoryHandlers({ table, access, control: deps.control }),
  };
}
