/**
 * The KServe v2 REST routes, each a call of the handler gRPC uses for the same method
 * (inferenceHandlers): a route only turns its path and JSON body into that method's request,
 * and the handler's answer into KServe v2 / Triton JSON.
 */
import { REQUEST_LIMITS, type ModelRepositoryParameter } from '@infermesh/contracts';
import { Status, invalidArgument, type CallContext, type ServiceHandlers, type UnaryHandler } from '@infermesh/grpc';
import { readRequest } from '../raw-inference.js';
import { restInferRequest, parseJson, HEADER_LENGTH_HEADER, type RestLimits } from './infer-request.js';
import { restInferAnswer } from './infer-response.js';
import { RestError } from './http-status.js';
import { openApiDocument } from './openapi.js';

/** What a route answers: a JSON value, or bytes with their headers (binary inference answers). */
export type Reply = { json: unknown; status?: number } | { body: Buffer; headers: Record<string, string> };

export interface RouteRequest {
  name: string;
  version: string;
  headers: Record<string, string | string[] | undefined>;
  /** The body, read within the size limit (read only by routes that take one). */
  body(): Promise<Buffer>;
  ctx: CallContext;
}

export interface Route {
  method: 'GET' | 'POST';
  /** The path with its parameters as {name} and {version}: the span's name and the log's route. */
  template: string;
  /** The gRPC method whose handler serves it (its API key rules apply). */
  grpcMethod: string;
  serve(request: RouteRequest): Promise<Reply>;
}

const NUMERIC_KEYS = new Set([
  'dims', 'preferred_batch_size', 'max_queue_delay_microseconds', 'max_batch_size', 'count',
  'ns', 'last_inference', 'inference_count', 'execution_count', 'batch_size', 'model_version',
]);
/** Maps whose keys are tensor names, kept as they are. */
const NAME_KEYED = new Set(['input_map', 'output_map']);

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A handler's answer (camelCase, int64 as strings: the loader's options) as Triton's REST JSON:
 * snake_case keys, the counts and sizes named in NUMERIC_KEYS as numbers.
 */
export function tritonJson(value: unknown, numeric = false, keepKeys = false): unknown {
  if (Array.isArray(value)) return value.map((v) => tritonJson(v, numeric));
  if (typeof value === 'string' && numeric && /^-?\d+$/.test(value)) return Number(value);
  if (typeof value !== 'object' || value === null) return value;
  if (keepKeys) return { ...value };
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => [snake(k), tritonJson(v, NUMERIC_KEYS.has(snake(k)), NAME_KEYED.has(snake(k)))]));
}

const notReady = (message: string) => new RestError(Status.FAILED_PRECONDITION, message, 400);

/** Body of a repository request: a JSON object, or nothing. */
async function jsonObject(request: RouteRequest): Promise<Record<string, unknown>> {
  const body = await request.body();
  if (body.length === 0) return {};
  const value = parseJson(body, 'the request body');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgument('the request body must be a JSON object');
  return value as Record<string, unknown>;
}

/** Load / unload parameters (Triton's: {"parameters": {"version": "2"}}) as ModelRepositoryParameter. */
function repositoryParameters(body: Record<string, unknown>): Record<string, ModelRepositoryParameter> {
  const parameters = body.parameters ?? {};
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) throw invalidArgument('parameters must be an object');
  const entries = Object.entries(parameters);
  if (entries.length > REQUEST_LIMITS.parameters) throw invalidArgument(`parameters has more than ${REQUEST_LIMITS.parameters} entries`);
  return Object.fromEntries(entries.map(([key, value]) => {
    if (typeof value === 'boolean') return [key, { boolParam: value, parameterChoice: 'boolParam' }];
    if (typeof value === 'string') return [key, { stringParam: value, parameterChoice: 'stringParam' }];
    if (typeof value === 'number' && Number.isSafeInteger(value)) return [key, { int64Param: String(value), parameterChoice: 'int64Param' }];
    throw invalidArgument(`parameters.${key.slice(0, 64)} must be a boolean, a string or an integer`);
  }));
}

const tensorJson = (t: { name: string; datatype: string; shape: string[] }) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(Number) });

/** The routes, served by `handlers` (the router's GRPCInferenceService handlers). */
export function restRoutes(handlers: ServiceHandlers, limits: RestLimits, version: string): { server: Route[]; model: Route[] } {
  const call = <Req, Res>(method: string, request: Req, ctx: CallContext) => (handlers[method] as UnaryHandler<Req, Res>)(request, ctx);
  const server: Route[] = [
    {
      method: 'GET', template: '/v2/health/live', grpcMethod: 'ServerLive',
      serve: async ({ ctx }) => ((await call<object, { live: boolean }>('ServerLive', {}, ctx)).live ? { json: {} } : Promise.reject(notReady('the router is not live'))),
    },
    {
      method: 'GET', template: '/v2/health/ready', grpcMethod: 'ServerReady',
      serve: async ({ ctx }) => ((await call<object, { ready: boolean }>('ServerReady', {}, ctx)).ready ? { json: {} } : Promise.reject(notReady('the router is not ready: no worker serves a model yet'))),
    },
    { method: 'GET', template: '/v2', grpcMethod: 'ServerMetadata', serve: async ({ ctx }) => ({ json: await call('ServerMetadata', {}, ctx) }) },
    { method: 'GET', template: '/v2/openapi.json', grpcMethod: 'ServerMetadata', serve: async () => ({ json: openApiDocument(version) }) },
    {
      method: 'GET', template: '/v2/models/stats', grpcMethod: 'ModelStatistics',
      serve: async ({ ctx }) => ({ json: tritonJson(await call('ModelStatistics', { name: '', version: '' }, ctx)) }),
    },
    {
      method: 'POST', template: '/v2/repository/index', grpcMethod: 'RepositoryIndex',
      serve: async (request) => {
        const body = await jsonObject(request);
        if (body.ready !== undefined && typeof body.ready !== 'boolean') throw invalidArgument('ready must be true or false');
        const answer = await call<object, { models: object[] }>('RepositoryIndex', { repositoryName: '', ready: body.ready === true }, request.ctx);
        return { json: answer.models };
      },
    },
  ];
  const repository = (action: 'load' | 'unload'): Route => ({
    method: 'POST', template: `/v2/repository/models/{name}/${action}`, grpcMethod: action === 'load' ? 'RepositoryModelLoad' : 'RepositoryModelUnload',
    serve: async (request) => {
      const parameters = repositoryParameters(await jsonObject(request));
      await call(action === 'load' ? 'RepositoryModelLoad' : 'RepositoryModelUnload', { repositoryName: '', modelName: request.name, parameters }, request.ctx);
      return { json: {} };
    },
  });
  // Routes under /v2/models/{name} and /v2/models/{name}/versions/{version}: the template's tail.
  const model: Route[] = [
    {
      method: 'GET', template: '', grpcMethod: 'ModelMetadata',
      serve: async ({ name, version, ctx }) => {
        const answer = await call<object, { name: string; versions: string[]; platform: string; inputs: { name: string; datatype: string; shape: string[] }[]; outputs: { name: string; datatype: string; shape: string[] }[] }>('ModelMetadata', { name, version }, ctx);
        return { json: { name: answer.name, versions: answer.versions, platform: answer.platform, inputs: answer.inputs.map(tensorJson), outputs: answer.outputs.map(tensorJson) } };
      },
    },
    {
      method: 'GET', template: '/ready', grpcMethod: 'ModelReady',
      serve: async ({ name, version, ctx }) => ((await call<object, { ready: boolean }>('ModelReady', { name, version }, ctx)).ready
        ? { json: {} }
        : Promise.reject(notReady(`model '${name.slice(0, 128)}'${version ? ` version '${version}'` : ''} is not ready: no worker serves it`))),
    },
    {
      method: 'GET', template: '/config', grpcMethod: 'ModelConfig',
      serve: async ({ name, version, ctx }) => ({ json: tritonJson((await call<object, { config: object }>('ModelConfig', { name, version }, ctx)).config) }),
    },
    {
      method: 'GET', template: '/stats', grpcMethod: 'ModelStatistics',
      serve: async ({ name, version, ctx }) => ({ json: tritonJson(await call('ModelStatistics', { name, version }, ctx)) }),
    },
    {
      method: 'POST', template: '/infer', grpcMethod: 'ModelInfer',
      serve: async ({ name, version, headers, body, ctx }) => {
        const header = headers[HEADER_LENGTH_HEADER];
        const request = restInferRequest(name, version, await body(), Array.isArray(header) ? header[0] : header, limits);
        const answer = await call<unknown, Buffer>('ModelInfer', readRequest(request.bytes), ctx);
        return restInferAnswer(answer, request.binaryOutput);
      },
    },
  ];
  return { server: [...server, repository('load'), repository('unload')], model };
}
