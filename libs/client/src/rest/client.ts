/** The REST InferenceClient: the Open Inference Protocol's HTTP/JSON API, with Triton's extensions. */
import { badAnswer, cancelled, deadlineExceeded, InferenceError, isStatusName, quote, statusOfHttp } from '../errors.js';
import { modelMetadataOf, modelStatisticsOf } from '../metadata.js';
import type { ModelMetadataWire, ModelStatisticsWire } from '../grpc/proto.js';
import { startTimer, timeoutOf } from '../deadline.js';
import { checkModelName } from '../request.js';
import { windowedStream, type StreamSink, type StreamTransport } from '../stream.js';
import type {
  CallOptions, ClientOptions, InferenceClient, InferRequest, InferResult, ModelMetadata, ModelStatistics,
  RepositoryModel, ServerMetadata, StreamOptions, StreamResult,
} from '../types.js';
import { decodeInferResponse, encodeInferBody, HEADER_LENGTH, type EncodedBody } from './codec.js';
import { fetchExchange, nodeHttpsExchange, type HttpExchange, type HttpResponse } from './http.js';

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
/** The deadline header the infermesh router reads (other servers ignore it; the local timer still holds). */
export const TIMEOUT_HEADER = 'infermesh-timeout-ms';
/** The exact status name the infermesh router sends beside the HTTP status. */
export const STATUS_HEADER = 'infermesh-grpc-status';

const segment = encodeURIComponent;

function modelPath(model: string, version: string | undefined): string {
  return `v2/models/${segment(model)}${version ? `/versions/${segment(version)}` : ''}`;
}

interface Call {
  method: 'GET' | 'POST';
  path: string;
  body?: EncodedBody;
  what: string;
}

export class RestInferenceClient implements InferenceClient {
  readonly protocol = 'rest' as const;
  readonly address: string;
  private readonly baseUrl: URL;
  private readonly http: HttpExchange;
  private readonly apiKey?: string;
  private readonly timeoutMs: number;
  private readonly binary: 'auto' | boolean;

  /** `baseUrl`: http(s)://host:port, with a path prefix if the server sits under one. */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.address = baseUrl;
    this.baseUrl = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
    this.apiKey = options.apiKey;
    this.timeoutMs = timeoutOf(options.timeoutMs, DEFAULT_TIMEOUT_MS);
    this.binary = options.binary ?? 'auto';
    const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.http = options.tls && this.baseUrl.protocol === 'https:' ? nodeHttpsExchange(options.tls, maxBytes) : fetchExchange(maxBytes);
  }

  serverLive(options: CallOptions = {}): Promise<boolean> {
    return this.probe('v2/health/live', 'server live', options);
  }

  serverReady(options: CallOptions = {}): Promise<boolean> {
    return this.probe('v2/health/ready', 'server ready', options);
  }

  modelReady(model: string, version?: string, options: CallOptions = {}): Promise<boolean> {
    checkModelName(model);
    return this.probe(`${modelPath(model, version)}/ready`, `model ready of ${quote(model)}`, options);
  }

  async serverMetadata(options: CallOptions = {}): Promise<ServerMetadata> {
    const m = await this.json<Partial<ServerMetadata>>({ method: 'GET', path: 'v2', what: 'server metadata' }, options);
    return { name: String(m.name ?? ''), version: String(m.version ?? ''), extensions: Array.isArray(m.extensions) ? m.extensions.map(String) : [] };
  }

  async modelMetadata(model: string, version?: string, options: CallOptions = {}): Promise<ModelMetadata> {
    checkModelName(model);
    const m = await this.json<Partial<ModelMetadataWire>>({ method: 'GET', path: modelPath(model, version), what: `model metadata of ${quote(model)}` }, options);
    return modelMetadataOf({ name: m.name ?? model, versions: m.versions ?? [], platform: m.platform ?? '', inputs: m.inputs ?? [], outputs: m.outputs ?? [] });
  }

  async infer(request: InferRequest, options: CallOptions = {}): Promise<InferResult> {
    return this.inferEncoded(request, encodeInferBody(request, this.binary), options);
  }

  inferStream(requests: Iterable<InferRequest> | AsyncIterable<InferRequest>, options: StreamOptions = {}): AsyncIterable<StreamResult> {
    return windowedStream(requests, options, (sink) => this.streamTransport(sink));
  }

  async modelStatistics(model?: string, version?: string, options: CallOptions = {}): Promise<ModelStatistics[]> {
    const path = model ? `${modelPath(model, version)}/stats` : 'v2/models/stats';
    const answer = await this.json<{ model_stats?: ModelStatisticsWire[] }>({ method: 'GET', path, what: model ? `statistics of ${quote(model)}` : 'statistics' }, options);
    if (!Array.isArray(answer.model_stats)) throw badAnswer('the statistics answer has no model_stats array');
    return answer.model_stats.map(modelStatisticsOf);
  }

  async repositoryIndex(options: CallOptions = {}): Promise<RepositoryModel[]> {
    const answer = await this.json<RepositoryModel[] | { models?: RepositoryModel[] }>({ method: 'POST', path: 'v2/repository/index', body: jsonBody({}), what: 'repository index' }, options);
    // Triton answers an array; a body with `models` (the gRPC shape) is read too.
    const models = Array.isArray(answer) ? answer : answer.models;
    if (!Array.isArray(models)) throw badAnswer('the repository index is not a list of models');
    return models.map((m) => ({ name: String(m.name ?? ''), version: String(m.version ?? ''), state: String(m.state ?? ''), reason: String(m.reason ?? '') }));
  }

  async loadModel(model: string, options: CallOptions = {}): Promise<void> {
    checkModelName(model);
    await this.call({ method: 'POST', path: `v2/repository/models/${segment(model)}/load`, body: jsonBody({}), what: `load of ${quote(model)}` }, options);
  }

  async unloadModel(model: string, options: CallOptions = {}): Promise<void> {
    checkModelName(model);
    await this.call({ method: 'POST', path: `v2/repository/models/${segment(model)}/unload`, body: jsonBody({}), what: `unload of ${quote(model)}` }, options);
  }

  close(): void {
    this.http.close();
  }

  private async inferEncoded(request: InferRequest, body: EncodedBody, options: CallOptions): Promise<InferResult> {
    const what = `infer of ${quote(request.model)}`;
    const response = await this.call({ method: 'POST', path: `${modelPath(request.model, request.version)}/infer`, body, what }, options);
    return decodeInferResponse(response.body, response.header(HEADER_LENGTH));
  }

  /** Liveness and readiness: 200 is true; a 4xx (Triton answers 400) or 503 is false; 401/403/429 are errors. */
  private async probe(path: string, what: string, options: CallOptions): Promise<boolean> {
    const response = await this.call({ method: 'GET', path, what }, options, true);
    if (response.status >= 200 && response.status < 300) return true;
    if ([401, 403, 429].includes(response.status) || !(response.status === 503 || (response.status >= 400 && response.status < 500))) {
      throw this.httpError(response);
    }
    return false;
  }

  private async json<T>(call: Call, options: CallOptions): Promise<T> {
    const response = await this.call(call, options);
    try {
      return JSON.parse(response.body.toString('utf8')) as T;
    } catch (error) {
      throw badAnswer(`the answer to ${call.what} is not JSON`, error);
    }
  }

  private httpError(response: HttpResponse): InferenceError {
    const text = response.body.toString('utf8');
    let message = text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (typeof parsed?.error === 'string') message = parsed.error;
    } catch {
      // not JSON: the text as it came
    }
    const named = response.header(STATUS_HEADER)?.trim().toUpperCase();
    const code = named && isStatusName(named) && named !== 'OK' ? named : statusOfHttp(response.status);
    return new InferenceError(code, message || `HTTP ${response.status}`, { httpStatus: response.status });
  }

  /** One HTTP call: deadline (header + local timer), the caller's signal, and one error table. */
  private async call(call: Call, options: CallOptions, anyStatus = false): Promise<HttpResponse> {
    const { signal } = options;
    if (signal?.aborted) throw cancelled(signal, call.what);
    const timeoutMs = timeoutOf(options.timeoutMs, this.timeoutMs);
    const controller = new AbortController();
    let timedOut = false;
    const timer = startTimer(timeoutMs, () => {
      timedOut = true;
      controller.abort();
    });
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const headers: Record<string, string> = { accept: 'application/json, application/octet-stream', ...call.body?.headers };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (Number.isFinite(timeoutMs)) headers[TIMEOUT_HEADER] = String(Math.max(1, Math.round(timeoutMs)));
    const url = new URL(call.path, this.baseUrl);
    let response: HttpResponse;
    try {
      response = await this.http.send({ method: call.method, url, headers, body: call.body?.body, signal: controller.signal });
    } catch (error) {
      if (error instanceof InferenceError) throw error;
      if (timedOut) throw deadlineExceeded(timeoutMs, call.what);
      if (signal?.aborted) throw cancelled(signal, call.what);
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new InferenceError('UNAVAILABLE', `cannot reach the server at ${url.origin} for ${call.what}: ${reason}`, { cause: error });
    } finally {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    if (!anyStatus && (response.status < 200 || response.status >= 300)) throw this.httpError(response);
    return response;
  }

  private streamTransport(sink: StreamSink): StreamTransport {
    const controller = new AbortController();
    return {
      send: (request, id) => {
        // Encoded here so a bad request is that item's error, before anything is sent.
        const body = encodeInferBody(request, this.binary, id);
        this.inferEncoded(request, body, { signal: controller.signal, timeoutMs: Infinity }).then(
          (result) => sink.answer(id, { ok: true, result }),
          (error: InferenceError) => {
            if (!controller.signal.aborted) sink.answer(id, { ok: false, error });
          },
        );
      },
      end: () => undefined,
      cancel: () => controller.abort(),
    };
  }
}

function jsonBody(value: unknown): EncodedBody {
  return { body: Buffer.from(JSON.stringify(value)), headers: { 'content-type': 'application/json' } };
}
