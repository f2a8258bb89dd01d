/** The REST client against a stand-in node:http server speaking KServe v2 REST with Triton's binary-data extension. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort } from '../testing/ports.js';
import { startRestStandIn, type RestStandIn } from '../testing/rest-stand-in.js';
import { answered, everyDatatype } from '../testing/tensors.js';
import { connect, InferenceError, tensor, type InferenceClient, type InferRequest, type StreamResult, type Tensor } from '../index.js';
import { AUTO_BINARY_BYTES } from './codec.js';


/** Waits for what the server sees; generous, since test machines can be slow (this is not a timing check). */
const eventually = <T>(check: () => T) => vi.waitFor(check, { timeout: 10_000, interval: 20 });
let server: RestStandIn;
let client: InferenceClient;

beforeAll(async () => {
  server = await startRestStandIn();
  client = connect(server.url, { apiKey: 'k-456' });
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

const request = (model: string, inputs: Tensor[], extra: Partial<InferRequest> = {}): InferRequest => ({ model, inputs, ...extra });

async function collect(results: AsyncIterable<StreamResult>): Promise<StreamResult[]> {
  const all: StreamResult[] = [];
  for await (const r of results) all.push(r);
  return all;
}

describe('typed tensors over REST', () => {
  it('round-trips a tensor of every datatype as JSON, INT64 beyond 2^53 digit for digit', async () => {
    const json = connect(server.url, { binary: false });
    const inputs = everyDatatype();
    const result = await json.infer(request('echo', inputs));
    expect(result.outputs).toEqual(inputs.map(answered));
    expect(server.last?.binaryBytes).toBe(0);
    expect(server.last?.headers['inference-header-content-length']).toBeUndefined();
    expect(server.last?.json).toContain('"data":[-9223372036854775808,9007199254740993,9223372036854775807]');
    expect(server.last?.json).not.toContain('binary_data');
  });

  it('round-trips a tensor of every datatype through the binary-data extension', async () => {
    const binary = connect(server.url, { binary: true });
    const inputs = everyDatatype();
    const result = await binary.infer(request('echo', inputs));
    expect(result.outputs).toEqual(inputs.map(answered));
    expect(server.last?.headers['inference-header-content-length']).toBeDefined();
    expect(JSON.parse(server.last!.json)).toMatchObject({ parameters: { binary_data_output: true }, inputs: inputs.map((t) => ({ name: t.name, parameters: { binary_data_size: expect.any(Number) } })) });
  });

  it('by default sends small tensors as JSON and large ones, or BYTES that are not UTF-8, as binary', async () => {
    const big = tensor.fp32('big', [AUTO_BINARY_BYTES / 4], new Float32Array(AUTO_BINARY_BYTES / 4).fill(0.5));
    const blob = tensor.bytes('blob', [2], [Uint8Array.from([0xff, 0x00, 0xfe]), 'text']);
    const small = tensor.fp32('small', [2], [1, 2]);
    const result = await client.infer(request('echo', [small, big, blob]));
    expect(result.outputs).toEqual([small, big, answered(blob)]);
    const sent = JSON.parse(server.last!.json);
    expect(sent.inputs[0]).toEqual({ name: 'small', shape: [2], datatype: 'FP32', data: [1, 2] });
    expect(sent.inputs[1].parameters).toEqual({ binary_data_size: AUTO_BINARY_BYTES });
    expect(sent.inputs[2].parameters).toEqual({ binary_data_size: 4 + 3 + 4 + 4 });
  });

  it('refuses, with binary: false, a tensor JSON cannot carry exactly', async () => {
    const json = connect(server.url, { binary: false });
    await expect(json.infer(request('echo', [tensor.fp32('x', [1], [NaN])]))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('inputs[0] ("x"): JSON cannot carry') });
    await expect(json.infer(request('echo', [tensor.bytes('b', [1], [Uint8Array.from([0xff])])]))).rejects.toThrow(/JSON cannot carry/);
  });

  it('sends the request id, parameters and requested outputs (classification included)', async () => {
    const result = await client.infer(request('echo', [tensor.int32('x', [1], [5])], { id: 'r-9', parameters: { priority: 2, tag: 'a' }, outputs: [{ name: 'x', classification: 1 }] }));
    expect(result).toMatchObject({ model: 'echo', version: '1', id: 'r-9', parameters: { served_by: 'stand-in' } });
    expect(JSON.parse(server.last!.json)).toMatchObject({ id: 'r-9', parameters: { priority: 2, tag: 'a' }, outputs: [{ name: 'x', parameters: { classification: 1, binary_data: true } }] });
    expect(server.last?.headers.authorization).toBe('Bearer k-456');
    expect(server.last?.headers['infermesh-timeout-ms']).toBe('30000');
  });
});

describe('the rest of the protocol over REST', () => {
  it('reads liveness, readiness (400 is false, as Triton answers) and metadata', async () => {
    expect(await client.serverLive()).toBe(true);
    expect(await client.serverReady()).toBe(true);
    server.ready = false;
    expect(await client.serverReady()).toBe(false);
    server.ready = true;
    expect(await client.modelReady('echo', '1')).toBe(true);
    expect(await client.modelReady('nothing')).toBe(false);
    expect(await client.serverMetadata()).toEqual({ name: 'rest-stand-in', version: '0.0.2', extensions: ['binary_tensor_data'] });
    expect(await client.modelMetadata('echo')).toMatchObject({ name: 'echo', versions: ['1'], inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }] });
  });

  it('reads statistics of all models or one, and the repository', async () => {
    expect(await client.modelStatistics()).toMatchObject([{ name: 'echo', lastInference: 5, inferenceCount: 2, inferenceStats: { success: { count: 2, ns: 100 }, fail: { count: 0 } } }]);
    expect(await client.modelStatistics('fail')).toMatchObject([{ name: 'fail', inferenceCount: 7 }]);
    expect((await client.repositoryIndex()).map((m) => m.name)).toContain('echo');
    await client.loadModel('echo');
    await client.unloadModel('echo');
    await expect(client.unloadModel('nothing')).rejects.toMatchObject({ code: 'NOT_FOUND', httpStatus: 404, message: "model 'nothing' is not served" });
  });
});

describe('errors over REST', () => {
  it('takes the status from infermesh-grpc-status when the server sends it, and the message from {"error"}', async () => {
    await expect(client.infer(request('fail', [tensor.int32('x', [1], [1])], { id: 'q' }))).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION', httpStatus: 400, message: `model 'fail' refuses request "q"`,
    });
  });

  it('maps the HTTP status when there is no status header', async () => {
    const error = await client.infer(request('denied', [tensor.int32('x', [1], [1])])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceError);
    expect(error).toMatchObject({ code: 'PERMISSION_DENIED', httpStatus: 403, grpcCode: 7, message: "this key may not call model 'denied'" });
  });

  it('stops reading an answer larger than maxMessageBytes: RESOURCE_EXHAUSTED', async () => {
    const small = connect(server.url, { maxMessageBytes: 1000 });
    await expect(small.infer(request('echo', [tensor.uint8('x', [5000], new Uint8Array(5000))]))).rejects.toMatchObject({
      code: 'RESOURCE_EXHAUSTED', message: expect.stringContaining('over the client\'s limit of 1000 (maxMessageBytes)'),
    });
  });

  it('answers UNAVAILABLE naming the address when nothing listens there', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await expect(connect(url).serverLive()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(new RegExp(`${url}.*ECONNREFUSED`)) });
  });

  it('answers DEADLINE_EXCEEDED when the deadline passes, tells the server the deadline, and closes the request', async () => {
    const before = server.cancelled;
    await expect(client.infer(request('slow', [tensor.int32('x', [1], [1])]), { timeoutMs: 200 })).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED', message: expect.stringContaining('200 ms') });
    expect(server.last?.headers['infermesh-timeout-ms']).toBe('200');
    await eventually(() => expect(server.cancelled).toBe(before + 1));
  });

  it('cancels the request when the signal is aborted: CANCELLED here, the connection closed at the server', async () => {
    const before = { cancelled: server.cancelled, calls: server.slowCalls };
    const controller = new AbortController();
    const call = client.infer(request('slow', [tensor.int32('x', [1], [1])]), { signal: controller.signal });
    await eventually(() => expect(server.slowCalls).toBe(before.calls + 1));
    controller.abort();
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
    await eventually(() => expect(server.cancelled).toBe(before.cancelled + 1));
  });
});

describe('streaming over REST (concurrent infer calls)', () => {
  it('answers every request with at most `window` in flight, failures as their own items', async () => {
    const fresh = await startRestStandIn();
    const rest = connect(fresh.url);
    try {
      const requests = Array.from({ length: 40 }, (_, i) => request(i % 10 === 3 ? 'fail' : 'echo', [tensor.int32('i', [1], [i])]));
      const results = await collect(rest.inferStream(requests, { window: 4 }));
      expect(results).toHaveLength(40);
      expect(results.filter((r) => !r.ok).map((r) => !r.ok && r.error.code)).toEqual(['FAILED_PRECONDITION', 'FAILED_PRECONDITION', 'FAILED_PRECONDITION', 'FAILED_PRECONDITION']);
      for (const r of results) if (r.ok) expect(r.result.output('i').data).toEqual(r.request.inputs[0].data);
      expect(fresh.maxUnanswered).toBeLessThanOrEqual(4);
    } finally {
      rest.close();
      await fresh.close();
    }
  });

  it('stops pulling while the window is full and cancels what is in flight when the loop is left', async () => {
    const fresh = await startRestStandIn();
    const rest = connect(fresh.url);
    try {
      let pulled = 0;
      function* requests() {
        for (let i = 0; i < 10; i++) {
          pulled++;
          yield request(i === 0 ? 'echo' : 'slow', [tensor.int32('i', [1], [i])]);
        }
      }
      for await (const r of rest.inferStream(requests(), { window: 3 })) {
        expect(r.ok).toBe(true);
        await eventually(() => expect(fresh.slowCalls).toBe(3));
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(pulled).toBe(4);
        break;
      }
      await eventually(() => expect(fresh.cancelled).toBe(3));
    } finally {
      rest.close();
      await fresh.close();
    }
  });
});
