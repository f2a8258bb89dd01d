/** The public shapes of @infermesh/client: tensors, requests, results and the client itself. */
import type { InferenceError } from './errors.js';

/** The Open Inference Protocol's tensor datatypes. */
export type Datatype =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64' | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'FP32' | 'FP64' | 'BYTES';

/**
 * A tensor's elements, flattened row-major. Each datatype has one typed array
 * (FP16 travels as its raw 16-bit words in a Uint16Array); BOOL is boolean[] (a Uint8Array
 * of 0/1 is accepted on input); BYTES is an array of strings (sent as UTF-8) or byte arrays.
 */
export type TensorData =
  | Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array
  | boolean[] | (string | Uint8Array)[];

export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorData;
}

export interface RequestedOutput {
  name: string;
  /** Triton's classification extension: answer the top `classification` classes as BYTES "score:index[:label]". */
  classification?: number;
}

export type Parameters = Record<string, string | number | boolean>;

export interface InferRequest {
  model: string;
  version?: string;
  id?: string;
  inputs: Tensor[];
  /** Outputs to return; all of them when absent. */
  outputs?: RequestedOutput[];
  parameters?: Parameters;
}

export interface InferResult {
  model: string;
  version: string;
  id: string;
  /** BYTES outputs have Uint8Array (Buffer) elements; BOOL outputs boolean[]. */
  outputs: Tensor[];
  /** The output of that name; throws InferenceError NOT_FOUND naming the outputs there are. */
  output(name: string): Tensor;
  parameters: Parameters;
}

export interface CallOptions {
  /** Aborting it cancels the call: InferenceError CANCELLED. */
  signal?: AbortSignal;
  /** Deadline of this call in milliseconds (default: the client's timeoutMs). Infinity: none. */
  timeoutMs?: number;
}

export interface StreamOptions extends CallOptions {
  /**
   * Requests sent and not yet handed to the loop, at most (default 16). The input iterable is
   * pulled only while fewer are outstanding, so a slow server or a slow loop slows the producer.
   */
  window?: number;
}

/** One answer of a stream: the result, or the error of that request (the stream goes on). */
export type StreamResult =
  | { ok: true; request: InferRequest; result: InferResult }
  | { ok: false; request: InferRequest; error: InferenceError };

export interface TensorMetadata {
  name: string;
  datatype: string;
  /** -1 for a dimension of variable size. */
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/** Count and total duration of one kind of event (Triton's StatisticDuration). */
export interface StatisticDuration {
  count: number;
  ns: number;
}

export interface ModelStatistics {
  name: string;
  version: string;
  /** Milliseconds since the epoch of the last inference, 0 if none. */
  lastInference: number;
  inferenceCount: number;
  executionCount: number;
  inferenceStats: {
    success: StatisticDuration;
    fail: StatisticDuration;
    queue: StatisticDuration;
    computeInput: StatisticDuration;
    computeInfer: StatisticDuration;
    computeOutput: StatisticDuration;
    cacheHit: StatisticDuration;
    cacheMiss: StatisticDuration;
  };
  batchStats: { batchSize: number; computeInput: StatisticDuration; computeInfer: StatisticDuration; computeOutput: StatisticDuration }[];
}

export interface RepositoryModel {
  name: string;
  version: string;
  state: string;
  reason: string;
}

export interface InferenceClient {
  readonly protocol: 'grpc' | 'rest';
  /** The address it calls, as given to connect(). */
  readonly address: string;
  serverLive(options?: CallOptions): Promise<boolean>;
  serverReady(options?: CallOptions): Promise<boolean>;
  modelReady(model: string, version?: string, options?: CallOptions): Promise<boolean>;
  serverMetadata(options?: CallOptions): Promise<ServerMetadata>;
  modelMetadata(model: string, version?: string, options?: CallOptions): Promise<ModelMetadata>;
  infer(request: InferRequest, options?: CallOptions): Promise<InferResult>;
  /**
   * gRPC: one ModelStreamInfer call; REST: up to `window` concurrent infer calls. Results come in
   * completion order. Breaking out of the loop or aborting the signal cancels what is in flight
   * and stops pulling `requests`.
   */
  inferStream(requests: Iterable<InferRequest> | AsyncIterable<InferRequest>, options?: StreamOptions): AsyncIterable<StreamResult>;
  /** All models' statistics when `model` is absent. */
  modelStatistics(model?: string, version?: string, options?: CallOptions): Promise<ModelStatistics[]>;
  repositoryIndex(options?: CallOptions): Promise<RepositoryModel[]>;
  loadModel(model: string, options?: CallOptions): Promise<void>;
  unloadModel(model: string, options?: CallOptions): Promise<void>;
  close(): void;
}

export interface TlsOptions {
  /** CA certificate(s) the server's certificate must chain to (default: the system's). */
  ca?: Buffer | string;
  /** Client certificate and key, for mutual TLS. */
  cert?: Buffer | string;
  key?: Buffer | string;
  /** The name to check the server's certificate against, when it differs from the host. */
  serverName?: string;
}

export interface ClientOptions {
  /** Sent as `authorization: Bearer <key>` on every call. */
  apiKey?: string;
  /** grpcs:// and https:// imply TLS; with a bare host:port, giving tls turns it on. */
  tls?: TlsOptions;
  /** Default deadline of each call in milliseconds (30 s). Streams have none unless given one. */
  timeoutMs?: number;
  /** Largest message sent or received (gRPC) or response read (REST), in bytes (256 MiB). */
  maxMessageBytes?: number;
  /**
   * REST only: Triton's binary-data extension. 'auto' (default) sends a tensor as binary when its
   * raw size is at least 64 KiB or JSON cannot carry it exactly (FP16, non-finite floats, BYTES
   * that are not UTF-8), and asks for binary outputs; true: every tensor binary; false: JSON only
   * (for servers without the extension; tensors JSON cannot carry are then an error).
   */
  binary?: 'auto' | boolean;
}
