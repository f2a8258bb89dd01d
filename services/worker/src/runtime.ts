/** onnxruntime-node sessions: execution provider choice with a logged fallback to cpu, datatype mapping. */
import * as ort from 'onnxruntime-node';
import type { Logger } from '@infermesh/log';
import type { Datatype, NumericArray } from '@infermesh/tensor';
import { openOrtSession, type ExecutionProvider } from './session-thread-entry.js';
import { SessionPool, ThreadSession, logFallback, type ModelSession } from './session-thread.js';

export { availableProviders, type ExecutionProvider } from './session-thread-entry.js';
export type { ModelSession } from './session-thread.js';

const ORT_TYPE: Record<Datatype, ort.Tensor.Type> = {
  BOOL: 'bool', UINT8: 'uint8', UINT16: 'uint16', UINT32: 'uint32', UINT64: 'uint64',
  INT8: 'int8', INT16: 'int16', INT32: 'int32', INT64: 'int64', FP16: 'float16', FP32: 'float32', FP64: 'float64', BYTES: 'string',
};

const DATATYPE_OF: Partial<Record<ort.Tensor.Type, Datatype>> = Object.fromEntries(
  Object.entries(ORT_TYPE).map(([datatype, type]) => [type, datatype as Datatype]),
);

export function toOrtTensor(datatype: Datatype, shape: readonly number[], data: NumericArray | Buffer[]): ort.Tensor {
  if (datatype === 'BYTES') return new ort.Tensor('string', (data as Buffer[]).map((b) => b.toString('utf8')), shape);
  if (datatype === 'BOOL') return new ort.Tensor('bool', data as Uint8Array, shape);
  return new ort.Tensor(ORT_TYPE[datatype] as 'float32', data as Float32Array, shape);
}

export function fromOrtTensor(tensor: ort.Tensor): { datatype: Datatype; shape: number[]; data: NumericArray | Buffer[] } {
  const datatype = DATATYPE_OF[tensor.type];
  if (!datatype) throw new Error(`unsupported output type ${tensor.type}`);
  const shape = tensor.dims.map(Number);
  if (datatype === 'BYTES') return { datatype, shape, data: (tensor.data as string[]).map((s) => Buffer.from(s, 'utf8')) };
  const data = tensor.data as NumericArray;
  // onnxruntime returns bool outputs as Uint8Array already; keep one byte per element.
  return { datatype, shape, data };
}

export interface SessionOptions {
  providers: readonly ExecutionProvider[];
  intraOpThreads?: number;
  deviceId?: number;
  logger: Logger;
  /** The session in its own worker thread (session-thread.ts), else on the worker's event loop. */
  thread?: boolean;
  /**
   * With `thread`, this many sessions, each in its own thread (instance_group.count): batches
   * compute side by side. On the event loop one session serves them all, one after another.
   */
  instances?: number;
}

/**
 * Creates a session on the first provider in the list that works, logging each fallback:
 * a provider that is not in this build, or fails to initialize, falls back to the next
 * (cpu is always appended last). With `thread`, each session and its fallback live in a
 * worker thread of their own.
 */
export async function createSession(model: Uint8Array, options: SessionOptions): Promise<{ session: ModelSession; provider: ExecutionProvider }> {
  const { logger, thread, instances = 1, ...ortOptions } = options;
  if (thread) {
    const session = instances === 1 ? await ThreadSession.open(model, ortOptions, logger) : await SessionPool.open(instances, model, ortOptions, logger);
    return { session, provider: session.provider };
  }
  return openOrtSession(model, ortOptions, (skipped) => logFallback(logger, skipped));
}
