/**
 * A model session whose onnxruntime session lives in its own worker thread
 * (session-thread-entry.ts). onnxruntime-node computes synchronously on the calling thread; in
 * the worker's own thread a run of seconds (an OCR recognition batch) would stop heartbeats,
 * gRPC and every other model's batches for its whole length. Here the event loop only copies
 * feeds in and takes outputs back.
 *
 * Feeds are copied into fresh buffers and transferred (a request's tensor is often a view of the
 * request's bytes, which the worker still reads); outputs come back transferred and are rebuilt
 * as ort.Tensor. A run that onnxruntime refuses rejects with onnxruntime's message. A thread that
 * dies fails the runs in flight and every later run, naming how it died.
 */
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { Logger } from '@infermesh/log';
import { THREAD_TAG, buffersOf, type ExecutionProvider, type FromThread, type OrtSessionOptions, type TensorMessage, type ThreadStart, type ToThread } from './session-thread-entry.js';

/** What the worker uses of a session: ort.InferenceSession's run, release and names. */
export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  run(feeds: Record<string, ort.Tensor>, wanted: readonly string[]): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
  /** Why no run can succeed any more (every thread of the session ended); undefined while it can. */
  readonly failure?: Error;
}

interface PendingRun {
  resolve: (outputs: Record<string, ort.Tensor>) => void;
  reject: (error: Error) => void;
}

/** The compiled entry beside this file; the .ts one when this module runs from src/ (tests; Node strips its types). */
function entryUrl(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './session-thread-entry.ts' : './session-thread-entry.js', import.meta.url);
}

function toMessage(tensor: ort.Tensor): TensorMessage {
  const { type, dims, data } = tensor;
  // A fresh buffer of exactly the tensor's bytes, safe to transfer; strings are cloned.
  return { type, dims, data: ArrayBuffer.isView(data) ? (data as Float32Array).slice() : [...(data as string[])] };
}

function fromMessage(t: TensorMessage): ort.Tensor {
  return new ort.Tensor(t.type, t.data as Float32Array, t.dims);
}

export class ThreadSession implements ModelSession {
  private readonly pending = new Map<number, PendingRun>();
  private nextId = 0;
  /** Why runs fail from now on: the thread died or was released. */
  private dead?: Error;
  private releasing?: Promise<void>;

  private constructor(
    private readonly thread: Worker,
    private readonly logger: Logger,
    readonly provider: ExecutionProvider,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[],
    readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[],
  ) {
    thread.on('message', (message: FromThread) => this.receive(message));
    thread.on('error', (error) => this.die(new Error(`the onnxruntime session's thread failed: ${error.message}`, { cause: error })));
    thread.on('exit', (code) => this.die(new Error(`the onnxruntime session's thread exited (code ${code})`)));
    // An idle session does not keep the process alive; one with runs in flight does.
    thread.unref();
  }

  /**
   * Starts a thread and creates the session in it (the provider fallback runs there, each
   * fallback logged here). The model's bytes are copied: the caller keeps its own.
   */
  static open(model: Uint8Array, options: OrtSessionOptions, logger: Logger): Promise<ThreadSession> {
    const bytes = model.slice();
    const start: ThreadStart = { tag: THREAD_TAG, model: bytes, options: { providers: [...options.providers], intraOpThreads: options.intraOpThreads, deviceId: options.deviceId } };
    const thread = new Worker(entryUrl(), { workerData: start, transferList: [bytes.buffer as ArrayBuffer] });
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        thread.off('message', onMessage);
        thread.off('exit', onExit);
        thread.off('error', onError);
        void thread.terminate();
        reject(error);
      };
      const onError = (error: Error) => fail(new Error(`the onnxruntime session's thread failed to start: ${error.message}`, { cause: error }));
      const onExit = (code: number) => fail(new Error(`the onnxruntime session's thread exited (code ${code}) before its session was created`));
      const onMessage = (message: FromThread) => {
        if (message.kind === 'fallback') {
          logFallback(logger, message.skipped);
        } else if (message.kind === 'open-failed') {
          fail(Object.assign(new Error(message.error.message), { stack: message.error.stack }));
        } else if (message.kind === 'ready') {
          thread.off('message', onMessage);
          thread.off('exit', onExit);
          thread.off('error', onError);
          resolve(new ThreadSession(thread, logger, message.provider, message.inputNames, message.outputNames, message.inputMetadata, message.outputMetadata));
        }
      };
      thread.on('message', onMessage);
      thread.on('exit', onExit);
      thread.on('error', onError);
    });
  }

  /** Runs sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Whether runs can still succeed (the thread neither died nor was released). */
  get failure(): Error | undefined {
    return this.dead;
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  run(feeds: Record<string, ort.Tensor>, wanted: readonly string[]): Promise<Record<string, ort.Tensor>> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    const messages: Record<string, TensorMessage> = {};
    for (const [name, tensor] of Object.entries(feeds)) messages[name] = toMessage(tensor);
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.thread.ref();
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ kind: 'run', id, feeds: messages, wanted } satisfies ToThread, buffersOf(Object.values(messages)));
    });
  }

  /** Frees the session in its thread, then ends the thread; runs after it reject. */
  release(): Promise<void> {
    this.releasing ??= this.dead ? Promise.resolve() : new Promise<void>((resolve) => {
      this.thread.ref();
      const done = () => resolve();
      this.thread.once('exit', done);
      this.thread.on('message', (message: FromThread) => {
        if (message.kind === 'released') void this.thread.terminate();
      });
      this.thread.postMessage({ kind: 'release' } satisfies ToThread);
    }).then(() => {
      this.dead ??= new Error('the onnxruntime session was released');
    });
    return this.releasing;
  }

  private receive(message: FromThread): void {
    if (message.kind !== 'result' && message.kind !== 'run-failed') return;
    const run = this.pending.get(message.id);
    if (!run) return;
    this.settled(message.id);
    if (message.kind === 'run-failed') {
      // onnxruntime's own message, as an in-process run would throw it.
      run.reject(Object.assign(new Error(message.error.message), { stack: message.error.stack }));
      return;
    }
    const outputs: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(message.outputs)) outputs[name] = fromMessage(t);
    run.resolve(outputs);
  }

  private settled(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.thread.unref();
  }

  private die(error: Error): void {
    if (this.dead) return;
    if (this.releasing) {
      this.dead = new Error('the onnxruntime session was released');
    } else {
      this.dead = error;
      this.logger.error({ err: error, runs_in_flight: this.pending.size }, 'onnxruntime session thread died; its runs fail until the model version is reloaded');
    }
    for (const [id, run] of this.pending) {
      this.settled(id);
      run.reject(this.dead);
    }
  }
}

/** With WORKER_SESSION_THREAD=auto, a model file larger than this runs in a thread; a smaller one on the event loop. */
export const AUTO_THREAD_MODEL_BYTES = 1024 * 1024;

/**
 * Whether a session runs in a thread. "auto" decides by the model's size: a run of a model over
 * 1 MiB (the OCR models: 4.7 and 10.8 MB) can hold a thread for seconds, while for a small one
 * (iris: bytes; text-direction: 0.5 MB) the thread's message round trip costs more than the run.
 */
export function sessionInThread(mode: boolean | 'auto', modelBytes: number): boolean {
  return mode === 'auto' ? modelBytes > AUTO_THREAD_MODEL_BYTES : mode;
}

/** The most sessions one model version may hold (instance_group.count): each is a thread and a copy of the model. */
export const MAX_SESSION_THREADS = 16;

/**
 * Sessions of one model version, each in its own thread (instance_group.count): batches the
 * batcher hands out at once compute side by side, each sent to the live session with the
 * fewest runs in flight.
 */
export class SessionPool implements ModelSession {
  private constructor(private readonly sessions: readonly ThreadSession[]) {}

  static async open(count: number, model: Uint8Array, options: OrtSessionOptions, logger: Logger): Promise<SessionPool> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_SESSION_THREADS) {
      throw new Error(`instance_group.count ${count}: a model version runs 1 to ${MAX_SESSION_THREADS} sessions (each a thread holding its own copy of the model)`);
    }
    const opened = await Promise.allSettled(Array.from({ length: count }, () => ThreadSession.open(model, options, logger)));
    const sessions = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const failed = opened.find((o) => o.status === 'rejected');
    if (failed) {
      await Promise.all(sessions.map((session) => session.release()));
      throw failed.reason;
    }
    return new SessionPool(sessions);
  }

  get provider(): ExecutionProvider {
    return this.sessions[0].provider;
  }
  get inputNames(): readonly string[] {
    return this.sessions[0].inputNames;
  }
  get outputNames(): readonly string[] {
    return this.sessions[0].outputNames;
  }
  get inputMetadata(): readonly ort.InferenceSession.ValueMetadata[] {
    return this.sessions[0].inputMetadata;
  }
  get outputMetadata(): readonly ort.InferenceSession.ValueMetadata[] {
    return this.sessions[0].outputMetadata;
  }

  /** Set once no session is alive: the first one's reason. */
  get failure(): Error | undefined {
    return this.sessions.some((session) => session.alive) ? undefined : this.sessions[0].failure;
  }

  /** Runs in flight in each session, in order (how the runs were spread). */
  get inFlight(): number[] {
    return this.sessions.map((session) => session.inFlight);
  }

  run(feeds: Record<string, ort.Tensor>, wanted: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const live = this.sessions.filter((session) => session.alive);
    // With none alive, the first says why its runs fail.
    const chosen = live.length ? live.reduce((a, b) => (b.inFlight < a.inFlight ? b : a)) : this.sessions[0];
    return chosen.run(feeds, wanted);
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((session) => session.release()));
  }
}

export function logFallback(logger: Logger, skipped: { provider: ExecutionProvider; available: string[]; error?: { message: string } }): void {
  if (skipped.error) {
    logger.warn({ provider: skipped.provider, err: skipped.error }, `execution provider ${skipped.provider} failed to start; falling back`);
  } else {
    logger.warn({ provider: skipped.provider, available: skipped.available }, `execution provider ${skipped.provider} is not present in this onnxruntime build; falling back`);
  }
}
