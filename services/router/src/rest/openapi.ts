/**
 * The OpenAPI 3.1 document of the REST endpoint (GET /v2/openapi.json), written by hand from
 * the routes in routes.ts. Objects are closed (additionalProperties: false) and list what they
 * require, so test/rest.e2e.test.ts fails when an answer has a field the document does not
 * describe, lacks one it requires, or gives one another type.
 */
type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const closed = (properties: Record<string, Schema>, required: string[] = Object.keys(properties), extra: Schema = {}): Schema => ({
  type: 'object', properties, required, additionalProperties: false, ...extra,
});
const json = (schema: Schema) => ({ 'application/json': { schema } });

const ERROR_STATUSES: Record<string, string> = {
  400: 'INVALID_ARGUMENT, OUT_OF_RANGE or FAILED_PRECONDITION (the infermesh-grpc-status header says which): a request the router or the model refuses, or a model or server not ready',
  401: 'UNAUTHENTICATED: no API key, or an unknown one (when the router has a keys file)',
  403: 'PERMISSION_DENIED: the key may not use this model or method',
  404: 'NOT_FOUND: no such model, version or route',
  405: 'UNIMPLEMENTED: the route takes another method (see the Allow header)',
  409: 'ALREADY_EXISTS',
  413: 'RESOURCE_EXHAUSTED: the body is over the message limit (GRPC_MAX_MESSAGE_BYTES)',
  429: 'RESOURCE_EXHAUSTED: the key\'s rate limit or quota',
  499: 'CANCELLED: the client went away',
  500: 'INTERNAL, UNKNOWN or DATA_LOSS',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE: no worker serves the model now, or the router has just started',
  504: 'DEADLINE_EXCEEDED: infermesh-timeout-ms or the router\'s own request timeout passed',
};

const errors = Object.fromEntries(Object.entries(ERROR_STATUSES).map(([status, description]) => [status, {
  description,
  headers: { 'infermesh-grpc-status': { description: 'The gRPC status name of the error, the same a gRPC client gets', schema: { type: 'string' } } },
  content: json(ref('Error')),
}]));

const nameParameter = { name: 'name', in: 'path', required: true, description: 'Model name (at most 256 bytes)', schema: { type: 'string', maxLength: 256 } };
const versionParameter = { name: 'version', in: 'path', required: true, description: 'Model version (at most 64 bytes)', schema: { type: 'string', maxLength: 64 } };
const headerParameters = [
  { name: 'authorization', in: 'header', required: false, description: '"Bearer <key>" when the router has a keys file', schema: { type: 'string' } },
  { name: 'infermesh-timeout-ms', in: 'header', required: false, description: 'The call\'s deadline in milliseconds (capped by ROUTER_REQUEST_TIMEOUT_MS)', schema: { type: 'string', pattern: '^[0-9]{1,10}$' } },
  { name: 'traceparent', in: 'header', required: false, description: 'W3C trace context: the router\'s span continues this trace', schema: { type: 'string' } },
];

interface Operation { summary: string; request?: Schema; binaryRequest?: boolean; response: Schema | null; binaryResponse?: boolean; version?: boolean; model?: boolean }

function operation(op: Operation) {
  const content: Record<string, unknown> = op.request ? json(op.request) : {};
  if (op.binaryRequest) {
    content['application/octet-stream'] = {
      schema: { type: 'string', format: 'binary' },
      description: 'Triton binary data extension: the first Inference-Header-Content-Length bytes are the JSON request, then the inputs with parameters.binary_data_size, in order',
    };
  }
  const responseContent: Record<string, unknown> = op.response ? json(op.response) : {};
  if (op.binaryResponse) {
    responseContent['application/octet-stream'] = {
      schema: { type: 'string', format: 'binary' },
      description: 'Outputs asked as binary: the JSON answer (Inference-Header-Content-Length bytes), then each binary output\'s bytes (parameters.binary_data_size), in order',
    };
  }
  return {
    summary: op.summary,
    parameters: [...(op.model ? [nameParameter] : []), ...(op.version ? [versionParameter] : []), ...headerParameters,
      ...(op.binaryRequest ? [{ name: 'Inference-Header-Content-Length', in: 'header', required: false, description: 'Length of the JSON part of a binary body', schema: { type: 'string', pattern: '^[0-9]+$' } }] : [])],
    ...(op.request || op.binaryRequest ? { requestBody: { required: !!op.binaryRequest, content } } : {}),
    responses: { 200: { description: 'OK', content: responseContent }, ...errors },
  };
}

const parameters: Schema = {
  type: 'object', maxProperties: 256, propertyNames: { maxLength: 256 },
  additionalProperties: { type: ['string', 'integer', 'boolean'] },
};
const shape: Schema = { type: 'array', maxItems: 64, items: { type: 'integer', minimum: -1 } };
const datatype: Schema = { type: 'string', enum: ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] };
const element: Schema = { type: ['number', 'boolean', 'string', 'null'] };
const data: Schema = {
  description: 'Elements in row-major order: flat, or nested as deep as the shape. BYTES elements are UTF-8 strings; INT64/UINT64 are JSON numbers (exact up to 2^53); FP16 needs binary data',
  type: 'array', items: { anyOf: [element, { type: 'array' }] },
};
const duration: Schema = closed({ count: { type: 'integer', minimum: 0 }, ns: { type: 'integer', minimum: 0 } });

const schemas: Record<string, Schema> = {
  Error: closed({ error: { type: 'string', description: 'What was wrong; the message a gRPC client gets for the same request' } }),
  Empty: closed({}, [], { description: 'Success without content' }),
  ServerMetadata: closed({ name: { type: 'string' }, version: { type: 'string' }, extensions: { type: 'array', items: { type: 'string' } } }),
  TensorMetadata: closed({ name: { type: 'string' }, datatype: { type: 'string' }, shape }),
  ModelMetadata: closed({
    name: { type: 'string' }, versions: { type: 'array', items: { type: 'string' } }, platform: { type: 'string' },
    inputs: { type: 'array', items: ref('TensorMetadata') }, outputs: { type: 'array', items: ref('TensorMetadata') },
  }),
  Parameters: parameters,
  InferInput: closed({
    name: { type: 'string', minLength: 1, maxLength: 256 }, shape: { ...shape, items: { type: 'integer', minimum: 0 } }, datatype,
    parameters: { ...parameters, properties: { binary_data_size: { type: 'integer', minimum: 0, description: 'Bytes of this input in the binary part of the body' } } }, data,
  }, ['name', 'shape', 'datatype']),
  InferRequestedOutput: closed({
    name: { type: 'string', minLength: 1, maxLength: 256 },
    parameters: { ...parameters, properties: { binary_data: { type: 'boolean' }, classification: { type: 'integer', minimum: 1, description: 'Triton classification extension: the top k classes as BYTES "score:index:label"' } } },
  }, ['name']),
  InferRequest: closed({
    id: { type: 'string', maxLength: 256 },
    parameters: { ...parameters, properties: { binary_data_output: { type: 'boolean', description: 'Every output as binary data' } } },
    inputs: { type: 'array', minItems: 1, maxItems: 1024, items: ref('InferInput') },
    outputs: { type: 'array', maxItems: 1024, items: ref('InferRequestedOutput') },
  }, ['inputs']),
  InferOutput: closed({
    name: { type: 'string' }, shape, datatype: { type: 'string' },
    parameters: { ...parameters, properties: { binary_data_size: { type: 'integer', minimum: 0 } } },
    data: { type: 'array', items: element },
  }, ['name', 'shape', 'datatype']),
  InferResponse: closed({
    model_name: { type: 'string' }, model_version: { type: 'string' }, id: { type: 'string' }, parameters,
    outputs: { type: 'array', items: ref('InferOutput') },
  }, ['model_name', 'model_version', 'id', 'outputs']),
  ModelTensorConfig: closed({ name: { type: 'string' }, data_type: { type: 'string' }, dims: { type: 'array', items: { type: 'integer' } } }),
  ModelConfig: closed({
    name: { type: 'string' }, platform: { type: 'string' }, backend: { type: 'string' }, max_batch_size: { type: 'integer', minimum: 0 },
    input: { type: 'array', items: ref('ModelTensorConfig') }, output: { type: 'array', items: ref('ModelTensorConfig') },
    instance_group: { type: 'array', items: closed({ name: { type: 'string' }, count: { type: 'integer' }, kind: { type: 'string' } }) },
    dynamic_batching: closed({ preferred_batch_size: { type: 'array', items: { type: 'integer' } }, max_queue_delay_microseconds: { type: 'integer', minimum: 0 } }, []),
    ensemble_scheduling: closed({
      step: {
        type: 'array',
        items: closed({
          model_name: { type: 'string' }, model_version: { type: 'integer' },
          input_map: { type: 'object', additionalProperties: { type: 'string' } }, output_map: { type: 'object', additionalProperties: { type: 'string' } },
        }, ['model_name', 'input_map', 'output_map']),
      },
    }, ['step']),
  }, ['name', 'platform', 'backend', 'max_batch_size', 'input', 'output']),
  ModelStatistics: closed({
    name: { type: 'string' }, version: { type: 'string' }, last_inference: { type: 'integer', minimum: 0 },
    inference_count: { type: 'integer', minimum: 0 }, execution_count: { type: 'integer', minimum: 0 },
    inference_stats: closed(Object.fromEntries(['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output', 'cache_hit', 'cache_miss'].map((k) => [k, duration]))),
    batch_stats: { type: 'array', items: closed({ batch_size: { type: 'integer', minimum: 1 }, compute_infer: duration }) },
  }),
  Statistics: closed({ model_stats: { type: 'array', items: ref('ModelStatistics') } }),
  RepositoryIndexRequest: closed({ ready: { type: 'boolean', description: 'Only the versions READY somewhere' } }, []),
  RepositoryIndex: { type: 'array', items: closed({ name: { type: 'string' }, version: { type: 'string' }, state: { type: 'string', enum: ['READY', 'LOADING', 'UNLOADING', 'UNAVAILABLE'] }, reason: { type: 'string' } }) },
  RepositoryModelRequest: closed({
    parameters: { ...parameters, properties: { version: { type: ['string', 'integer'], description: 'Versions to load or unload: "2" or "1,2"' }, unload_dependents: { type: 'boolean' } } },
  }, []),
};

/** The routes under /v2/models/{name}, and again under /v2/models/{name}/versions/{version}. */
function modelRoutes(version: boolean) {
  const base = version ? '/v2/models/{name}/versions/{version}' : '/v2/models/{name}';
  const o = { model: true, version };
  return {
    [base]: { get: operation({ ...o, summary: 'Model metadata (the newest version without one)', response: ref('ModelMetadata') }) },
    [`${base}/ready`]: { get: operation({ ...o, summary: 'Model readiness: 200 when a worker serves it, 400 when none does', response: ref('Empty') }) },
    [`${base}/config`]: { get: operation({ ...o, summary: 'Model configuration (Triton model configuration extension)', response: ref('ModelConfig') }) },
    [`${base}/stats`]: { get: operation({ ...o, summary: 'Model statistics (Triton statistics extension), summed over the workers', response: ref('Statistics') }) },
    [`${base}/infer`]: { post: operation({ ...o, summary: 'Inference, JSON or binary data extension', request: ref('InferRequest'), binaryRequest: true, response: ref('InferResponse'), binaryResponse: true }) },
  };
}

let document: object | undefined;

/** The document, for the router `version`. */
export function openApiDocument(version: string): object {
  document ??= {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'infermesh router: KServe v2 / Open Inference Protocol REST',
      version,
      description: 'The REST form of the router\'s GRPCInferenceService: each route is served by the handler of the gRPC method it names (same validation, API keys, rate limits, routing, batching, prediction records and traces). Errors: an HTTP status, a JSON {"error"} and the infermesh-grpc-status header.',
    },
    paths: {
      '/v2/health/live': { get: operation({ summary: 'Server liveness', response: ref('Empty') }) },
      '/v2/health/ready': { get: operation({ summary: 'Server readiness: 200 when a worker serves, 400 before', response: ref('Empty') }) },
      '/v2': { get: operation({ summary: 'Server metadata', response: ref('ServerMetadata') }) },
      '/v2/openapi.json': { get: { summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } } } },
      '/v2/models/stats': { get: operation({ summary: 'Statistics of every model (Triton statistics extension)', response: ref('Statistics') }) },
      ...modelRoutes(false),
      ...modelRoutes(true),
      '/v2/repository/index': { post: operation({ summary: 'Every model version the workers announce (Triton repository extension)', request: ref('RepositoryIndexRequest'), response: ref('RepositoryIndex') }) },
      '/v2/repository/models/{name}/load': { post: operation({ model: true, summary: 'Load a model on the workers', request: ref('RepositoryModelRequest'), response: ref('Empty') }) },
      '/v2/repository/models/{name}/unload': { post: operation({ model: true, summary: 'Unload a model from the workers', request: ref('RepositoryModelRequest'), response: ref('Empty') }) },
    },
    components: { schemas },
  };
  return document;
}
