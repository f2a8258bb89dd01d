/** onnxruntime-node sessions: execution provider choice with a logged fallback to cpu, datatype mapping. */
import * as ort from 'onnxruntime-node';
import type { Logger } from '@infermesh/log';
import type { Datatype, NumericArray } from '@infermesh/tensor';

export type ExecutionProvider = 'cuda' | 'webgpu' | 'cpu';

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

/** Providers this build of onnxruntime-node can load on this machine. */
export function availableProviders(): Set<string> {
  return new Set(ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name));
}

export interface SessionOptions {
  providers: readonly ExecutionProvider[];
  intraOpThreads?: number;
  deviceId?: number;
  logger: Logger;
}

/**
 * Creates a session on the first provider in the list that works, logging each fallback:
 * a provider that is not in this build, or fails to initialize, falls back to the next
 * (cpu is always appended last).
 */
export async function createSession(model: Uint8Array, options: SessionOptions): Promise<{ session: ort.InferenceSession; provider: ExecutionProvider }> {
  const wanted = [...new Set<ExecutionProvider>([...options.providers, 'cpu'])];
  const available = availableProviders();
  let lastError: unknown;
  for (const provider of wanted) {
    if (!available.has(provider)) {
      options.logger.warn({ provider, available: [...available] }, `execution provider ${provider} is not present in this onnxruntime build; falling back`);
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
      options.logger.warn({ provider, err: error }, `execution provider ${provider} failed to start; falling back`);
    }
  }
  throw lastError instanceof Error ? lastError : new Error('no execution provider could create a session');
}
