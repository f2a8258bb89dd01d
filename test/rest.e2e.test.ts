/**
 * The router's KServe v2 REST endpoint end to end: every service its own process, real
 * nats-server and onnxruntime on the shipped models, called with plain fetch and request bodies
 * as in the KServe v2 REST specification. Every answer is checked against the router's own
 * OpenAPI document (GET /v2/openapi.json) for its route and status.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import * as grpc from '@grpc/grpc-js';
import { contracts } from '@infermesh/contracts';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';
import { until } from './helpers/until.js';

/** The router's message limit here: a REST body over it is refused with 413. */
const MAX_MESSAGE_BYTES = 1024 * 1024;
const IRIS_ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };

let mesh: Mesh;
let base: string;
let keyedBase: string;
let keysDir: string;
let key: string;
let upright: Buffer;
let openapi: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>> };
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
const validators = new Map<string, ValidateFunction>();

const pointer = (part: string) => part.replace(/~/g, '~0').replace(/\//g, '~1');

/** The document's JSON schema of `template`'s answer with `status`; fails when the document does not describe that answer. */
function schemaOf(template: string, method: string, status: number): ValidateFunction {
  const operation = openapi.paths[template]?.[method];
  expect(operation, `${method.toUpperCase()} ${template} is in the document`).toBeDefined();
  expect(operation.responses[status], `${method.toUpperCase()} ${template} documents status ${status}`).toBeDefined();
  const ref = `openapi#/paths/${pointer(template)}/${method}/responses/${status}/content/application~1json/schema`;
  let validate = validators.get(ref);
  if (!validate) {
    validate = ajv.compile({ $ref: ref });
    validators.set(ref, validate);
  }
  return validate;
}

interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
  /** The binary part of a binary data extension answer. */
  binary?: Buffer;
}

/**
 * A REST call with fetch; the JSON answer (or a binary answer's JSON header) is validated
 * against the OpenAPI document's schema for `template` and the status, and an error answer
 * must name its gRPC status.
 */
async function call<T = Record<string, unknown>>(template: string, path: string, init: RequestInit = {}, at = base): Promise<Answer<T>> {
  const response = await fetch(`${at}${path}`, init);
  const bytes = Buffer.from(await response.arrayBuffer());
  const headerLength = response.headers.get('inference-header-content-length');
  const json = headerLength === null ? bytes : bytes.subarray(0, Number(headerLength));
  const body = JSON.parse(json.toString()) as T;
  const validate = schemaOf(template, (init.method ?? 'GET').toLowerCase(), response.status);
  expect(validate(body), `${init.method ?? 'GET'} ${path} → ${response.status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 2000)}`).toBe(true);
  if (response.status >= 400) expect(response.headers.get('infermesh-grpc-status')).toMatch(/^[A-Z_]+$/);
  return { status: response.status, headers: response.headers, body, ...(headerLength === null ? {} : { binary: bytes.subarray(Number(headerLength)) }) };
}

const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST', body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers },
});

/** Triton's binary data extension: the JSON, then each input's bytes; BYTES elements length-prefixed. */
function binaryRequest(json: object, ...parts: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const header = Buffer.from(JSON.stringify(json));
  return { body: Buffer.concat([header, ...parts]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } };
}

function lengthPrefixed(element: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(element.length);
  return Buffer.concat([prefix, element]);
}

function imageRequest(image: Buffer, extra: object = {}) {
  const element = lengthPrefixed(image);
  return binaryRequest({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: element.length } }], ...extra }, element);
}

interface InferBody {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[]; data?: (number | string)[]; parameters?: { binary_data_size?: number } }[];
}

beforeAll(async () => {
  keysDir = await mkdtemp(join(tmpdir(), 'rest-keys-'));
  // A key as `infermesh keys create` makes one: imk_<id>_<43 base64url characters>, kept as its SHA-256.
  key = `imk_rest-client_${randomBytes(32).toString('base64url')}`;
  await writeFile(join(keysDir, 'keys.json'), JSON.stringify({ keys: [{ id: 'rest-client', sha256: createHash('sha256').update(key).digest('hex'), models: ['iris'] }] }));
  mesh = await startMesh({ routerEnv: { GRPC_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) } });
  base = mesh.routerHttpUrl;
  upright = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
  const document = await fetch(`${base}/v2/openapi.json`);
  expect(document.status).toBe(200);
  openapi = await document.json() as typeof openapi;
  ajv.addSchema(openapi, 'openapi');
  // The router learns about the worker from its first heartbeat.
  await until('both models ready over REST', async () => {
    const ready = await Promise.all(['iris', 'text-direction'].map((m) => fetch(`${base}/v2/models/${m}/ready`).then((r) => r.status)));
    return ready.every((s) => s === 200) || undefined;
  });
  keyedBase = (await mesh.startRouter('keyed-router', { env: { ROUTER_API_KEYS_FILE: join(keysDir, 'keys.json') } })).httpUrl;
  await until('the keyed router ready', async () => ((await fetch(`${keyedBase}/v2/health/ready`).catch(() => undefined))?.status === 200) || undefined);
}, 180_000);

afterAll(async () => {
  await mesh?.stop();
  if (keysDir) await rm(keysDir, { recursive: true, force: true });
});

describe('health and metadata', () => {
  it('answers live and ready with 200', async () => {
    expect((await call('/v2/health/live', '/v2/health/live')).status).toBe(200);
    expect((await call('/v2/health/ready', '/v2/health/ready')).status).toBe(200);
  });

  it('answers server metadata with the extensions', async () => {
    const { body } = await call<{ name: string; extensions: string[] }>('/v2', '/v2');
    expect(body.name).toBe('infermesh');
    expect(body.extensions).toEqual(expect.arrayContaining(['model_repository', 'statistics', 'classification']));
  });

  it('answers model metadata, readiness and configuration, with and without a version', async () => {
    const { body } = await call('/v2/models/{name}', '/v2/models/text-direction');
    expect(body).toMatchObject({ name: 'text-direction', versions: ['1'], platform: 'onnxruntime_onnx' });
    expect((await call('/v2/models/{name}/versions/{version}', '/v2/models/iris/versions/1')).body).toMatchObject({ name: 'iris' });
    expect((await call('/v2/models/{name}/versions/{version}/ready', '/v2/models/iris/versions/1/ready')).status).toBe(200);
    const config = await call('/v2/models/{name}/config', '/v2/models/text-direction/config');
    expect(config.body).toMatchObject({ name: 'text-direction', backend: 'onnxruntime', max_batch_size: 32, dynamic_batching: { preferred_batch_size: [8, 16], max_queue_delay_microseconds: 2000 } });
  });
});

describe('inference', () => {
  it('runs iris on JSON FP32 features (nested row-major data)', async () => {
    const { status, body } = await call<InferBody>('/v2/models/{name}/infer', '/v2/models/iris/infer', post({
      id: 'rest-iris-1',
      inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: [[6.3, 3.3, 6.0, 2.5], [5.1, 3.5, 1.4, 0.2]] }],
    }));
    expect(status).toBe(200);
    expect(body).toMatchObject({ model_name: 'iris', model_version: '1', id: 'rest-iris-1' });
    const probabilities = body.outputs.find((o) => o.name === 'probabilities')!;
    expect(probabilities.shape).toEqual([2, 3]);
    const rows = [probabilities.data!.slice(0, 3), probabilities.data!.slice(3)] as number[][];
    expect(rows.map((row) => row.indexOf(Math.max(...row)))).toEqual([2, 0]); // virginica, setosa
    expect(body.outputs.find((o) => o.name === 'label')).toMatchObject({ datatype: 'INT64', data: [2, 0] });
  });

  it('runs iris on a JSON row as a BYTES element, the preprocessor\'s input', async () => {
    const { status, body } = await call<InferBody>('/v2/models/{name}/infer', '/v2/models/iris/infer', post({
      inputs: [{ name: 'row', shape: [1], datatype: 'BYTES', data: [JSON.stringify(IRIS_ROW)] }],
      outputs: [{ name: 'label' }],
    }));
    expect(status).toBe(200);
    expect(body.outputs).toEqual([{ name: 'label', datatype: 'INT64', shape: [1], data: [2] }]);
  });

  it('runs text-direction on a PNG sent as a BYTES element with the binary data extension', async () => {
    const { body, headers } = imageRequest(upright);
    const answer = await call<InferBody>('/v2/models/{name}/infer', '/v2/models/text-direction/infer', { method: 'POST', body, headers });
    expect(answer.status).toBe(200);
    const [probabilities] = answer.body.outputs as { data: number[]; shape: number[] }[];
    expect(probabilities.shape).toEqual([1, 2]);
    expect(probabilities.data[0]).toBeGreaterThan(probabilities.data[1]); // upright
  });

  it('answers outputs as binary data when asked, after the JSON header', async () => {
    const { body, headers } = imageRequest(upright, { outputs: [{ name: 'softmax_0.tmp_0', parameters: { binary_data: true } }] });
    const answer = await call<InferBody>('/v2/models/{name}/infer', '/v2/models/text-direction/infer', { method: 'POST', body, headers });
    expect(answer.headers.get('content-type')).toBe('application/octet-stream');
    expect(answer.body.outputs[0].parameters?.binary_data_size).toBe(8);
    expect(answer.binary!.length).toBe(8);
    expect(answer.binary!.readFloatLE(0)).toBeGreaterThan(answer.binary!.readFloatLE(4));
  });

  it('answers the classification extension: the top class as "score:index:label"', async () => {
    const { body, headers } = imageRequest(upright, { outputs: [{ name: 'softmax_0.tmp_0', parameters: { classification: 1 } }] });
    const answer = await call<InferBody>('/v2/models/{name}/infer', '/v2/models/text-direction/infer', { method: 'POST', body, headers });
    expect(answer.status).toBe(200);
    expect(answer.body.outputs[0]).toMatchObject({ name: 'softmax_0.tmp_0', datatype: 'BYTES', shape: [1, 1] });
    expect(answer.body.outputs[0].data![0]).toMatch(/^(0\.\d+|1):0:upright$/);
  });
});

describe('errors, as gRPC gives them', () => {
  it('answers an unknown model 404 with the models served', async () => {
    const { status, body, headers } = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/no-such-model/infer', post({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }));
    expect(status).toBe(404);
    expect(headers.get('infermesh-grpc-status')).toBe('NOT_FOUND');
    expect(body.error).toMatch(/^model 'no-such-model' is not served by this mesh \(models: iris, ocr, ocr-detection, ocr-line, ocr-recognition, text-direction\)$/);
  });

  it('answers a shape the model does not take 400, naming the input (the worker\'s check)', async () => {
    const { status, body } = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/iris/infer', post({ inputs: [{ name: 'features', shape: [1, 5], datatype: 'FP32', data: [1, 2, 3, 4, 5] }] }));
    expect(status).toBe(400);
    expect(body.error).toMatch(/'features'.*\[1, 5\].*\[-1, 4\]/);
  });

  it('answers data that does not fill its shape 400, naming the input, before it is sent on', async () => {
    const { status, body } = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/iris/infer', post({ inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: [[1, 2, 3, 4], [5, 6, 7]] }] }));
    expect(status).toBe(400);
    expect(body.error).toBe("input 'features': data[1] has 3 elements, dimension 1 of shape [2, 4] is 4");
  });

  it('answers a string in a numeric tensor 400', async () => {
    const { status, body } = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/iris/infer', post({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: ['6.3', 3.3, 6.0, 2.5] }] }));
    expect(status).toBe(400);
    expect(body.error).toBe("input 'features': element 0 is the string \"6.3\", not a number (datatype FP32)");
  });

  it('answers a body that is not JSON 400', async () => {
    const { status, body } = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/iris/infer', post('{"inputs": [{"name": "features",'));
    expect(status).toBe(400);
    expect(body.error).toMatch(/^the request body is not JSON: /);
  });

  it('answers binary sizes that do not add up to the body 400', async () => {
    const { body, headers } = binaryRequest({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 100 } }] }, lengthPrefixed(upright));
    const answer = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/text-direction/infer', { method: 'POST', body, headers });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe(`inputs declare 100 bytes of binary data (binary_data_size), the body has ${upright.length + 4} after its JSON header`);
  });

  it('answers a body over the message limit 413', async () => {
    const { status, body } = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/iris/infer', post(Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20)));
    expect(status).toBe(413);
    expect(body.error).toBe(`the request body is ${MAX_MESSAGE_BYTES + 1} bytes, over the limit of ${MAX_MESSAGE_BYTES} (GRPC_MAX_MESSAGE_BYTES)`);
  });

  it('answers 401 without a key and 403 for a model the key may not use, on a router with a keys file', async () => {
    const request = post({ inputs: [{ name: 'row', shape: [1], datatype: 'BYTES', data: [JSON.stringify(IRIS_ROW)] }] });
    const missing = await call<{ error: string }>('/v2/models/{name}/infer', '/v2/models/iris/infer', request, keyedBase);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('infermesh-grpc-status')).toBe('UNAUTHENTICATED');
    const withKey = { ...request, headers: { ...request.headers as Record<string, string>, authorization: `Bearer ${key}` } };
    expect((await call('/v2/models/{name}/infer', '/v2/models/iris/infer', withKey, keyedBase)).status).toBe(200);
    expect((await call('/v2/models/{name}', '/v2/models/text-direction', { headers: { authorization: `Bearer ${key}` } }, keyedBase)).status).toBe(403);
    // Probes need no key, as over gRPC.
    expect((await call('/v2/health/live', '/v2/health/live', {}, keyedBase)).status).toBe(200);
  });
});

describe('the OpenAPI document', () => {
  it('rejects an answer missing a field it requires, or with one it does not describe', async () => {
    const { body } = await call<Record<string, unknown>>('/v2/models/{name}/infer', '/v2/models/iris/infer', post({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [6.3, 3.3, 6.0, 2.5] }] }));
    const validate = schemaOf('/v2/models/{name}/infer', 'post', 200);
    const { model_name: _dropped, ...missing } = body;
    expect(validate(missing)).toBe(false);
    expect(validate({ ...body, extra: 1 })).toBe(false);
    expect(validate({ ...body, model_version: 1 })).toBe(false);
  });

  it('describes every route the router serves', () => {
    expect(Object.keys(openapi.paths).sort()).toEqual([
      '/v2', '/v2/health/live', '/v2/health/ready', '/v2/models/stats',
      ...['', '/config', '/infer', '/ready', '/stats'].flatMap((tail) => [`/v2/models/{name}${tail}`, `/v2/models/{name}/versions/{version}${tail}`]),
      '/v2/openapi.json', '/v2/repository/index', '/v2/repository/models/{name}/load', '/v2/repository/models/{name}/unload',
    ].sort());
  });
});

describe('one path with gRPC', () => {
  it('keeps a prediction record of each REST prediction, counted by the monitor', async () => {
    const monitor = new (contracts().infermesh.v1.Monitor)(mesh.monitorAddress, grpc.credentials.createInsecure());
    const count = () => new Promise<number>((resolve) =>
      monitor.GetModelStats({ model: 'text-direction' }, (error, response) => resolve(error ? 0 : response!.stats.reduce((sum, s) => sum + Number(s.requestCount), 0))),
    );
    try {
      // Records of earlier tests are counted first.
      let before = await count();
      for (let last = -1; last !== before; before = await count()) {
        last = before;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      for (let i = 0; i < 3; i++) {
        const { body, headers } = imageRequest(upright);
        expect((await fetch(`${base}/v2/models/text-direction/infer`, { method: 'POST', body, headers })).status).toBe(200);
      }
      const after = await until('the monitor to count 3 more', async () => {
        const now = await count();
        return now >= before + 3 ? now : undefined;
      }, 30_000);
      expect(after - before).toBe(3);
    } finally {
      monitor.close();
    }
  });

  it('continues the client\'s traceparent through router, worker and monitor', async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientSpanId = randomBytes(8).toString('hex');
    const { body, headers } = imageRequest(upright);
    const answer = await fetch(`${base}/v2/models/text-direction/infer`, { method: 'POST', body, headers: { ...headers, traceparent: `00-${traceId}-${clientSpanId}-01` } });
    expect(answer.status).toBe(200);
    const expected = [
      'infermesh-router: POST /v2/models/{name}/infer',
      'infermesh-preprocessor: preprocess text-direction',
      'infermesh-worker: infer text-direction',
      'infermesh-monitor: infermesh.predictions consume',
    ];
    const named = (all: typeof mesh.otlp.spans) => all.filter((s) => s.traceId === traceId).map((s) => `${s.service}: ${s.name}`);
    const spans = (await mesh.otlp.waitFor((all) => expected.every((name) => named(all).includes(name)))).filter((s) => s.traceId === traceId);
    const router = spans.find((s) => s.name === 'POST /v2/models/{name}/infer')!;
    expect(router.parentSpanId).toBe(clientSpanId);
    expect(router.attributes).toMatchObject({ 'http.route': '/v2/models/{name}/infer', 'rpc.method': 'ModelInfer', 'http.response.status_code': 200 });
    const ids = new Set([clientSpanId, ...spans.map((s) => s.spanId)]);
    for (const span of spans) expect(ids, `${span.service}: ${span.name}`).toContain(span.parentSpanId);
  });
});

describe('statistics and the model repository', () => {
  it('answers statistics of every model and of one', async () => {
    const all = await call<{ model_stats: { name: string; inference_count: number }[] }>('/v2/models/stats', '/v2/models/stats');
    expect(all.body.model_stats.map((s) => s.name)).toEqual(expect.arrayContaining(['iris', 'text-direction']));
    const one = await call<{ model_stats: { name: string; version: string; inference_count: number }[] }>('/v2/models/{name}/versions/{version}/stats', '/v2/models/text-direction/versions/1/stats');
    expect(one.body.model_stats).toHaveLength(1);
    expect(one.body.model_stats[0]).toMatchObject({ name: 'text-direction', version: '1' });
    expect(one.body.model_stats[0].inference_count).toBeGreaterThanOrEqual(5);
  });

  it('lists the repository, unloads and loads a model', async () => {
    const index = async () => (await call<{ name: string; version: string; state: string }[]>('/v2/repository/index', '/v2/repository/index', post({}))).body;
    expect(await index()).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'iris', version: '1', state: 'READY' })]));
    expect((await call('/v2/repository/models/{name}/unload', '/v2/repository/models/iris/unload', post({}))).status).toBe(200);
    expect((await index()).find((m) => m.name === 'iris')?.state).toBe('UNAVAILABLE');
    expect((await call('/v2/models/{name}/ready', '/v2/models/iris/ready')).status).toBe(400);
    expect((await call('/v2/repository/models/{name}/load', '/v2/repository/models/iris/load', post({ parameters: { version: '1' } }))).status).toBe(200);
    await until('iris ready again', async () => ((await fetch(`${base}/v2/models/iris/ready`)).status === 200) || undefined);
    const refused = await call<{ error: string }>('/v2/repository/models/{name}/load', '/v2/repository/models/no-such-model/load', post({}));
    expect(refused.status).toBeGreaterThanOrEqual(400);
  });
});
