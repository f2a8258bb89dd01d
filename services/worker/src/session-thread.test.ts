/**
 * Sessions in a worker thread of their own, on real onnxruntime and the repository's models
 * (models/, built by `npm run build -w @infermesh/models`), checked against the same model run
 * on the event loop: the same outputs and metadata, the event loop free while a run computes,
 * onnxruntime's own errors, and a thread that dies or is released failing its runs clearly.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import type { Logger } from '@infermesh/log';
import { preparedModel } from './model-registry.js';
import { readModelConfig } from './repository.js';
import { servedInputs, fullShape, type ModelConfig } from './model-config.js';
import { createSession, toOrtTensor, type ModelSession } from './runtime.js';
import { AUTO_THREAD_MODEL_BYTES, MAX_SESSION_THREADS, SessionPool, ThreadSession, sessionInThread } from './session-thread.js';
import { workerConfig } from './config.js';

const MODELS = fileURLToPath(new URL('../../../models/', import.meta.url));

/** What the sessions logged as errors. */
const errors: { fields: Record<string, unknown>; message: string }[] = [];
const silent = () => {};
const logger = {
  error: (fields: Record<string, unknown>, message: string) => errors.push({ fields, message }),
  warn: silent, info: silent, debug: silent, trace: silent,
  child: () => logger,
} as unknown as Logger;

interface Loaded {
  config: ModelConfig;
  bytes: Uint8Array;
}

async function load(name: string): Promise<Loaded> {
  const dir = join(MODELS, name);
  const config = await readModelConfig(dir);
  return { config, bytes: preparedModel(config, await readFile(join(dir, '1', 'model.onnx'))) };
}

const open = (model: Loaded, thread: boolean, instances = 1) => createSession(model.bytes, { providers: ['cpu'], intraOpThreads: 1, logger, thread, instances });

/** Deterministic feeds of the served inputs: `items` rows, variable image sides at `side`. */
function feeds(config: ModelConfig, items: number, side = 64): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const input of servedInputs(config)) {
    const shape = fullShape(config, input).map((d, i) => (i === 0 && config.max_batch_size > 0 ? items : d === -1 ? side : d));
    const count = shape.reduce((a, b) => a * b, 1);
    const data = input.datatype === 'UINT8'
      ? Uint8Array.from({ length: count }, (_, i) => (i * 37) % 256)
      : Float32Array.from({ length: count }, (_, i) => ((i * 7) % 13) / 4);
    out[input.name] = toOrtTensor(input.datatype, shape, data);
  }
  return out;
}

/** The private thread of a ThreadSession: what only a test reaches, to kill it. */
const threadOf = (session: ModelSession) => (session as unknown as { thread: Worker }).thread;

const plain = (tensors: Record<string, ort.Tensor>) =>
  Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, { type: t.type, dims: [...t.dims], data: t.data }]));

let iris: Loaded;
let textDirection: Loaded;
let recognition: Loaded;

beforeAll(async () => {
  [iris, textDirection, recognition] = await Promise.all([load('iris'), load('text-direction'), load('ocr-recognition')]);
});

describe.each(['iris', 'text-direction'])('%s in a thread', (name) => {
  let inThread: ModelSession;
  let inProcess: ModelSession;
  const model = () => (name === 'iris' ? iris : textDirection);

  beforeAll(async () => {
    inThread = (await open(model(), true)).session;
    inProcess = (await open(model(), false)).session;
  });
  afterAll(async () => {
    await inThread?.release();
    await inProcess?.release();
  });

  it('is a session of its own thread', () => {
    expect(inThread).toBeInstanceOf(ThreadSession);
    expect(inProcess).not.toBeInstanceOf(ThreadSession);
  });

  it('has the names and metadata of the session run on the event loop', () => {
    expect(inThread.inputNames).toEqual(inProcess.inputNames);
    expect(inThread.outputNames).toEqual(inProcess.outputNames);
    expect(inThread.inputMetadata).toEqual(inProcess.inputMetadata);
    expect(inThread.outputMetadata).toEqual(inProcess.outputMetadata);
  });

  it('answers the outputs of the session run on the event loop, as ort.Tensor', async () => {
    const wanted = inProcess.outputNames;
    const [threaded, local] = await Promise.all([inThread.run(feeds(model().config, 3), wanted), inProcess.run(feeds(model().config, 3), wanted)]);
    for (const tensor of Object.values(threaded)) expect(tensor).toBeInstanceOf(ort.Tensor);
    expect(Object.keys(threaded).sort()).toEqual([...wanted].sort());
    expect(plain(threaded)).toEqual(plain(local));
  });

  it('leaves the feeds it was given intact (they are copied, not moved to the thread)', async () => {
    const given = feeds(model().config, 2);
    const before = plain(given);
    const view = Object.values(given)[0].data as Uint8Array;
    await inThread.run(given, inThread.outputNames);
    expect(view.buffer.byteLength).toBeGreaterThan(0);
    expect(plain(given)).toEqual(before);
  });

  it('answers runs sent at once, each its own', async () => {
    const wanted = inProcess.outputNames;
    const sizes = [1, 2, 3, 4];
    const threaded = await Promise.all(sizes.map((n) => inThread.run(feeds(model().config, n), wanted)));
    const local = await Promise.all(sizes.map((n) => inProcess.run(feeds(model().config, n), wanted)));
    expect(threaded.map(plain)).toEqual(local.map(plain));
  });
});

describe('a long run', () => {
  it('leaves the event loop free while ocr-recognition computes', async () => {
    const { session } = await open(recognition, true);
    try {
      const batch = feeds(recognition.config, 4, 1536);
      await session.run(feeds(recognition.config, 1, 320), session.outputNames); // first-run allocations
      const delay = monitorEventLoopDelay({ resolution: 10 });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      delay.enable();
      const started = performance.now();
      await session.run(batch, session.outputNames);
      const ms = performance.now() - started;
      delay.disable();
      clearInterval(timer);
      // A run long enough that a blocked event loop would show (hundreds of ms on a small machine).
      expect(ms).toBeGreaterThanOrEqual(200);
      expect(ticks).toBeGreaterThan(5);
      expect(delay.max / 1e6).toBeLessThan(ms / 2);
    } finally {
      await session.release();
    }
  });
});

describe('errors', () => {
  let inThread: ModelSession;
  let inProcess: ModelSession;

  beforeAll(async () => {
    inThread = (await open(iris, true)).session;
    inProcess = (await open(iris, false)).session;
  });
  afterAll(async () => {
    await inThread?.release();
    await inProcess?.release();
  });

  const messageOf = (run: Promise<unknown>) => run.then(() => 'resolved', (error: Error) => error.message);

  it("rejects a feed the model does not have with onnxruntime's message", async () => {
    const [name] = inProcess.inputNames;
    const wrong = { other: feeds(iris.config, 1)[name] };
    const expected = await messageOf(inProcess.run(wrong, inProcess.outputNames));
    expect(expected).not.toBe('resolved');
    expect(await messageOf(inThread.run(wrong, inThread.outputNames))).toBe(expected);
  });

  it("rejects a feed of the wrong shape with onnxruntime's message", async () => {
    const [name] = inProcess.inputNames;
    const wrong = { [name]: new ort.Tensor('float32', new Float32Array(10), [2, 5]) };
    const expected = await messageOf(inProcess.run(wrong, inProcess.outputNames));
    expect(expected).toMatch(/dimension|shape/i);
    expect(await messageOf(inThread.run(wrong, inThread.outputNames))).toBe(expected);
  });

  it('still answers after a refused run', async () => {
    const wanted = inProcess.outputNames;
    expect(plain(await inThread.run(feeds(iris.config, 2), wanted))).toEqual(plain(await inProcess.run(feeds(iris.config, 2), wanted)));
  });

  it("fails a session that cannot be created with onnxruntime's message, and ends its thread", async () => {
    const garbage = { config: iris.config, bytes: new Uint8Array([1, 2, 3, 4]) };
    const local = await open(garbage, false).then(() => 'created', (error: Error) => error.message);
    expect(local).not.toBe('created');
    await expect(open(garbage, true)).rejects.toThrow(local);
  });
});

describe('a thread that ends', () => {
  // A thread ended while onnxruntime computes in it aborts the whole process (onnxruntime-node
  // throws into the terminating isolate when the run returns): ThreadSession never terminates a
  // busy thread. This one fails between runs, from a message it does not know.
  it('fails the runs in flight and every later run, and logs it', async () => {
    const { session } = await open(iris, true);
    errors.length = 0;
    threadOf(session).postMessage({ kind: 'unknown' });
    const inFlight = [session.run(feeds(iris.config, 1), session.outputNames), session.run(feeds(iris.config, 2), session.outputNames)];
    for (const run of inFlight) await expect(run).rejects.toThrow(/the onnxruntime session's thread failed: session thread: unknown message "unknown"/);
    await expect(session.run(feeds(iris.config, 1), session.outputNames)).rejects.toThrow(/session's thread failed/);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/session thread died/)]);
    expect(errors[0].fields.runs_in_flight).toBe(2);
    await session.release();
  });

  it('refuses every run once it has exited', async () => {
    const { session } = await open(iris, true);
    const thread = threadOf(session);
    await thread.terminate(); // idle: nothing computes in it
    await expect(session.run(feeds(iris.config, 1), session.outputNames)).rejects.toThrow("the onnxruntime session's thread exited (code 1)");
  });

  it('is ended by release, after which runs are refused', async () => {
    const { session } = await open(iris, true);
    const thread = threadOf(session);
    const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
    await session.release();
    await exited;
    expect(thread.threadId).toBe(-1);
    await expect(session.run(feeds(iris.config, 1), session.outputNames)).rejects.toThrow('the onnxruntime session was released');
  });
});

describe('instance_group.count sessions', () => {
  it('spreads runs sent at once over its threads, each answering as the session on the event loop', async () => {
    const { session: pool } = await open(textDirection, true, 2);
    const { session: inProcess } = await open(textDirection, false, 2);
    try {
      expect(pool).toBeInstanceOf(SessionPool);
      expect(inProcess).not.toBeInstanceOf(SessionPool);
      expect(pool.outputNames).toEqual(inProcess.outputNames);
      const wanted = inProcess.outputNames;
      const runs = [pool.run(feeds(textDirection.config, 2), wanted), pool.run(feeds(textDirection.config, 3), wanted)];
      expect((pool as SessionPool).inFlight).toEqual([1, 1]);
      const local = [await inProcess.run(feeds(textDirection.config, 2), wanted), await inProcess.run(feeds(textDirection.config, 3), wanted)];
      expect((await Promise.all(runs)).map(plain)).toEqual(local.map(plain));
    } finally {
      await pool.release();
      await inProcess.release();
    }
  });

  it('sends runs to the sessions whose threads are alive', async () => {
    const { session: pool } = await open(iris, true, 2);
    try {
      const [first] = (pool as unknown as { sessions: ModelSession[] }).sessions;
      threadOf(first).postMessage({ kind: 'unknown' });
      await expect(first.run(feeds(iris.config, 1), first.outputNames)).rejects.toThrow(/thread failed/);
      const answers = await Promise.all([1, 2, 3].map((n) => pool.run(feeds(iris.config, n), pool.outputNames)));
      expect(answers.map((a) => a[pool.outputNames[0]].dims[0])).toEqual([1, 2, 3]);
    } finally {
      await pool.release();
    }
  });

  it(`refuses more than ${MAX_SESSION_THREADS} before starting any thread`, async () => {
    await expect(open(iris, true, MAX_SESSION_THREADS + 1)).rejects.toThrow(`instance_group.count ${MAX_SESSION_THREADS + 1}: a model version runs 1 to ${MAX_SESSION_THREADS} sessions`);
  });
});

describe('WORKER_SESSION_THREAD', () => {
  const setting = (value?: string) => workerConfig(value === undefined ? {} : { WORKER_SESSION_THREAD: value }).WORKER_SESSION_THREAD;

  it('is auto unless set: a thread for a model file over 1 MiB, the event loop for a smaller one', () => {
    expect(setting()).toBe('auto');
    expect(setting('auto')).toBe('auto');
    expect(sessionInThread('auto', AUTO_THREAD_MODEL_BYTES + 1)).toBe(true);
    expect(sessionInThread('auto', AUTO_THREAD_MODEL_BYTES)).toBe(false);
    expect(sessionInThread(true, 10)).toBe(true);
    expect(sessionInThread(false, 100 * AUTO_THREAD_MODEL_BYTES)).toBe(false);
  });

  it('is on with 1 or true, off with 0 or false', () => {
    expect(setting('1')).toBe(true);
    expect(setting('true')).toBe(true);
    expect(setting('0')).toBe(false);
    expect(setting('false')).toBe(false);
  });

  it('refuses any other value, naming the setting', () => {
    expect(() => setting('yes')).toThrow(/WORKER_SESSION_THREAD/);
  });
});
