/**
 * The hostile-request corpus (test/hostile/*.json) replayed against a real mesh, every
 * service its own process: each case gets its expected status with a bounded message, a
 * good request on the same connection succeeds right after it, and no process exits. After
 * the corpus, every service's peak memory is under a stated bound, and half-open
 * connections are closed by the router's handshake timeout.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as protoLoader from '@grpc/proto-loader';
import { preprocessorService, type PreprocessRequest, type PreprocessResponse__Output } from '@infermesh/contracts';
import { codeOf, grpc } from './helpers/client.js';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';

const CORPUS = join(ROOT, 'test/hostile');
/** Peak resident memory any one service may reach over the whole run (VmHWM). */
const PEAK_RSS_BOUND_MIB = 512;
/** Status messages are cut to 1 KiB of UTF-8 (libs/grpc), plus an ellipsis. */
const MAX_DETAILS_BYTES = 1024 + 3;
const HANDSHAKE_TIMEOUT_MS = 1000;

interface HostileCase {
  name: string;
  why: string;
  status: keyof typeof grpc.status;
  /** A pattern the status message must match: it names what was wrong. */
  details?: string;
  /** The model whose good request follows (iris when absent). */
  model?: 'iris' | 'text-direction';
  /** The GRPCInferenceService method called (ModelInfer when absent). */
  method?: string;
  /** The request in proto3 JSON with the proto's field names ... */
  request?: Record<string, unknown>;
  /** ... or its encoded bytes ... */
  raw_base64?: string;
  /** ... gzipped, for requests too large to write out. */
  raw_gzip_base64?: string;
}

const cases: HostileCase[] = readdirSync(CORPUS).filter((file) => file.endsWith('.json')).sort().map((file) => ({
  name: file.replace(/\.json$/, ''),
  ...(JSON.parse(readFileSync(join(CORPUS, file), 'utf8')) as Omit<HostileCase, 'name'>),
}));

// The public proto, as a client sees it (snake_case, int64 as numbers or strings); bytes in JSON are base64.
const definition = protoLoader.loadSync(join(ROOT, 'test/fixtures/open-inference-client.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const service = definition['inference.GRPCInferenceService'] as protoLoader.ServiceDefinition;
const modelInfer = service.ModelInfer;

const IRIS_ROW = Buffer.from('{"sepal_length":6.3,"sepal_width":3.3,"petal_length":6.0,"petal_width":2.5}');
let mesh: Mesh;
/** One client, so each good request follows its hostile case on the same HTTP/2 connection. */
let client: grpc.Client;
let upright: Buffer;

function bytesOf(hostile: HostileCase): Buffer {
  if (hostile.raw_gzip_base64) return gunzipSync(Buffer.from(hostile.raw_gzip_base64, 'base64'));
  if (hostile.raw_base64) return Buffer.from(hostile.raw_base64, 'base64');
  return service[hostile.method ?? 'ModelInfer'].requestSerialize(hostile.request ?? {});
}

function infer(bytes: Buffer, method = 'ModelInfer'): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(`/inference.GRPCInferenceService/${method}`, (b: Buffer) => b, (b: Buffer) => b, bytes, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (error, response) =>
      error ? reject(error) : resolve(response!),
    ),
  );
}

function goodRequest(model: 'iris' | 'text-direction'): Buffer {
  const request = model === 'iris'
    ? { model_name: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [IRIS_ROW] } }] }
    : { model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [upright] } }] };
  return modelInfer.requestSerialize(request);
}

async function expectGood(model: 'iris' | 'text-direction'): Promise<void> {
  const answer = modelInfer.responseDeserialize(await infer(goodRequest(model))) as { model_name: string };
  expect(answer.model_name).toBe(model);
}

function exited(): string[] {
  return mesh.services.filter((s) => s.process.exitCode !== null || s.process.signalCode !== null).map((s) => `${s.name} (${s.process.exitCode ?? s.process.signalCode})`);
}

/** A process's resident memory now and at its peak, in MiB, from /proc. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: Math.round(kib('VmRSS') / 1024), peak: Math.round(kib('VmHWM') / 1024) };
}

beforeAll(async () => {
  mesh = await startMesh({ traces: false, routerEnv: { GRPC_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS) } });
  client = new grpc.Client(mesh.routerAddress, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
  upright = readFileSync(join(ROOT, 'models/text-direction/samples/upright.png'));
  // The router learns of the worker from its first heartbeat.
  for (let i = 0; i < 200; i++) {
    const ready = await Promise.all((['iris', 'text-direction'] as const).map((model) => expectGood(model).then(() => true, () => false)));
    if (ready.every(Boolean)) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

afterAll(async () => {
  client?.close();
  await mesh?.stop();
});

describe('the hostile-request corpus', () => {
  it('holds cases that each say why they are there and what they expect', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    for (const hostile of cases) {
      expect(hostile.why, hostile.name).toMatch(/\w/);
      expect(grpc.status[hostile.status], hostile.name).toBeTypeOf('number');
      expect([hostile.request, hostile.raw_base64, hostile.raw_gzip_base64].filter(Boolean), hostile.name).toHaveLength(1);
    }
  });

  it.each(cases)('$name: $status, then a good request on the same connection succeeds', async (hostile) => {
    const error = await codeOf(infer(bytesOf(hostile), hostile.method));
    expect(grpc.status[error.code], error.details).toBe(hostile.status);
    if (hostile.details) expect(error.details).toMatch(new RegExp(hostile.details));
    expect(Buffer.byteLength(error.details)).toBeLessThanOrEqual(MAX_DETAILS_BYTES);
    await expectGood(hostile.model ?? 'iris');
    expect(exited()).toEqual([]);
  });

  it(`leaves every service running with a peak RSS under ${PEAK_RSS_BOUND_MIB} MiB`, () => {
    const memory = mesh.services.map((s) => ({ service: s.name, ...memoryOf(s.process.pid!) }));
    console.log(`memory after the corpus (MiB): ${memory.map((m) => `${m.service} rss ${m.rss} peak ${m.peak}`).join('; ')}`);
    expect(exited()).toEqual([]);
    for (const m of memory) expect(m.peak, m.service).toBeLessThan(PEAK_RSS_BOUND_MIB);
  });
});

describe('connections that never speak HTTP/2', () => {
  it('are closed by the router\'s handshake timeout, 500 at once, and the router keeps serving', async () => {
    const sockets = await Promise.all(Array.from({ length: 500 }, () => new Promise<net.Socket>((resolve, reject) => {
      const [host, port] = mesh.routerAddress.split(':');
      const socket = net.connect(Number(port), host, () => resolve(socket));
      socket.on('error', reject);
      socket.resume(); // read, so the server's close is seen
    })));
    await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())))));
    expect(sockets.filter((socket) => !socket.destroyed)).toHaveLength(0);
    await expectGood('iris');
    expect(exited()).toEqual([]);
  });
});

describe('the preprocessor, called as a worker would', () => {
  type Method = grpc.MethodDefinition<PreprocessRequest, PreprocessResponse__Output>;
  const method = preprocessorService().Preprocess as unknown as Method;
  const pipeline = { input: 'image', output: 'x', width: 4096, height: 4096, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC', datatype: 'UINT8', channelOrder: 'RGB', scale: 1 / 255, padValue: 0 };
  const onePixel = () => readFileSync(join(ROOT, 'models/text-direction/samples/upright.png'));
  const bytesTensor = (elements: Buffer[]) => Buffer.concat(elements.flatMap((e) => [Buffer.from(new Uint32Array([e.length]).buffer), e]));

  function preprocess(request: PreprocessRequest): Promise<PreprocessResponse__Output> {
    const direct = new grpc.Client(mesh.preprocessorAddress, grpc.credentials.createInsecure());
    return new Promise<PreprocessResponse__Output>((resolve, reject) =>
      direct.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (error, response) =>
        error ? reject(error) : resolve(response!),
      ),
    ).finally(() => direct.close());
  }

  it('refuses a pipeline asking for an 8192² frame in a request of a few dozen bytes, before any work', async () => {
    const request = { modelName: 'm', pipeline: { ...pipeline, width: 8192, height: 8192 }, items: [{ images: bytesTensor([onePixel()]) }] };
    const error = await codeOf(preprocess(request));
    expect(grpc.status[error.code]).toBe('INVALID_ARGUMENT');
    expect(error.details).toMatch(/pipeline width 8192 is outside 1 to 4096/);
  });

  it('refuses with RESOURCE_EXHAUSTED, before decoding, a call whose 4096² frames would not fit one answer', async () => {
    const request = { modelName: 'm', pipeline, items: [{ images: bytesTensor(Array.from({ length: 7 }, onePixel)) }] };
    const error = await codeOf(preprocess(request));
    expect(grpc.status[error.code]).toBe('RESOURCE_EXHAUSTED');
    expect(error.details).toMatch(/the call's 7 images would answer \d+ bytes of pixels and framing, over the \d+-byte message limit/);
    expect(memoryOf(mesh.service('preprocessor').process.pid!).peak).toBeLessThan(PEAK_RSS_BOUND_MIB);
    expect(exited()).toEqual([]);
  });
});
