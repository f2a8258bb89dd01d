/** The gRPC client against a stand-in server built from the public proto (real grpc-js on both sides). */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort } from '../testing/ports.js';
import { startGrpcStandIn, type GrpcStandIn } from '../testing/grpc-stand-in.js';
import { answered, everyDatatype } from '../testing/tensors.js';
import { connect, fp16, InferenceError, tensor, type InferenceClient, type InferRequest, type StreamResult, type Tensor } from '../index.js';


/** Waits for what the server sees; generous, since test machines can be slow (this is not a timing check). */
const eventually = <T>(check: () => T) => vi.waitFor(check, { timeout: 10_000, interval: 20 });
let server: GrpcStandIn;
let client: InferenceClient;

beforeAll(async () => {
  server = await startGrpcStandIn();
  client = connect(server.address, { apiKey: 'k-123' });
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

const request = (model: string, inputs: Tensor[], extra: Partial<InferRequest> = {}): InferRequest => ({ model, inputs, ...extra });

describe('typed tensors over gRPC', () => {
  it('round-trips a tensor of every datatype through raw contents, values and shapes exact', async () => {
    const inputs = everyDatatype();
    const result = await client.infer(request('echo', inputs));
    expect(result.outputs).toEqual(inputs.map(answered));
    expect(result.output('int64').data).toBeInstanceOf(BigInt64Array);
    expect(result.output('fp16').data).toBeInstanceOf(Uint16Array);
    expect(Array.from(fp16.toNumbers(result.output('fp16').data as Uint16Array))).toEqual([1, -2.5, 65504, 0.00006103515625]);
  });

  it('reads answers given as typed contents instead of raw (every datatype that has a contents field)', async () => {
    const inputs = everyDatatype().filter((t) => t.datatype !== 'FP16');
    const result = await client.infer(request('echo-contents', inputs));
    expect(result.outputs).toEqual(inputs.map(answered));
  });

  it('sends BYTES elements that are binary (not UTF-8, empty, zero bytes) unchanged', async () => {
    const binary = [Uint8Array.from([0xff, 0xfe, 0x00, 0x80]), new Uint8Array(0), Buffer.alloc(3000, 0)];
    const result = await client.infer(request('echo', [tensor.bytes('blob', [3], binary)]));
    expect(result.output('blob').data).toEqual(binary.map((b) => Buffer.from(b)));
  });

  it('decodes outputs into aligned arrays of their own, not views of the message', async () => {
    const result = await client.infer(request('add-one', [tensor.fp32('x', [1, 4], [1, 2, 3, 4])], { id: 'req-7' }));
    const y = result.output('y').data as Float32Array;
    expect(Array.from(y)).toEqual([2, 3, 4, 5]);
    expect(y.byteOffset).toBe(0);
    expect(y.buffer.byteLength).toBe(16);
    expect(result).toMatchObject({ model: 'add-one', version: '1', id: 'req-7', parameters: { served_by: 'stand-in' } });
  });

  it('refuses a tensor whose shape does not match its data, before anything is sent, naming the tensor', async () => {
    const bad = { name: 'x', datatype: 'FP32' as const, shape: [2, 4], data: new Float32Array(4) };
    await expect(client.infer(request('echo', [bad]))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/inputs\[0\] \("x"\).*\[2, 4\] holds 8 elements but the data has 4/) });
    expect(() => tensor.fp32('x', [3], [1, 2])).toThrow(/shape \[3\] holds 3 elements but the data has 2/);
    expect(() => tensor.int64('n', [1], [2 ** 60])).toThrow(/not a whole number an INT64 can hold exactly/);
    const wrongArray = { name: 'x', datatype: 'FP32' as const, shape: [4], data: new Float64Array(4) };
    await expect(client.infer(request('echo', [wrongArray]))).rejects.toThrow(/FP32 data must be a Float32Array/);
  });

  it('throws NOT_FOUND naming the outputs there are when asked for one that is not', async () => {
    const result = await client.infer(request('add-one', [tensor.fp32('x', [1], [1])]));
    expect(() => result.output('z')).toThrow(expect.objectContaining({ code: 'NOT_FOUND', message: expect.stringContaining('(outputs: "y")') }));
  });
});

describe('the rest of the protocol over gRPC', () => {
  it('reads liveness, readiness and metadata', async () => {
    expect(await client.serverLive()).toBe(true);
    expect(await client.serverReady()).toBe(true);
    expect(await client.modelReady('echo')).toBe(true);
    expect(await client.modelReady('nothing')).toBe(false);
    expect(await client.serverMetadata()).toEqual({ name: 'stand-in', version: '0.0.1', extensions: ['model_repository', 'statistics'] });
    expect(await client.modelMetadata('add-one')).toEqual({
      name: 'add-one', versions: ['1'], platform: 'stand-in',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }],
    });
  });

  it('reads statistics as numbers in camelCase', async () => {
    const [stats] = await client.modelStatistics('echo');
    expect(stats).toMatchObject({
      name: 'echo', version: '1', lastInference: 1700000000000, inferenceCount: 12, executionCount: 3,
      inferenceStats: { success: { count: 12 }, fail: { count: 1, ns: 500 }, cacheHit: { count: 0, ns: 0 } },
      batchStats: [{ batchSize: 4, computeInfer: { count: 3, ns: 3000 } }],
    });
  });

  it('lists, loads and unloads models of the repository', async () => {
    expect((await client.repositoryIndex()).map((m) => m.name)).toContain('add-one');
    await client.loadModel('echo');
    await client.unloadModel('echo');
    await expect(client.unloadModel('nothing')).rejects.toMatchObject({ code: 'NOT_FOUND', message: "model 'nothing' is not served" });
  });

  it('sends the API key as a bearer token', async () => {
    await client.serverLive();
    expect(server.authorization).toBe('Bearer k-123');
  });
});

describe('errors over gRPC', () => {
  it('gives the server\'s status and message as an InferenceError', async () => {
    const error = await client.infer(request('fail', [tensor.fp32('x', [1], [1])], { id: 'r1' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', grpcCode: 3, message: `model 'fail' refuses request "r1"` });
  });

  it('answers UNAVAILABLE naming the address as given when nothing listens there', async () => {
    // grpc-js names the resolved IP; the error must also name what the caller wrote.
    const address = `localhost:${await freePort()}`;
    const nowhere = connect(address);
    try {
      await expect(nowhere.serverLive()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining(address) });
    } finally {
      nowhere.close();
    }
  });

  it('answers DEADLINE_EXCEEDED when the deadline passes, and the server sees the call end', async () => {
    const before = server.cancelled;
    await expect(client.infer(request('slow', [tensor.fp32('x', [1], [1])]), { timeoutMs: 200 })).rejects.toMatchObject({
      code: 'DEADLINE_EXCEEDED', message: expect.stringContaining('deadline of 200 ms'),
    });
    await eventually(() => expect(server.cancelled).toBeGreaterThan(before));
  });

  it('cancels the call when the signal is aborted: CANCELLED here, a cancellation on the server', async () => {
    const before = { cancelled: server.cancelled, calls: server.slowCalls };
    const controller = new AbortController();
    const call = client.infer(request('slow', [tensor.fp32('x', [1], [1])]), { signal: controller.signal });
    await eventually(() => expect(server.slowCalls).toBe(before.calls + 1));
    controller.abort(new Error('user pressed stop'));
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED', message: expect.stringContaining('user pressed stop') });
    await eventually(() => expect(server.cancelled).toBe(before.cancelled + 1));
  });

  it('refuses an answer whose raw contents do not fit its shape, as INTERNAL naming the output', async () => {
    await expect(client.infer(request('broken', []))).rejects.toMatchObject({
      code: 'INTERNAL', message: 'the server\'s answer is not valid: output "y": 4 bytes of FP32 for shape [2], which needs 8',
    });
  });

  it('refuses a timeoutMs that is no deadline', async () => {
    await expect(client.serverLive({ timeoutMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('timeoutMs must be') });
  });

  it('does not call at all with a signal that is already aborted', async () => {
    const before = server.slowCalls;
    await expect(client.infer(request('slow', [tensor.fp32('x', [1], [1])]), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(server.slowCalls).toBe(before);
  });
});

/** A sync generator of requests that counts how many the client pulled and whether it was closed. */
function counted<T>(items: T[]) {
  const seen = { pulled: 0, closed: false };
  function* generate() {
    try {
      for (const item of items) {
        seen.pulled++;
        yield item;
      }
    } finally {
      seen.closed = true;
    }
  }
  return { seen, iterable: generate() };
}

async function collect(results: AsyncIterable<StreamResult>): Promise<StreamResult[]> {
  const all: StreamResult[] = [];
  for await (const r of results) all.push(r);
  return all;
}

describe('streaming over gRPC (ModelStreamInfer)', () => {
  it('answers every request, each result matched to its own request although answers come out of order', async () => {
    const requests = Array.from({ length: 60 }, (_, i) => request('add-one', [tensor.fp32('x', [1], [i])]));
    const results = await collect(client.inferStream(requests, { window: 8 }));
    expect(results).toHaveLength(60);
    for (const r of results) {
      if (!r.ok) throw r.error;
      expect(r.result.output('y').data[0]).toBe((r.request.inputs[0].data[0] as number) + 1);
    }
    expect(new Set(results.map((r) => r.request)).size).toBe(60);
  });

  it('never has more than `window` requests unanswered at the server', async () => {
    const fresh = await startGrpcStandIn();
    const streaming = connect(fresh.address);
    try {
      const requests = Array.from({ length: 200 }, (_, i) => request('echo', [tensor.int32('i', [1], [i])]));
      const results = await collect(streaming.inferStream(requests, { window: 4 }));
      expect(results.filter((r) => r.ok)).toHaveLength(200);
      expect(fresh.streamReceived).toBe(200);
      expect(fresh.maxUnanswered).toBeLessThanOrEqual(4);
      expect(fresh.maxUnanswered).toBeGreaterThan(1);
    } finally {
      streaming.close();
      await fresh.close();
    }
  });

  it('stops pulling the input while the window is full, and goes on once answers free it', async () => {
    const fresh = await startGrpcStandIn();
    const streaming = connect(fresh.address);
    try {
      const { seen, iterable } = counted(Array.from({ length: 10 }, () => request('held', [])));
      const results = collect(streaming.inferStream(iterable, { window: 3 }));
      await eventually(() => expect(fresh.streamReceived).toBe(3));
      // Nothing is answered: give the client every chance to pull more than it may.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(seen.pulled).toBe(3);
      expect(fresh.streamReceived).toBe(3);
      fresh.release();
      expect((await results).filter((r) => r.ok)).toHaveLength(10);
      expect(seen.pulled).toBe(10);
    } finally {
      streaming.close();
      await fresh.close();
    }
  });

  it('counts answers the loop has not taken yet against the window: a slow loop slows the producer', async () => {
    const { seen, iterable } = counted(Array.from({ length: 20 }, (_, i) => request('echo', [tensor.int32('i', [1], [i])])));
    let taken = 0;
    for await (const r of client.inferStream(iterable, { window: 2 })) {
      expect(r.ok).toBe(true);
      if (++taken === 1) {
        // The loop dawdles over its first result: answers pile up, but no more than the window.
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(seen.pulled).toBe(3);
      }
    }
    expect(taken).toBe(20);
  });

  it('gives a failed request its own error and goes on with the rest of the stream', async () => {
    const requests = Array.from({ length: 9 }, (_, i) => request(i % 3 === 1 ? 'fail' : 'echo', [tensor.int32('i', [1], [i])], { id: `item-${i}` }));
    const results = await collect(client.inferStream(requests, { window: 4 }));
    expect(results).toHaveLength(9);
    const failed = results.filter((r) => !r.ok);
    expect(failed.map((r) => r.request.id).sort()).toEqual(['item-1', 'item-4', 'item-7']);
    for (const r of failed) {
      if (r.ok) continue;
      expect(r.error).toBeInstanceOf(InferenceError);
      expect(r.error.message).toBe(`model 'fail' refuses request "${r.request.id}"`);
    }
    for (const r of results.filter((x) => x.ok)) if (r.ok) expect(r.result.id).toBe(r.request.id);
  });

  it('numbers requests that have no id, and refuses an id already in flight as that item\'s error', async () => {
    const fresh = await startGrpcStandIn();
    const streaming = connect(fresh.address);
    try {
      const requests = [request('held', [], { id: 'same' }), request('held', [], { id: 'same' }), request('held', []), request('held', [])];
      const results = collect(streaming.inferStream(requests, { window: 4 }));
      await eventually(() => expect(fresh.streamReceived).toBe(3));
      fresh.release();
      const all = await results;
      expect(all.filter((r) => !r.ok).map((r) => !r.ok && r.error.code)).toEqual(['INVALID_ARGUMENT']);
      expect(fresh.streamIds[0]).toBe('same');
      expect(new Set(fresh.streamIds).size).toBe(3);
      expect(fresh.streamIds.every((id) => id !== '')).toBe(true);
    } finally {
      streaming.close();
      await fresh.close();
    }
  });

  it('cancels the call and closes the input when the loop is left early', async () => {
    const fresh = await startGrpcStandIn();
    const streaming = connect(fresh.address);
    try {
      const { seen, iterable } = counted([request('echo', []), ...Array.from({ length: 20 }, () => request('slow', []))]);
      for await (const r of streaming.inferStream(iterable, { window: 5 })) {
        expect(r.ok).toBe(true);
        break;
      }
      expect(seen.closed).toBe(true);
      expect(seen.pulled).toBeLessThanOrEqual(6);
      await eventually(() => expect(fresh.cancelled).toBe(1));
    } finally {
      streaming.close();
      await fresh.close();
    }
  });

  it('leaves the loop at once on break even while the input is waiting for its next request', async () => {
    let finished = false;
    async function* stalls() {
      try {
        yield request('echo', []);
        await new Promise(() => undefined); // a source with nothing more, ever
      } finally {
        finished = true;
      }
    }
    for await (const r of client.inferStream(stalls())) {
      expect(r.ok).toBe(true);
      break;
    }
    // Reached: the break did not wait for the stalled source (whose finally never runs).
    expect(finished).toBe(false);
  });

  it('ends with CANCELLED when the signal is aborted, and the server sees the stream cancelled', async () => {
    const fresh = await startGrpcStandIn();
    const streaming = connect(fresh.address);
    try {
      const controller = new AbortController();
      const loop = collect(streaming.inferStream(Array.from({ length: 5 }, () => request('slow', [])), { signal: controller.signal }));
      await eventually(() => expect(fresh.slowCalls).toBe(5));
      controller.abort();
      await expect(loop).rejects.toMatchObject({ code: 'CANCELLED' });
      await eventually(() => expect(fresh.cancelled).toBe(1));
    } finally {
      streaming.close();
      await fresh.close();
    }
  });

  it('cancels at the server as soon as the signal is aborted, even while the loop is busy with a result', async () => {
    const fresh = await startGrpcStandIn();
    const streaming = connect(fresh.address);
    try {
      const controller = new AbortController();
      const loop = (async () => {
        for await (const r of streaming.inferStream([request('echo', []), request('slow', [])], { signal: controller.signal })) {
          expect(r.ok).toBe(true);
          await eventually(() => expect(fresh.slowCalls).toBe(1));
          controller.abort();
          // Still inside the loop body: the call is already cancelled at the server.
          await eventually(() => expect(fresh.cancelled).toBe(1));
        }
      })();
      await expect(loop).rejects.toMatchObject({ code: 'CANCELLED' });
    } finally {
      streaming.close();
      await fresh.close();
    }
  });

  it('pulls nothing more from the input once the signal is aborted, even while the loop is busy', async () => {
    let pulled = 0;
    async function* source() {
      yield request('echo', []);
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        pulled++;
        yield request('slow', []);
      }
    }
    const controller = new AbortController();
    const loop = (async () => {
      for await (const r of client.inferStream(source(), { window: 1000, signal: controller.signal })) {
        expect(r.ok).toBe(true);
        controller.abort();
        const atAbort = pulled;
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(pulled).toBeLessThanOrEqual(atAbort + 1);
      }
    })();
    await expect(loop).rejects.toMatchObject({ code: 'CANCELLED' });
  });

  it('ends with DEADLINE_EXCEEDED when the stream outlives its timeoutMs', async () => {
    await expect(collect(client.inferStream([request('slow', [])], { timeoutMs: 200 }))).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  });

  it('ends with the input\'s own error when the request iterable throws, and cancels the call', async () => {
    const fresh = await startGrpcStandIn();
    const streaming = connect(fresh.address);
    try {
      async function* broken() {
        yield request('slow', []);
        await eventually(() => expect(fresh.slowCalls).toBe(1));
        throw new Error('the request source broke');
      }
      await expect(collect(streaming.inferStream(broken()))).rejects.toThrow('the request source broke');
      await eventually(() => expect(fresh.cancelled).toBe(1));
    } finally {
      streaming.close();
      await fresh.close();
    }
  });

  it('takes an async iterable of requests', async () => {
    async function* produce() {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        yield request('add-one', [tensor.fp32('x', [1], [i])]);
      }
    }
    expect((await collect(client.inferStream(produce(), { window: 2 }))).filter((r) => r.ok)).toHaveLength(5);
  });
});
