/**
 * The REST endpoint of a router in this process (router.fixture.ts: real NATS, a stand-in
 * worker on real gRPC), called with fetch and node:http: what reaches the worker, what the
 * client gets back, the error mapping and the limits checked before any handler runs.
 */
import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { events } from '@infermesh/bus';
import type { ModelInferRequest, PredictionRecord__Output } from '@infermesh/contracts';
import { echo, modelStatus, startRouter, type RouterUnderTest } from '../router.fixture.js';
import { GRPC_STATUS_HEADER, httpStatusOf } from './http-status.js';
import { Status } from '@infermesh/grpc';

let mesh: RouterUnderTest;
let keyed: RouterUnderTest & { keys: Record<string, string> };
let base: string;
/** What the stand-in worker was sent last. */
let sent: ModelInferRequest | undefined;

const IRIS = modelStatus('iris', {
  inputs: [{ name: 'features', datatype: 'FP32', shape: ['-1', '4'] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: ['-1', '3'] }],
});

/** A worker answer: probabilities [1, 3] and the request's id. */
function probabilities(request: ModelInferRequest) {
  sent = request;
  const raw = Buffer.alloc(12);
  [0.1, 0.2, 0.7].forEach((p, i) => raw.writeFloatLE(p, i * 4));
  return {
    response: { modelName: 'iris', modelVersion: '1', id: request.id, outputs: [{ name: 'probabilities', datatype: 'FP32', shape: ['1', '3'] }], rawOutputContents: [raw] },
    statusCode: 0, requestId: request.id,
  };
}

const irisBody = (extra: object = {}) => JSON.stringify({ id: 'r-1', inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [[5.1, 3.5, 1.4, 0.2]] }], ...extra });
const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

beforeAll(async () => {
  mesh = await startRouter();
  base = `http://127.0.0.1:${mesh.router.httpPort}`;
  keyed = await startRouter({ keys: [{ id: 'iris-only', models: ['iris'] }] });
});

afterAll(async () => {
  await mesh?.stop();
  await keyed?.stop();
});

describe('before the routing table is filled', () => {
  it('answers live, and not ready with 400 (KServe v2: 4xx for false)', async () => {
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    const ready = await fetch(`${base}/v2/health/ready`);
    expect(ready.status).toBe(400);
    expect(ready.headers.get(GRPC_STATUS_HEADER)).toBe('FAILED_PRECONDITION');
  });
});

describe('inference', () => {
  beforeAll(() => mesh.serve([IRIS]));

  it('sends the worker the ModelInferRequest a gRPC client would, and answers with JSON tensors', async () => {
    mesh.answer.current = probabilities;
    const response = await post('/v2/models/iris/infer', irisBody());
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    const body = await response.json() as { outputs: { data: number[] }[] };
    expect(body).toMatchObject({ model_name: 'iris', model_version: '1', id: 'r-1', outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 3] }] });
    expect(body.outputs[0].data.map((p) => Number(p.toFixed(4)))).toEqual([0.1, 0.2, 0.7]);
    expect(sent).toMatchObject({ modelName: 'iris', id: 'r-1', inputs: [{ name: 'features', datatype: 'FP32', shape: ['1', '4'] }] });
    expect(Buffer.from(sent!.rawInputContents![0] as Uint8Array).readFloatLE(0)).toBeCloseTo(5.1, 5);
  });

  it('answers outputs asked as binary after the JSON, with Inference-Header-Content-Length', async () => {
    mesh.answer.current = probabilities;
    const response = await post('/v2/models/iris/versions/1/infer', irisBody({ outputs: [{ name: 'probabilities', parameters: { binary_data: true } }] }));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    const bytes = Buffer.from(await response.arrayBuffer());
    const length = Number(response.headers.get('inference-header-content-length'));
    const header = JSON.parse(bytes.subarray(0, length).toString()) as { outputs: { parameters: { binary_data_size: number } }[] };
    expect(header.outputs[0].parameters.binary_data_size).toBe(12);
    expect(bytes.subarray(length).readFloatLE(8)).toBeCloseTo(0.7, 5);
    expect(sent?.modelVersion).toBe('1');
  });

  it('takes inputs as binary data after the JSON header', async () => {
    mesh.answer.current = probabilities;
    const raw = Buffer.alloc(16);
    [5.1, 3.5, 1.4, 0.2].forEach((v, i) => raw.writeFloatLE(v, i * 4));
    const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }] }));
    const response = await post('/v2/models/iris/infer', Buffer.concat([json, raw]), { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.length) });
    expect(response.status).toBe(200);
    expect(Buffer.from(sent!.rawInputContents![0] as Uint8Array)).toEqual(raw);
  });

  it('keeps a prediction record of a REST request, as of a gRPC one', async () => {
    mesh.answer.current = probabilities;
    await post('/v2/models/iris/infer', irisBody({ id: 'rest-record-1' }));
    const record = await vi.waitFor(async () => {
      const records: PredictionRecord__Output[] = (await mesh.stored('PREDICTIONS', (data) => events.predictionBatch.decode(data))).flatMap((batch) => batch.records);
      const found = records.find((r) => r.requestId === 'rest-record-1');
      if (!found) throw new Error('not yet');
      return found;
    }, { timeout: 10_000, interval: 50 });
    expect(record).toMatchObject({ model: 'iris', statusCode: 0, items: 1 });
  });

  it('answers a worker\'s refusal with its message, HTTP 400 and the gRPC status name', async () => {
    mesh.answer.current = (request) => ({ ...echo(request), statusCode: Status.INVALID_ARGUMENT, errorMessage: "input 'features': shape [1, 5] does not match [-1, 4]" });
    const response = await post('/v2/models/iris/infer', irisBody());
    expect(response.status).toBe(400);
    expect(response.headers.get(GRPC_STATUS_HEADER)).toBe('INVALID_ARGUMENT');
    expect(await response.json()).toEqual({ error: "input 'features': shape [1, 5] does not match [-1, 4]" });
  });

  it('answers an unknown model 404 with the gRPC message', async () => {
    const response = await post('/v2/models/no-such/infer', irisBody());
    expect(response.status).toBe(404);
    expect(response.headers.get(GRPC_STATUS_HEADER)).toBe('NOT_FOUND');
    expect(((await response.json()) as { error: string }).error).toMatch(/^model 'no-such' is not served by this mesh \(models: iris\)$/);
  });

  it('refuses data that does not fit its shape before the worker sees it, naming the input', async () => {
    sent = undefined;
    const response = await post('/v2/models/iris/infer', JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3] }] }));
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: "input 'features': data has 3 elements, shape [1, 4] needs 4" });
    expect(sent).toBeUndefined();
  });

  it('refuses a body that is not JSON with 400', async () => {
    const response = await post('/v2/models/iris/infer', '{"inputs": [');
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/^the request body is not JSON: /);
  });
});

describe('limits checked before any handler', () => {
  /** A request with a declared Content-Length and no body: what comes back before the body would be read. */
  function declared(length: number): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const request = http.request(`${base}/v2/models/iris/infer`, { method: 'POST', headers: { 'content-length': String(length), 'content-type': 'application/json' } }, (response) => {
        let body = '';
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, body, headers: response.headers }));
      });
      request.on('error', reject);
      request.flushHeaders();
    });
  }

  it('refuses a Content-Length over the message limit with 413 before reading the body', async () => {
    const answer = await declared(2 ** 40);
    expect(answer.status).toBe(413);
    expect(answer.headers[GRPC_STATUS_HEADER]).toBe('RESOURCE_EXHAUSTED');
    expect(JSON.parse(answer.body).error).toMatch(/^the request body is 1099511627776 bytes, over the limit of \d+ \(GRPC_MAX_MESSAGE_BYTES\)$/);
  });

  it('refuses a model name over 256 bytes and a version over 64 in the path', async () => {
    const long = await fetch(`${base}/v2/models/${'m'.repeat(300)}`);
    expect(long.status).toBe(400);
    expect(await long.json()).toEqual({ error: 'the model name is 300 bytes, over the limit of 256' });
    const version = await fetch(`${base}/v2/models/iris/versions/${'1'.repeat(65)}/ready`);
    expect(await version.json()).toEqual({ error: 'the model version is 65 bytes, over the limit of 64' });
  });

  it('answers 431 to headers over 16 KiB', async () => {
    const response = await fetch(`${base}/v2`, { headers: { 'x-padding': 'x'.repeat(20_000) } });
    expect(response.status).toBe(431);
  });

  it('refuses a deadline header that is not milliseconds', async () => {
    const response = await post('/v2/models/iris/infer', irisBody(), { 'infermesh-timeout-ms': 'soon' });
    expect(response.status).toBe(400);
  });

  it('answers an unknown route 404 and a wrong method 405 with Allow', async () => {
    expect((await fetch(`${base}/v3/models`)).status).toBe(404);
    const wrong = await fetch(`${base}/v2/models/iris/infer`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });
});

describe('API keys', () => {
  beforeAll(() => keyed.serve([IRIS, modelStatus('other')]));
  const keyedBase = () => `http://127.0.0.1:${keyed.router.httpPort}`;

  it('refuses an inference without a key with 401, before reading its body', async () => {
    // A body that is not JSON: read, it would be refused with 400.
    const response = await fetch(`${keyedBase()}/v2/models/iris/infer`, { method: 'POST', body: '{"inputs": [' });
    expect(response.status).toBe(401);
    expect(response.headers.get(GRPC_STATUS_HEADER)).toBe('UNAUTHENTICATED');
  });

  it('serves a known key, and answers 403 for a model the key may not use', async () => {
    keyed.answer.current = probabilities;
    const headers = { authorization: `Bearer ${keyed.keys['iris-only']}` };
    expect((await fetch(`${keyedBase()}/v2/models/iris/infer`, { method: 'POST', body: irisBody(), headers })).status).toBe(200);
    const other = await fetch(`${keyedBase()}/v2/models/other`, { headers });
    expect(other.status).toBe(403);
    expect(other.headers.get(GRPC_STATUS_HEADER)).toBe('PERMISSION_DENIED');
  });

  it('answers health probes without a key, as gRPC does', async () => {
    expect((await fetch(`${keyedBase()}/v2/health/live`)).status).toBe(200);
  });
});

describe('the status table', () => {
  it.each([
    [Status.INVALID_ARGUMENT, 400], [Status.OUT_OF_RANGE, 400], [Status.FAILED_PRECONDITION, 400], [Status.NOT_FOUND, 404],
    [Status.ALREADY_EXISTS, 409], [Status.PERMISSION_DENIED, 403], [Status.UNAUTHENTICATED, 401], [Status.RESOURCE_EXHAUSTED, 429],
    [Status.UNAVAILABLE, 503], [Status.DEADLINE_EXCEEDED, 504], [Status.CANCELLED, 499], [Status.UNIMPLEMENTED, 501],
    [Status.INTERNAL, 500], [Status.UNKNOWN, 500], [Status.DATA_LOSS, 500],
  ])('maps gRPC status %i to HTTP %i', (code, status) => {
    expect(httpStatusOf(code)).toBe(status);
  });
});

