/** The gRPC InferenceClient: GRPCInferenceService over @grpc/grpc-js. */
import * as grpc from '@grpc/grpc-js';
import { cancelled, InferenceError, quote, statusName, streamItemError } from '../errors.js';
import { timeoutOf } from '../deadline.js';
import { checkModelName } from '../request.js';
import { windowedStream, type StreamSink, type StreamTransport } from '../stream.js';
import type {
  CallOptions, ClientOptions, InferenceClient, InferRequest, InferResult, ModelMetadata, ModelStatistics,
  RepositoryModel, ServerMetadata, StreamOptions, StreamResult,
} from '../types.js';
import { inferenceServiceClient, type ModelInferResponseWire, type ModelMetadataWire, type ModelStatisticsWire, type ModelStreamInferResponseWire } from './proto.js';
import { modelMetadataOf, modelStatisticsOf } from '../metadata.js';
import { inferRequestWire, inferResultOf } from './messages.js';

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

type Callback = (error: grpc.ServiceError | null, response?: unknown) => void;
type UnaryMethod = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback) => grpc.ClientUnaryCall;
type Stub = grpc.Client & Record<string, UnaryMethod> & {
  ModelStreamInfer(metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientDuplexStream<object, ModelStreamInferResponseWire>;
};

export interface GrpcClientOptions extends ClientOptions {
  /** grpc-js channel credentials; by default plaintext, or TLS when `tls` is given. */
  credentials?: grpc.ChannelCredentials;
}

function credentialsOf(options: GrpcClientOptions, useTls: boolean): grpc.ChannelCredentials {
  if (options.credentials) return options.credentials;
  if (!useTls && !options.tls) return grpc.credentials.createInsecure();
  const bytes = (value: Buffer | string | undefined) => (value === undefined ? null : Buffer.from(value));
  return grpc.credentials.createSsl(bytes(options.tls?.ca), bytes(options.tls?.key), bytes(options.tls?.cert));
}

export class GrpcInferenceClient implements InferenceClient {
  readonly protocol = 'grpc' as const;
  readonly address: string;
  private readonly stub: Stub;
  private readonly apiKey?: string;
  private readonly timeoutMs: number;

  /** `target` is host:port (what grpc-js dials); `useTls` for grpcs://. */
  constructor(target: string, options: GrpcClientOptions = {}, useTls = false) {
    this.address = target;
    this.apiKey = options.apiKey;
    this.timeoutMs = timeoutOf(options.timeoutMs, DEFAULT_TIMEOUT_MS);
    const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const Service = inferenceServiceClient();
    this.stub = new Service(target, credentialsOf(options, useTls), {
      'grpc.max_send_message_length': maxBytes,
      'grpc.max_receive_message_length': maxBytes,
      'grpc.primary_user_agent': '@infermesh/client',
      ...(options.tls?.serverName ? { 'grpc.ssl_target_name_override': options.tls.serverName, 'grpc.default_authority': options.tls.serverName } : {}),
    }) as unknown as Stub;
  }

  async serverLive(options: CallOptions = {}): Promise<boolean> {
    return (await this.unary<{ live: boolean }>('ServerLive', {}, options, 'ServerLive')).live;
  }

  async serverReady(options: CallOptions = {}): Promise<boolean> {
    return (await this.unary<{ ready: boolean }>('ServerReady', {}, options, 'ServerReady')).ready;
  }

  async modelReady(model: string, version = '', options: CallOptions = {}): Promise<boolean> {
    checkModelName(model);
    return (await this.unary<{ ready: boolean }>('ModelReady', { name: model, version }, options, `ModelReady of ${quote(model)}`)).ready;
  }

  async serverMetadata(options: CallOptions = {}): Promise<ServerMetadata> {
    const m = await this.unary<ServerMetadata>('ServerMetadata', {}, options, 'ServerMetadata');
    return { name: m.name, version: m.version, extensions: [...m.extensions] };
  }

  async modelMetadata(model: string, version = '', options: CallOptions = {}): Promise<ModelMetadata> {
    checkModelName(model);
    return modelMetadataOf(await this.unary<ModelMetadataWire>('ModelMetadata', { name: model, version }, options, `ModelMetadata of ${quote(model)}`));
  }

  async infer(request: InferRequest, options: CallOptions = {}): Promise<InferResult> {
    const wire = inferRequestWire(request);
    return inferResultOf(await this.unary<ModelInferResponseWire>('ModelInfer', wire, options, `ModelInfer of ${quote(request.model)}`));
  }

  inferStream(requests: Iterable<InferRequest> | AsyncIterable<InferRequest>, options: StreamOptions = {}): AsyncIterable<StreamResult> {
    return windowedStream(requests, options, (sink) => this.streamTransport(sink, options));
  }

  async modelStatistics(model = '', version = '', options: CallOptions = {}): Promise<ModelStatistics[]> {
    const what = model ? `ModelStatistics of ${quote(model)}` : 'ModelStatistics';
    const response = await this.unary<{ model_stats: ModelStatisticsWire[] }>('ModelStatistics', { name: model, version }, options, what);
    return response.model_stats.map(modelStatisticsOf);
  }

  async repositoryIndex(options: CallOptions = {}): Promise<RepositoryModel[]> {
    const response = await this.unary<{ models: RepositoryModel[] }>('RepositoryIndex', { repository_name: '', ready: false }, options, 'RepositoryIndex');
    return response.models.map((m) => ({ name: m.name, version: m.version, state: m.state, reason: m.reason }));
  }

  async loadModel(model: string, options: CallOptions = {}): Promise<void> {
    checkModelName(model);
    await this.unary('RepositoryModelLoad', { model_name: model }, options, `RepositoryModelLoad of ${quote(model)}`);
  }

  async unloadModel(model: string, options: CallOptions = {}): Promise<void> {
    checkModelName(model);
    await this.unary('RepositoryModelUnload', { model_name: model }, options, `RepositoryModelUnload of ${quote(model)}`);
  }

  close(): void {
    this.stub.close();
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.apiKey) metadata.set('authorization', `Bearer ${this.apiKey}`);
    return metadata;
  }

  /** grpc-js takes far deadlines as they are (it clamps its own timer), so only Infinity means none. */
  private deadline(timeoutMs: number | undefined): grpc.CallOptions {
    const ms = timeoutOf(timeoutMs, this.timeoutMs);
    return Number.isFinite(ms) ? { deadline: Date.now() + ms } : {};
  }

  /** One table from grpc-js errors to InferenceError: the caller's abort is CANCELLED, an unreachable server names its address. */
  private error(error: grpc.ServiceError, what: string, signal: AbortSignal | undefined, timeoutMs: number | undefined): InferenceError {
    const code = statusName(error.code);
    // grpc-js ends connection failures with an empty "Resolution note:"; it says nothing.
    const details = (error.details || error.message).replace(/\s*Resolution note:\s*$/, '');
    if (code === 'CANCELLED' && signal?.aborted) return cancelled(signal, what);
    let message = details;
    if (code === 'DEADLINE_EXCEEDED') message = `${what} did not finish within its deadline of ${timeoutMs ?? this.timeoutMs} ms (${details})`;
    else if (code === 'UNAVAILABLE') message = `${details} (calling ${this.address})`;
    return new InferenceError(code, message, { grpcCode: error.code, cause: error });
  }

  private unary<T>(method: string, request: object, options: CallOptions, what: string): Promise<T> {
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(cancelled(signal, what));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = this.stub[method](request, this.metadata(), this.deadline(timeoutMs), (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(this.error(error, what, signal, timeoutMs));
        else resolve(response as T);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private streamTransport(sink: StreamSink, options: StreamOptions): StreamTransport {
    // The stream's deadline is the caller's only: a long stream outlives the per-call default.
    const call = this.stub.ModelStreamInfer(this.metadata(), options.timeoutMs === undefined ? {} : this.deadline(options.timeoutMs));
    call.on('data', (message: ModelStreamInferResponseWire) => {
      const id = message.infer_response?.id ?? '';
      if (message.error_message) {
        // The protocol gives a stream item's error as a message only: its code, where the message names one.
        sink.answer(id, { ok: false, error: streamItemError(message.error_message) });
        return;
      }
      if (!message.infer_response) return;
      try {
        sink.answer(id, { ok: true, result: inferResultOf(message.infer_response) });
      } catch (error) {
        sink.answer(id, { ok: false, error: error as InferenceError });
      }
    });
    call.on('error', (error: grpc.ServiceError) => sink.fail(this.error(error, 'ModelStreamInfer', options.signal, options.timeoutMs)));
    call.on('end', () => sink.finished());
    return {
      send: (request, id) => {
        if (call.write(inferRequestWire(request, id))) return;
        return new Promise<void>((resolve) => {
          const done = () => {
            call.off('drain', done);
            call.off('close', done);
            resolve();
          };
          call.on('drain', done);
          call.on('close', done);
        });
      },
      end: () => call.end(),
      cancel: () => call.cancel(),
    };
  }
}
