/**
 * Triton's model repository extension at the router: RepositoryIndex (every version the
 * workers announce, with its state), RepositoryModelLoad / RepositoryModelUnload (carried to
 * the workers, RepositoryControl) and ModelConfig (from what the workers announce).
 */
import type {
  ModelConfig, ModelConfigRequest__Output, ModelRepositoryParameter__Output, ModelStatus__Output, RepositoryIndexRequest__Output,
  RepositoryIndexResponse_ModelIndex, RepositoryModelLoadRequest__Output, RepositoryModelUnloadRequest__Output, DataType,
} from '@infermesh/contracts';
import { invalidArgument, notFound, unavailable, type CallContext } from '@infermesh/grpc';
import { dataflowSteps } from './pipeline/dataflow.js';
import type { RoutingTable } from './routing-table.js';
import type { RepositoryControl } from './repository-control.js';
import type { AccessControl, Caller } from './auth/index.js';

export interface RepositoryDeps {
  table: RoutingTable;
  access: AccessControl;
  /** Absent: load and unload answer UNAVAILABLE (a router built without NATS request/reply). */
  control?: RepositoryControl;
}

/** Parameters a load or unload may carry: infermesh's "version" (which versions), and Triton's unload_dependents (no dependents here). */
const KNOWN_PARAMETERS = new Set(['version', 'unload_dependents']);
const MAX_VERSIONS = 256;
/** Entries listed by RepositoryIndex at most (workers announce at most 1024 models each). */
const MAX_INDEX = 65_536;

/** How states rank when workers disagree: the index shows the most available one. */
const RANK: Record<string, number> = { READY: 3, UNLOADING: 2, LOADING: 1, UNAVAILABLE: 0 };

export function stateOf(status: ModelStatus__Output): string {
  return status.state || (status.ready ? 'READY' : 'UNAVAILABLE');
}

/**
 * The versions named by the "version" parameter: a string of version numbers separated by
 * commas, or one int64; none (every version the policy selects, or every version) without it.
 */
export function versionsParameter(model: string, parameters: Record<string, ModelRepositoryParameter__Output>): string[] {
  for (const name of Object.keys(parameters)) {
    if (!KNOWN_PARAMETERS.has(name)) {
      throw invalidArgument(`parameter '${name.slice(0, 64)}' is not supported for model '${model}' (supported: "version"; a config or files sent with the load are not: edit the model repository)`);
    }
  }
  const parameter = parameters.version;
  if (!parameter) return [];
  const text = parameter.parameterChoice === 'int64Param' ? parameter.int64Param ?? '' : parameter.parameterChoice === 'stringParam' ? parameter.stringParam ?? '' : undefined;
  if (text === undefined) throw invalidArgument('parameter "version" is a string of version numbers ("2" or "1,2") or an int64');
  const versions = text.split(',').map((v) => v.trim()).filter(Boolean);
  if (versions.length === 0 || versions.length > MAX_VERSIONS || versions.some((v) => !/^\d{1,19}$/.test(v))) {
    throw invalidArgument(`parameter "version" must name 1 to ${MAX_VERSIONS} version numbers separated by commas, not ${JSON.stringify(text.slice(0, 64))}`);
  }
  return versions;
}

function modelName(name: string): string {
  if (!name) throw invalidArgument('model_name is empty');
  if (name.length > 256) throw invalidArgument(`model_name is ${name.length} characters; model names are at most 256`);
  return name;
}

/** Triton's DataType for a KServe datatype name (BYTES is Triton's TYPE_STRING). */
export function tritonDataType(datatype: string): DataType {
  if (datatype === 'BYTES') return 'TYPE_STRING';
  const name = `TYPE_${datatype}`;
  return (/^TYPE_(BOOL|U?INT(8|16|32|64)|FP(16|32|64)|BF16)$/.test(name) ? name : 'TYPE_INVALID') as DataType;
}

/** Triton's ModelConfig of an announced version: dims without the batch dimension when the model batches. */
export function modelConfigOf(status: ModelStatus__Output, device: string): ModelConfig {
  const batching = status.maxBatchSize > 0;
  const dims = (shape: string[]) => (batching ? shape.slice(1) : shape);
  return {
    name: status.name,
    platform: status.platform,
    backend: 'onnxruntime',
    maxBatchSize: status.maxBatchSize,
    input: status.inputs.map((t) => ({ name: t.name, dataType: tritonDataType(t.datatype), dims: dims(t.shape) })),
    output: status.outputs.map((t) => ({ name: t.name, dataType: tritonDataType(t.datatype), dims: dims(t.shape) })),
    instanceGroup: [{ name: status.name, count: status.instances || 1, kind: device.startsWith('gpu') ? 'KIND_GPU' : 'KIND_CPU' }],
    ...(status.dynamicBatching
      ? { dynamicBatching: { preferredBatchSize: status.dynamicBatching.preferredBatchSize, maxQueueDelayMicroseconds: status.dynamicBatching.maxQueueDelayUs } }
      : {}),
    ...(status.platform === 'pipeline' ? pipelineConfig(status) : {}),
  };
}

/**
 * A pipeline runs at the routers, on no backend. A dataflow pipeline's steps are Triton's
 * ensemble scheduling (the maps mean what Triton's mean: model tensor name → pipeline tensor
 * name); the OCR flow's steps, whose glue defines their tensors, are not.
 */
function pipelineConfig(status: ModelStatus__Output): Partial<ModelConfig> {
  const steps = dataflowSteps(status.pipelineSteps);
  return {
    backend: '',
    ...(steps
      ? { ensembleScheduling: { step: steps.map((s) => ({ modelName: s.model, modelVersion: '-1', inputMap: { ...s.inputs }, outputMap: { ...s.outputs } })) } }
      : {}),
  };
}

export function repositoryHandlers(deps: RepositoryDeps) {
  const { table, access } = deps;
  function guarded<Req, Res>(method: string, handler: (request: Req, ctx: CallContext, caller: Caller) => Promise<Res>) {
    return (request: Req, ctx: CallContext) => handler(request, ctx, access.authorize(method, ctx.metadata));
  }
  function control(): RepositoryControl {
    if (!deps.control) throw unavailable('this router does not carry repository control to the workers');
    return deps.control;
  }

  return {
    RepositoryIndex: guarded('RepositoryIndex', async (request: RepositoryIndexRequest__Output) => {
      const seen = new Map<string, RepositoryIndexResponse_ModelIndex & { rank: number }>();
      for (const worker of table.list()) {
        for (const model of worker.announced ?? worker.models) {
          const key = `${model.name}\u0000${model.version}`;
          const state = stateOf(model);
          const rank = RANK[state] ?? 0;
          const earlier = seen.get(key);
          if (earlier && earlier.rank >= rank) continue;
          if (!earlier && seen.size >= MAX_INDEX) continue;
          seen.set(key, { name: model.name, version: model.version, state, reason: state === 'READY' ? '' : model.reason, rank });
        }
      }
      const models = [...seen.values()]
        .filter((m) => !request.ready || m.state === 'READY')
        .sort((a, b) => a.name!.localeCompare(b.name!) || Number(a.version) - Number(b.version))
        .map(({ rank: _rank, ...m }) => m);
      return { models };
    }),
    RepositoryModelLoad: guarded('RepositoryModelLoad', async (request: RepositoryModelLoadRequest__Output, _ctx, caller) => {
      const name = modelName(request.modelName);
      caller.checkModel(name);
      await control().load(name, versionsParameter(name, request.parameters), caller.keyId);
      return {};
    }),
    RepositoryModelUnload: guarded('RepositoryModelUnload', async (request: RepositoryModelUnloadRequest__Output, _ctx, caller) => {
      const name = modelName(request.modelName);
      caller.checkModel(name);
      await control().unload(name, versionsParameter(name, request.parameters), caller.keyId);
      return {};
    }),
    ModelConfig: guarded('ModelConfig', async (request: ModelConfigRequest__Output, _ctx, caller) => {
      const name = modelName(request.name);
      caller.checkModel(name);
      // The version asked for, or the newest one: ModelMetadata's choice.
      const status = table.model(name, request.version);
      if (status) return { config: modelConfigOf(status, table.holders(name, status.version)[0]?.device ?? 'cpu') };
      throw notFound(`model '${name.slice(0, 128)}'${request.version ? ` version '${request.version.slice(0, 32)}'` : ''} is not served by this mesh`);
    }),
  };
}
