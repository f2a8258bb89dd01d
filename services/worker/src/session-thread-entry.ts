/**
 * The onnxruntime side of a model session: the provider fallback that creates a session, and,
 * when this file is a worker thread's entry (session-thread.ts), the loop that serves one
 * session's runs inside that thread. onnxruntime-node runs a model synchronously on the thread
 * that calls it, so a session kept here computes without holding the worker's event loop
 * (heartbeats, gRPC, other models' batches).
 *
 * Node runs this file as the thread's entry from src/ as well (type stripping, under the tests),
 * so it imports nothing of this package: onnxruntime-node, node builtins and erased types only.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

export type ExecutionProvider = 'cuda' | 'webgpu' | 'cpu';

export interface OrtSessionOptions {
  providers: readonly ExecutionProvider[];
  intraOpThreads?: number;
  deviceId?: number;
}

/** A provider that was skipped: not in this build, or failed to start (`error`). */
export interface ProviderFallback {
  provider: ExecutionProvider;
  available: string[];
  error?: { message: string; stack?: string };
}

/** Providers this build of onnxruntime-node can load on this machine. */
export function availableProviders(): Set<string> {
  return new Set(ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name));
}

/**
 * Creates a session on the first provider in the list that works, telling `fallback` of each
 * one skipped: a provider that is not in this build, or fails to initialize, falls back to the
 * next (cpu is always appended last).
 */
export async function openOrtSession(
  model: Uint8Array,
  options: OrtSessionOptions,
  fallback: (skipped: ProviderFallback) => void,
): Promise<{ session: ort.InferenceSession; provider: ExecutionProvider }> {
  const wanted = [...new Set<ExecutionProvider>([...options.providers, 'cpu'])];
  const available = availableProviders();
  let lastError: unknown;
  for (const provider of wanted) {
    if (!available.has(provider)) {
      fallback({ provider, available: [...available] });
      continue;
    }
    try {
      const ep: ort.InferenceSession.ExecutionProviderConfig =
        provider === 'cuda' ? { name: 'cuda', deviceId: options.deviceId ?? 0 } : provider === 'webgpu' ? { name: 'webgpu' } : 'cpu';
      const session = await ort.InferenceSession.create(model, {
        executionProviders: [ep],
        graphOptimizationLevel: 'all',
        ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
        interOpNumThreads: 1,
        // Idle intra-op threads sleep instead of spinning: a worker shares its cores with
        // other processes (router, preprocessor, other workers), which spinning would starve.
        extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      });
      return { session, provider };
    } catch (error) {
      lastError = error;
      fallback({ provider, available: [...available], error: errorOf(error) });
    }
  }
  throw lastError instanceof Error ? lastError : new Error('no execution provider could create a session');
}

/** A tensor as it crosses between threads: ort.Tensor's type, dims and data, without the class. */
export interface TensorMessage {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

/** What the thread is started with (workerData); `tag` tells this entry from any other thread's data. */
export interface ThreadStart {
  tag: typeof THREAD_TAG;
  model: Uint8Array;
  options: OrtSessionOptions;
}

export type ToThread =
  | { kind: 'run'; id: number; feeds: Record<string, TensorMessage>; wanted: readonly string[] }
  | { kind: 'release' };

export type FromThread =
  | { kind: 'fallback'; skipped: ProviderFallback }
  | {
    kind: 'ready';
    provider: ExecutionProvider;
    inputNames: readonly string[];
    outputNames: readonly string[];
    inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
    outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  }
  | { kind: 'open-failed'; error: { message: string; stack?: string } }
  | { kind: 'result'; id: number; outputs: Record<string, TensorMessage> }
  | { kind: 'run-failed'; id: number; error: { message: string; stack?: string } }
  | { kind: 'released' };

export const THREAD_TAG = 'infermesh-session-thread';

function errorOf(error: unknown): { message: string; stack?: string } {
  return error instanceof Error ? { message: error.message, stack: error.stack } : { message: String(error) };
}

/** The buffers of `tensors`' numeric data, each once (outputs of one run may share one). */
export function buffersOf(tensors: Iterable<TensorMessage>): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const t of tensors) {
    if (ArrayBuffer.isView(t.data) && t.data.buffer instanceof ArrayBuffer) buffers.add(t.data.buffer);
  }
  return [...buffers];
}

async function serve(port: MessagePort, start: ThreadStart): Promise<void> {
  let session: ort.InferenceSession;
  try {
    const opened = await openOrtSession(start.model, start.options, (skipped) => port.postMessage({ kind: 'fallback', skipped } satisfies FromThread));
    session = opened.session;
    const { inputNames, outputNames, inputMetadata, outputMetadata } = session;
    port.postMessage({ kind: 'ready', provider: opened.provider, inputNames, outputNames, inputMetadata, outputMetadata } satisfies FromThread);
  } catch (error) {
    port.postMessage({ kind: 'open-failed', error: errorOf(error) } satisfies FromThread);
    return;
  }
  // One thing at a time, in the order sent: runs compute one after another (each holds this
  // thread), and a release frees the session only after the runs sent before it.
  let queue: Promise<unknown> = Promise.resolve();
  port.on('message', (message: ToThread) => {
    if (message.kind === 'release') {
      queue = queue.then(() => session.release()).finally(() => port.postMessage({ kind: 'released' } satisfies FromThread));
    } else if (message.kind === 'run') {
      queue = queue.then(() => run(port, session, message));
    } else {
      // Only ThreadSession sends here: anything else is a bug, and ends the thread (its runs fail).
      throw new Error(`session thread: unknown message ${JSON.stringify((message as { kind?: unknown }).kind)}`);
    }
  });
}

async function run(port: MessagePort, session: ort.InferenceSession, { id, feeds, wanted }: Extract<ToThread, { kind: 'run' }>): Promise<void> {
  let results: ort.InferenceSession.ReturnType;
  try {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor(t.type, t.data as Float32Array, t.dims);
    results = await session.run(tensors, wanted);
  } catch (error) {
    port.postMessage({ kind: 'run-failed', id, error: errorOf(error) } satisfies FromThread);
    return;
  }
  const outputs: Record<string, TensorMessage> = {};
  for (const [name, t] of Object.entries(results)) outputs[name] = { type: t.type, dims: t.dims, data: t.data };
  try {
    port.postMessage({ kind: 'result', id, outputs } satisfies FromThread, buffersOf(Object.values(outputs)));
  } catch {
    // A buffer onnxruntime will not let go of (not detachable) is sent as a copy.
    port.postMessage({ kind: 'result', id, outputs } satisfies FromThread);
  }
}

const start = workerData as ThreadStart | undefined;
if (!isMainThread && parentPort && start?.tag === THREAD_TAG) void serve(parentPort, start);
