/**
 * The mesh end to end: router, preprocessor, worker and monitor as separate processes,
 * a real nats-server, real onnxruntime on the shipped models, called with a plain Open
 * Inference Protocol client; spans collected by an OTLP receiver.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';
import { buf, bufCurl } from '@infermesh/testing';
import { bytesTensor, codeOf, fp32, inferenceClient, type InferenceClient } from './helpers/client.js';

const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

let mesh: Mesh;
let client: InferenceClient;
let upright: Buffer;
let upsideDown: Buffer;

interface InferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[] }[];
  raw_output_contents: Buffer[];
}

function imageRequest(images: Buffer[], extra: Record<string, unknown> = {}) {
  return {
    model_name: 'text-direction',
    inputs: [{ name: 'image', datatype: 'BYTES', shape: [images.length] }],
    raw_input_contents: [bytesTensor(images)],
    ...extra,
  };
}

const IRIS_ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };

function irisRequest(rows: object[] = [IRIS_ROW]) {
  // Typed contents this time: bytes_contents, one JSON row per element.
  return {
    model_name: 'iris',
    inputs: [{ name: 'row', datatype: 'BYTES', shape: [rows.length], contents: { bytes_contents: rows.map((r) => Buffer.from(JSON.stringify(r))) } }],
  };
}

async function expectServing(): Promise<void> {
  const response = await client.call<InferResponse>('ModelInfer', irisRequest());
  expect(response.model_name).toBe('iris');
}

beforeAll(async () => {
  mesh = await startMesh({ routerEnv: { GRPC_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) } });
  client = inferenceClient(mesh.routerAddress);
  upright = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
  upsideDown = await readFile(join(ROOT, 'models/text-direction/samples/upside-down.png'));
  // The router learns about the worker from its first heartbeat.
  for (let i = 0; i < 100; i++) {
    const ready = await client.call<{ ready: boolean }>('ModelReady', { name: 'text-direction' });
    if (ready.ready) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

afterAll(async () => {
  client?.close();
  await mesh?.stop();
});

describe('a plain Open Inference Protocol client', () => {
  it('sees the server live and ready', async () => {
    expect(await client.call('ServerLive', {})).toEqual({ live: true });
    expect(await client.call('ServerReady', {})).toEqual({ ready: true });
    const metadata = await client.call<{ name: string; extensions: string[] }>('ServerMetadata', {});
    expect(metadata.name).toBe('infermesh');
  });

  it('reads in a model\'s metadata the inputs a client sends (an image, a row), not the model tensor', async () => {
    expect(await client.call('ModelMetadata', { name: 'text-direction' })).toMatchObject({
      name: 'text-direction',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'image', datatype: 'BYTES', shape: [-1] }],
      outputs: [{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [-1, 2] }],
    });
    expect(await client.call('ModelMetadata', { name: 'iris' })).toMatchObject({
      inputs: [{ name: 'row', datatype: 'BYTES', shape: [-1] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 3] }, { name: 'label', datatype: 'INT64', shape: [-1] }],
    });
  });

  it('gets upright for an upright text image and rotated for an upside-down one', async () => {
    const response = await client.call<InferResponse>('ModelInfer', imageRequest([upright, upsideDown], { id: 'two-lines' }));
    expect(response.id).toBe('two-lines');
    expect(response.model_version).toBe('1');
    expect(response.outputs).toEqual([{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [2, 2], parameters: {}, contents: null }]);
    const [uprightUp, uprightRotated, flippedUp, flippedRotated] = fp32(response.raw_output_contents[0]);
    expect(uprightUp).toBeGreaterThan(0.9);
    expect(uprightRotated).toBeLessThan(0.1);
    expect(flippedRotated).toBeGreaterThan(0.9);
    expect(flippedUp).toBeLessThan(0.1);
  });

  it('classifies a tabular row sent as typed contents', async () => {
    const response = await client.call<InferResponse>('ModelInfer', irisRequest([IRIS_ROW, { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }]));
    const label = response.outputs.findIndex((o) => o.name === 'label');
    const raw = Buffer.from(response.raw_output_contents[label]);
    expect([raw.readBigInt64LE(0), raw.readBigInt64LE(8)]).toEqual([2n, 0n]); // virginica, setosa
  });

  it('gives the same answer for the features tensor in centimetres as for the row', async () => {
    const fromRow = await client.call<InferResponse>('ModelInfer', irisRequest([IRIS_ROW]));
    const features = new Float32Array([IRIS_ROW.sepal_length, IRIS_ROW.sepal_width, IRIS_ROW.petal_length, IRIS_ROW.petal_width]);
    const fromTensor = await client.call<InferResponse>('ModelInfer', {
      model_name: 'iris',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4] }],
      raw_input_contents: [Buffer.from(features.buffer)],
    });
    const probabilities = (r: InferResponse) => Array.from(fp32(r.raw_output_contents[r.outputs.findIndex((o) => o.name === 'probabilities')]));
    expect(probabilities(fromTensor)).toEqual(probabilities(fromRow));
    expect(Math.max(...probabilities(fromTensor))).toBeGreaterThan(0.9); // virginica, confidently and rightly
  });

  it('takes UINT8 pixels for text-direction, the tensor the preprocessor makes', async () => {
    const sharp = (await import('sharp')).default;
    // The upside-down sample, stretched into the 48x192 frame: still upside down.
    const pixels = await sharp(upsideDown).resize(192, 48, { fit: 'fill' }).removeAlpha().raw().toBuffer();
    const response = await client.call<InferResponse>('ModelInfer', {
      model_name: 'text-direction', inputs: [{ name: 'x', datatype: 'UINT8', shape: [1, 48, 192, 3] }], raw_input_contents: [pixels],
    });
    const [, rotated] = fp32(response.raw_output_contents[0]);
    expect(rotated).toBeGreaterThan(0.9);
  });

  it('serves a client deadline further away than a timer can hold (2^31-1 ms) instead of failing at once', async () => {
    const response = await client.call<InferResponse>('ModelInfer', irisRequest(), { timeoutMs: 30 * 24 * 3600 * 1000 });
    expect(response.model_name).toBe('iris');
  });
});

describe('a client that knows only server reflection (buf curl, grpcurl)', () => {
  const iris = (row: object) => ({
    model_name: 'iris', id: 'reflected',
    inputs: [{ name: 'row', datatype: 'BYTES', shape: ['1'], contents: { bytes_contents: [Buffer.from(JSON.stringify(row)).toString('base64')] } }],
  });

  it('lists the router\'s services and reads a model\'s metadata', async () => {
    const listed = (await buf(['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--reflect', '--list-methods', `http://${mesh.routerAddress}`], 'utf8')).split('\n');
    expect(listed).toEqual(expect.arrayContaining(['inference.GRPCInferenceService/ModelInfer', 'grpc.health.v1.Health/Check']));
    expect(await bufCurl(mesh.routerAddress, 'inference.GRPCInferenceService/ModelMetadata', { name: 'iris' })).toMatchObject({
      name: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: ['-1'] }],
    });
  });

  it('gets a real answer from ModelInfer, the request encoded by buf and forwarded as it came', async () => {
    const answer = await bufCurl(mesh.routerAddress, 'inference.GRPCInferenceService/ModelInfer', iris(IRIS_ROW)) as { id: string; modelName: string; rawOutputContents: string[]; outputs: { name: string }[] };
    expect(answer).toMatchObject({ modelName: 'iris', modelVersion: '1', id: 'reflected' });
    const label = Buffer.from(answer.rawOutputContents[answer.outputs.findIndex((o) => o.name === 'label')], 'base64');
    expect(label.readBigInt64LE(0)).toBe(2n); // virginica
  });
});

describe('bad input gets a clear error and the mesh keeps serving', () => {
  const cases: [string, () => Record<string, unknown>, grpc.status, RegExp][] = [
    ['an unknown model', () => ({ ...irisRequest(), model_name: 'no-such-model' }), grpc.status.NOT_FOUND, /model 'no-such-model' is not served.*\(models: iris, ocr, ocr-detection, ocr-line, ocr-recognition, text-direction\)/],
    ['a model name of 100 KB', () => ({ ...irisRequest(), model_name: 'm'.repeat(100_000) }), grpc.status.INVALID_ARGUMENT, /^model_name is 100000 bytes, over the limit of 256$/],
    ['a batch over max_batch_size, refused before any image is decoded', () => imageRequest(Array.from({ length: 33 }, () => Buffer.from('not even an image'))), grpc.status.INVALID_ARGUMENT, /'image'.*batch size 33.*1 to 32/],
    ['a row value beyond FP32', () => irisRequest([{ ...IRIS_ROW, sepal_length: 1e39 }]), grpc.status.INVALID_ARGUMENT, /'sepal_length'.*FP32/],
    ['classification of an output without scores', () => ({ ...irisRequest(), outputs: [{ name: 'label', parameters: { classification: { int64_param: 1 } } }] }), grpc.status.INVALID_ARGUMENT, /'label' is INT64; classification needs a numeric score output/],
    ['an unknown version', () => ({ ...irisRequest(), model_version: '7' }), grpc.status.NOT_FOUND, /version '7'/],
    ['a wrong input name', () => ({ model_name: 'iris', inputs: [{ name: 'rows', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('{}')] } }] }), grpc.status.INVALID_ARGUMENT, /'row'.*'rows'/],
    ['a wrong datatype', () => ({ model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP64', shape: [1, 4], contents: { fp64_contents: [1, 2, 3, 4] } }] }), grpc.status.INVALID_ARGUMENT, /'features'.*FP64.*FP32/],
    ['a wrong shape', () => ({ model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 5], contents: { fp32_contents: [1, 2, 3, 4, 5] } }] }), grpc.status.INVALID_ARGUMENT, /'features'.*\[1, 5\].*\[-1, 4\]/],
    ['raw contents of the wrong length', () => ({ model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.alloc(12)] }), grpc.status.INVALID_ARGUMENT, /'features'.*12 bytes.*16/],
    ['both encodings at once', () => ({ model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }], raw_input_contents: [Buffer.alloc(16)] }), grpc.status.INVALID_ARGUMENT, /both raw_input_contents and typed contents/],
    ['an image that does not decode', () => imageRequest([Buffer.from('definitely not a png')]), grpc.status.INVALID_ARGUMENT, /'image'.*element 0 is not a known image format/],
    // Messages quote what the client sent; a status message over the client's header limit would destroy its connection.
    ['a shape of 100,000 dimensions', () => ({ model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: Array(100_000).fill(1) }], raw_input_contents: [Buffer.alloc(16)] }), grpc.status.INVALID_ARGUMENT, /^inputs\[0\]\.shape has more than 64 dimensions$/],
    ['an input name of 100 KB', () => ({ model_name: 'iris', inputs: [{ name: 'r'.repeat(100_000), datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('{}')] } }] }), grpc.status.INVALID_ARGUMENT, /^.{1,1100}$/s],
    ['a row that is not JSON', () => ({ model_name: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('sepal=1')] } }] }), grpc.status.INVALID_ARGUMENT, /'row'.*row 0.*JSON/],
  ];

  for (const [what, request, code, message] of cases) {
    it(`answers ${grpc.status[code]} for ${what}`, async () => {
      const error = await codeOf(client.call('ModelInfer', request()));
      expect(grpc.status[error.code]).toBe(grpc.status[code]);
      expect(error.details).toMatch(message);
      expect(Buffer.byteLength(error.details)).toBeLessThanOrEqual(1024);
      await expectServing();
    });
  }

  it('answers INVALID_ARGUMENT for bytes that are not a ModelInferRequest', async () => {
    const raw = new grpc.Client(mesh.routerAddress, grpc.credentials.createInsecure());
    const garbage = Buffer.from([0x0a, 0x40, 0x69, 0x72]); // model_name claims 64 bytes, 2 follow
    const error = await codeOf(new Promise((resolve, reject) =>
      raw.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', (b: Buffer) => b, (b: Buffer) => b, garbage, (e, r) => (e ? reject(e) : resolve(r))),
    ));
    raw.close();
    expect(grpc.status[error.code]).toBe('INVALID_ARGUMENT');
    expect(error.details).toMatch(/not a ModelInferRequest: a field of 64 bytes runs past the end/);
    await expectServing();
  });

  it('answers every item of a ModelStreamInfer stream around an undecodable message, and the stream goes on', async () => {
    const { inferenceService } = await import('@infermesh/contracts');
    const method = inferenceService().ModelStreamInfer as unknown as grpc.MethodDefinition<object, { errorMessage: string; inferResponse: { id: string } | null }>;
    const request = (id: string) => method.requestSerialize({ id, modelName: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: ['1'], contents: { bytesContents: [Buffer.from(JSON.stringify(IRIS_ROW))] } }] } as never);
    const raw = new grpc.Client(mesh.routerAddress, grpc.credentials.createInsecure());
    const call = raw.makeBidiStreamRequest('/inference.GRPCInferenceService/ModelStreamInfer', (b: Buffer) => b, method.responseDeserialize);
    const answers: { errorMessage: string; inferResponse: { id: string } | null }[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', (answer: { errorMessage: string; inferResponse: { id: string } | null }) => answers.push(answer));
    call.on('error', () => undefined);
    call.write(request('before'));
    call.write(Buffer.from([0x0a, 0x40, 0x69, 0x72])); // model_name claims 64 bytes, 2 follow
    call.write(request('after'));
    call.end();
    const status = await ended;
    raw.close();
    expect(status.code).toBe(grpc.status.OK);
    expect(answers).toHaveLength(3);
    const byId = (id: string) => answers.find((a) => a.inferResponse?.id === id && !a.errorMessage);
    expect(byId('before'), 'the item sent before it').toBeDefined();
    expect(byId('after'), 'the item sent after it').toBeDefined();
    expect(answers.filter((a) => a.errorMessage).map((a) => a.errorMessage)).toEqual([expect.stringMatching(/not a ModelInferRequest/)]);
  });

  it('answers RESOURCE_EXHAUSTED for a message over the configured size limit', async () => {
    const huge = randomBytes(MAX_MESSAGE_BYTES + 1024);
    const error = await codeOf(client.call('ModelInfer', imageRequest([huge])));
    expect(grpc.status[error.code]).toBe('RESOURCE_EXHAUSTED');
    await expectServing();
  });

  it('accepts images larger than gRPC\'s default 4 MB cap', async () => {
    // An uncompressed 1400x1400 PNG: about 5.9 MB, over gRPC's default cap, under the mesh's.
    const sharp = (await import('sharp')).default;
    const big = await sharp(randomBytes(1400 * 1400 * 3), { raw: { width: 1400, height: 1400, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
    expect(big.length).toBeGreaterThan(4 * 1024 * 1024);
    const response = await client.call<InferResponse>('ModelInfer', imageRequest([big]));
    expect(response.outputs[0].shape).toEqual([1, 2]);
  });
});

describe('one trace per prediction', () => {
  it('follows a prediction through router, preprocessor, worker, NATS and monitor', async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientSpanId = randomBytes(8).toString('hex');
    const metadata = new grpc.Metadata();
    metadata.set('traceparent', `00-${traceId}-${clientSpanId}-01`);
    await client.call('ModelInfer', imageRequest([upright]), { metadata });

    const expected = [
      'infermesh-router: inference.GRPCInferenceService/ModelInfer',
      'infermesh-router: batch text-direction',
      'infermesh-worker: infer text-direction',
      'infermesh-preprocessor: preprocess text-direction',
      'infermesh-worker: queue',
      'infermesh-worker: compute',
      'infermesh-monitor: infermesh.predictions consume',
    ];
    const named = (all: typeof mesh.otlp.spans) => all.filter((s) => s.traceId === traceId).map((s) => `${s.service}: ${s.name}`);
    // Each service exports on its own schedule: wait until every expected span has arrived.
    const spans = (await mesh.otlp.waitFor((all) => expected.every((name) => named(all).includes(name)))).filter((s) => s.traceId === traceId);
    expect(named(spans)).toEqual(expect.arrayContaining(expected));
    // One tree: every span's parent is another span of the trace, or the client's.
    const ids = new Set([clientSpanId, ...spans.map((s) => s.spanId)]);
    for (const span of spans) expect(ids, `${span.service}: ${span.name}`).toContain(span.parentSpanId);
    // Spans on the hot path are few: these and no others.
    expect(named(spans).sort()).toEqual([...expected].sort());
  });

  it('writes the trace id into the services\' JSON logs', () => {
    const router = mesh.services.find((s) => s.name === 'router')!;
    const lines = router.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => typeof l.trace_id === 'string' && (l.trace_id as string).length === 32)).toBe(true);
  });
});

describe('the monitor', () => {
  it('counts every request once, even when clients reuse request ids', async () => {
    const { contracts } = await import('@infermesh/contracts');
    const monitor = new (contracts().infermesh.v1.Monitor)(mesh.monitorAddress, grpc.credentials.createInsecure());
    const count = () => new Promise<number>((resolve) =>
      monitor.GetModelStats({ model: 'text-direction' }, (error, response) => resolve(error ? 0 : response!.stats.reduce((sum, s) => sum + Number(s.requestCount), 0))),
    );
    await new Promise((resolve) => setTimeout(resolve, 500)); // records of earlier tests are stored and counted
    const before = await count();
    // Batch tools number items per file: the same ids come again.
    for (let round = 0; round < 2; round++) {
      await Promise.all(['line-1', 'line-2', 'line-1', ''].map((id) => client.call('ModelInfer', imageRequest([upright], { id }))));
    }
    let after = before;
    for (let i = 0; i < 100 && after < before + 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      after = await count();
    }
    monitor.close();
    expect(after - before).toBe(8);
  });

  it('counts requests and errors per model and serves Prometheus metrics', async () => {
    const { contracts } = await import('@infermesh/contracts');
    const Monitor = contracts().infermesh.v1.Monitor;
    const monitor = new Monitor(mesh.monitorAddress, grpc.credentials.createInsecure());
    const read = () => new Promise<{ stats: { model: string; requestCount: string; errorCount: string; latency: { p50Ms: number; p99Ms: number } }[] }>((resolve, reject) =>
      monitor.GetModelStats({ model: 'iris' }, (error, response) => (error ? reject(error) : resolve(response as never))),
    );
    let stats = await read().catch(() => ({ stats: [] }));
    for (let i = 0; i < 100 && !(stats.stats.length && Number(stats.stats[0].errorCount) >= 5); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      stats = await read().catch(() => ({ stats: [] }));
    }
    const iris = stats.stats.find((s) => s.model === 'iris')!;
    expect(Number(iris.requestCount)).toBeGreaterThan(Number(iris.errorCount));
    expect(Number(iris.errorCount)).toBeGreaterThanOrEqual(5);
    expect(iris.latency.p50Ms).toBeGreaterThan(0);
    expect(iris.latency.p99Ms).toBeGreaterThanOrEqual(iris.latency.p50Ms);
    monitor.close();
    const metrics = await (await fetch(mesh.metricsUrl)).text();
    expect(metrics).toMatch(/infermesh_requests_total\{[^}]*model="iris"/);
    // Requests for models the mesh does not serve are counted under one label, not under whatever name a client sent.
    expect(metrics).toMatch(/infermesh_requests_total\{model="_unknown",version="_unknown",code="NOT_FOUND"\}/);
    expect(metrics).not.toMatch(/no-such-model/);
    expect(metrics).toMatch(/infermesh_requests_total\{model="iris",version="_unknown",code="NOT_FOUND"\}/);
  });
});

describe('when the preprocessor is down', () => {
  it('answers UNAVAILABLE naming the preprocessor, and still serves requests that need none', async () => {
    expect(await mesh.services.find((s) => s.name === 'preprocessor')!.stop('SIGTERM')).toBe(0);
    const error = await codeOf(client.call('ModelInfer', imageRequest([upright])));
    expect(grpc.status[error.code]).toBe('UNAVAILABLE');
    expect(error.details).toMatch(/the preprocessor at 127\.0\.0\.1:\d+ is unavailable/);
    const features = new Float32Array([1.5, 0.5, 1.2, 1.7]);
    const response = await client.call<InferResponse>('ModelInfer', { model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.from(features.buffer)] });
    expect(response.model_name).toBe('iris');
  });
});

describe('when no worker holds the model', () => {
  it('answers UNAVAILABLE once the only worker has drained and left', async () => {
    const worker = mesh.services.find((s) => s.name === 'worker-0')!;
    expect(await worker.stop('SIGTERM')).toBe(0);
    const error = await codeOf(client.call('ModelInfer', irisRequest()));
    expect(grpc.status[error.code]).toBe('UNAVAILABLE');
    expect(error.details).toMatch(/no worker.*'iris'/);
    // And the router itself keeps serving.
    expect(await client.call('ServerLive', {})).toEqual({ live: true });
  });
});
