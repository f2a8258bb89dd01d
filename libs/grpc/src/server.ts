/**
 * Server bootstrap shared by every service: message size limits, grpc.health.v1,
 * reflection, handlers wrapped once (trace context, span, error → status, logging),
 * graceful shutdown.
 */
import { dirname, relative } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { INVALID_SPAN_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import type { Logger } from '@infermesh/log';
import { PROTO_FILES, PROTO_ROOT } from '@infermesh/contracts';
import { addReflection, type ProtoFiles } from './reflection.js';
import { statusOf, type StatusOf } from './status.js';
import { undecodableAsMessages } from './stream.js';
import { extractTraceContext } from './trace-metadata.js';
import { atDeadline } from './deadline.js';
import { acceptFarDeadlines } from './far-deadlines.js';
import { DEFAULT_HTTP2_LIMITS, enforceHandshakeTimeout, http2ServerOptions, type Http2Limits } from './http2-limits.js';
import { callerIdentities, type Identity, type Role } from './tls.js';
import { ServiceError, Status } from './errors.js';

/**
 * Once the last call in flight is answered at shutdown, connections still open get this
 * long to close on their own (flushing what was written) before they are cut.
 */
const SHUTDOWN_FLUSH_MS = 100;

/** How far a call's deadline may be off from the moment grpc-js cancels it for the deadline. */
const DEADLINE_ROUNDING_MS = 5;

export interface CallContext {
  metadata: grpc.Metadata;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
  deadline: grpc.Deadline;
  span: Span;
  peer: string;
  /** The mesh identities in the caller's certificate (none over plaintext or without a mesh certificate). */
  callers: Identity[];
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
export type BidiHandler<Req, Res> = (call: grpc.ServerDuplexStream<Req, Res>, ctx: CallContext) => Promise<void>;
/** One request, a stream of answers: the handler writes to `call` and resolves when done (the stream then ends OK). */
export type ServerStreamHandler<Req, Res> = (request: Req, call: grpc.ServerWritableStream<Req, Res>, ctx: CallContext) => Promise<void>;

export interface ServiceHandlers {
  [method: string]: UnaryHandler<never, unknown> | { bidi: BidiHandler<never, unknown> } | { serverStream: ServerStreamHandler<never, unknown> };
}

export interface GrpcServerOptions {
  name: string;
  logger: Logger;
  /** The largest message taken and sent (both ways unless overridden below). */
  maxMessageBytes: number;
  /** The largest message taken, when it differs (-1: no limit). */
  maxReceiveBytes?: number;
  /** The largest message sent, when it differs (-1: no limit). */
  maxSendBytes?: number;
  /** TLS (see tls.ts); plaintext when absent. */
  credentials?: grpc.ServerCredentials;
  /**
   * A second port serving grpc.health.v1 alone, in plaintext: kubelet's gRPC probes speak no
   * TLS, and a probe learns only SERVING or NOT_SERVING. Bound by listen() on the same host.
   */
  healthPort?: number;
  /** Per-connection bounds (streams, idle and handshake timeouts); defaults in http2-limits.ts. */
  http2?: Http2Limits;
}

export interface AddServiceOptions {
  /**
   * Methods that get no span of their own: calls that carry the requests of many traces
   * (a router's batches), whose handlers make one span per request in each request's own
   * trace. Their CallContext.span records nothing.
   */
  untraced?: readonly string[];
  /**
   * Mesh roles allowed to call the service's methods. Enforced when the server runs mesh TLS
   * (a client certificate is then required and names its holder); over plaintext, which
   * only a one-machine mesh on loopback uses, nothing proves a caller's role.
   */
  callers?: readonly Role[];
  /** Per method, the roles allowed instead of `callers` (least privilege where callers differ by method). */
  methodCallers?: Readonly<Record<string, readonly Role[]>>;
}

/** The span of an untraced call: valid to call, records nothing, starts no trace. */
const UNTRACED = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

export interface GrpcServer {
  readonly server: grpc.Server;
  readonly health: HealthImplementation;
  addService(serviceName: string, definition: grpc.ServiceDefinition, handlers: ServiceHandlers, options?: AddServiceOptions): void;
  /** Binds and starts; returns the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  setServing(serving: boolean): void;
  /** Health NOT_SERVING, refuse new calls, wait for in-flight ones up to `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
}

// What reflection describes: the mesh's .proto files, and grpc-health-check's
// proto/health/v1/health.proto, served as health/v1/health.proto.
const healthProtoRoot = dirname(dirname(dirname(healthProtoPath)));
const REFLECTED: readonly ProtoFiles[] = [
  { root: PROTO_ROOT, files: PROTO_FILES },
  { root: healthProtoRoot, files: [relative(healthProtoRoot, healthProtoPath)] },
];

export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  acceptFarDeadlines();
  const { logger } = options;
  const meshTls = options.credentials !== undefined && options.credentials._isSecure();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxReceiveBytes ?? options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxSendBytes ?? options.maxMessageBytes,
    ...http2ServerOptions(options.http2 ?? DEFAULT_HTTP2_LIMITS),
  });
  enforceHandshakeTimeout(server, (options.http2 ?? DEFAULT_HTTP2_LIMITS).handshakeTimeoutMs);
  const services: string[] = [];
  let healthServer: grpc.Server | undefined;
  const health = new HealthImplementation({ '': 'NOT_SERVING' });
  health.addToServer(server);
  const tracer = trace.getTracer(options.name);

  /**
   * Calls in flight, each counted from its handler's start until its stream closes (the
   * answer written, or the call cancelled): what shutdown waits for. grpc-js emits
   * 'cancelled' on every stream close, answered or not.
   */
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  /** What track and callContext read of a call, whatever its kind. */
  type AnyCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'cancelled' | 'metadata' | 'getDeadline' | 'getPeer' | 'getAuthContext'> & {
    once(event: 'cancelled', listener: () => void): unknown;
    off(event: 'cancelled', listener: () => void): unknown;
  };
  function track(call: AnyCall): void {
    if (call.cancelled) return;
    inFlight++;
    call.once('cancelled', () => {
      if (--inFlight === 0) onIdle?.();
    });
  }

  /**
   * The handler's view of a call, and `finish`, called once the handler has answered:
   * grpc-js reports every call as cancelled when its stream closes, answered or not, so
   * only a cancel before the answer aborts the handler's signal.
   */
  function callContext(call: AnyCall, span: Span): { ctx: CallContext; finish: () => void } {
    track(call);
    const controller = new AbortController();
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    const expire = () => controller.abort(new DOMException('deadline exceeded', 'TimeoutError'));
    // grpc-js cancels the call itself when the deadline passes, usually before our timer
    // fires: a cancel at the deadline (within the timeout header's rounding) is the deadline.
    const onCancel = () => (Date.now() + DEADLINE_ROUNDING_MS >= at ? expire() : controller.abort(new DOMException('call cancelled', 'AbortError')));
    call.once('cancelled', onCancel);
    const timer = Number.isFinite(at) ? atDeadline(at, expire) : undefined;
    const finish = () => {
      call.off('cancelled', onCancel);
      timer?.clear();
    };
    if (timer) controller.signal.addEventListener('abort', () => timer.clear(), { once: true });
    return { ctx: { metadata: call.metadata, signal: controller.signal, deadline, span, peer: call.getPeer(), callers: callerIdentities(call) }, finish };
  }

  function fail(span: Span, method: string, error: unknown): grpc.ServiceError {
    const status = failedCall(span, error);
    if (status.internal) logger.error({ err: error, method }, 'handler failed');
    else logger.debug({ method, code: grpc.status[status.code], details: status.details }, 'request refused');
    return Object.assign(new Error(status.details), { code: status.code, details: status.details, metadata: new grpc.Metadata() });
  }

  /** Refuses a caller whose certificate names none of the roles allowed (mesh TLS only). */
  function admit(serviceName: string, allowed: readonly Role[] | undefined, ctx: CallContext): void {
    if (!allowed || !meshTls) return;
    if (ctx.callers.some((identity) => allowed.includes(identity.role))) return;
    const named = ctx.callers.map((identity) => `${identity.role}/${identity.name}`).join(', ').slice(0, 200) || 'no mesh identity';
    throw new ServiceError(Status.PERMISSION_DENIED, `${serviceName} takes calls from ${allowed.join(', ')} only; the caller's certificate names ${named}`);
  }

  function wrapUnary(serviceName: string, method: string, handler: UnaryHandler<never, unknown>, traced: boolean, allowed?: readonly Role[]): grpc.handleUnaryCall<unknown, unknown> {
    const run = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>, span: Span) => {
      let answered = false;
      const { ctx, finish } = callContext(call, span);
      const answer = (error: grpc.ServiceError | null, value?: unknown) => {
        if (answered) return;
        answered = true;
        finish();
        span.end();
        callback(error, value);
      };
      // Through a promise, so a handler that throws before returning one is mapped like a rejection.
      Promise.resolve().then(() => {
        admit(serviceName, allowed, ctx);
        return handler(call.request as never, ctx);
      }).then(
        (response) => answer(null, response),
        (error: unknown) => answer(fail(span, method, error)),
      );
    };
    if (!traced) return (call, callback) => run(call, callback, UNTRACED);
    return (call, callback) => {
      startServerSpan(tracer, `${serviceName}/${method}`, { 'rpc.system': 'grpc', 'rpc.service': serviceName, 'rpc.method': method }, call.metadata, (span) => run(call, callback, span));
    };
  }

  function wrapBidi(serviceName: string, method: string, handler: BidiHandler<never, unknown>, traced: boolean, allowed?: readonly Role[]): grpc.handleBidiStreamingCall<unknown, unknown> {
    return wrapStream(serviceName, method, (call, ctx) => handler(call as never, ctx), traced, allowed);
  }

  function wrapServerStream(serviceName: string, method: string, handler: ServerStreamHandler<never, unknown>, traced: boolean, allowed?: readonly Role[]): grpc.handleServerStreamingCall<unknown, unknown> {
    return wrapStream(serviceName, method, (call, ctx) => handler(call.request as never, call as never, ctx), traced, allowed);
  }

  /** A streaming call: the handler's promise ends the stream, OK when it resolves, with the mapped status when it rejects. */
  function wrapStream<Call extends grpc.ServerDuplexStream<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>>(
    serviceName: string, method: string, handler: (call: Call, ctx: CallContext) => Promise<void>, traced: boolean, allowed?: readonly Role[],
  ): (call: Call) => void {
    const run = (call: Call, span: Span) => {
      const { ctx, finish } = callContext(call, span);
      Promise.resolve().then(() => {
        admit(serviceName, allowed, ctx);
        return handler(call, ctx);
      }).then(
        () => {
          finish();
          span.end();
          call.end();
        },
        (error: unknown) => {
          finish();
          // grpc-js sends the status of an 'error' event; destroy() would leave the client waiting.
          call.emit('error', fail(span, method, error));
          span.end();
        },
      );
    };
    if (!traced) return (call) => run(call, UNTRACED);
    return (call) => {
      startServerSpan(tracer, `${serviceName}/${method}`, { 'rpc.system': 'grpc', 'rpc.service': serviceName, 'rpc.method': method }, call.metadata, (span) => run(call, span));
    };
  }

  return {
    server,
    health,
    addService(serviceName, definition, handlers, addOptions = {}) {
      const implementation: grpc.UntypedServiceImplementation = {};
      for (const [method, handler] of Object.entries(handlers)) {
        if (!(method in definition)) throw new Error(`${serviceName} has no method ${method}`);
        const traced = !addOptions.untraced?.includes(method);
        const allowed = addOptions.methodCallers?.[method] ?? addOptions.callers;
        implementation[method] = typeof handler === 'function'
          ? wrapUnary(serviceName, method, handler, traced, allowed)
          : 'bidi' in handler
            ? wrapBidi(serviceName, method, handler.bidi, traced, allowed)
            : wrapServerStream(serviceName, method, handler.serverStream, traced, allowed);
      }
      // A stream's message that does not decode reaches serveStream, instead of grpc-js ending the call with INTERNAL.
      const streams = Object.keys(handlers).filter((method) => typeof handlers[method] !== 'function');
      server.addService(undecodableAsMessages(definition, streams), implementation);
      services.push(serviceName);
    },
    async listen(host, port) {
      // Reflection lists what this server serves, known once every service is added.
      addReflection(server, REFLECTED, ['grpc.health.v1.Health', ...services]);
      const bind = (target: grpc.Server, at: number, credentials: grpc.ServerCredentials) =>
        new Promise<number>((resolve, reject) => target.bindAsync(`${host}:${at}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound))));
      const bound = await bind(server, port, options.credentials ?? grpc.ServerCredentials.createInsecure());
      if (options.healthPort !== undefined) {
        // Open to probes, so held to the same per-connection bounds as the service port.
        healthServer = new grpc.Server(http2ServerOptions(options.http2 ?? DEFAULT_HTTP2_LIMITS));
        enforceHandshakeTimeout(healthServer, (options.http2 ?? DEFAULT_HTTP2_LIMITS).handshakeTimeoutMs);
        health.addToServer(healthServer);
        const healthBound = await bind(healthServer, options.healthPort, grpc.ServerCredentials.createInsecure());
        logger.info({ port: healthBound }, 'health probes served in plaintext');
      }
      return bound;
    },
    setServing(serving) {
      const status = serving ? 'SERVING' : 'NOT_SERVING';
      health.setStatus('', status);
      for (const name of services) health.setStatus(name, status);
    },
    shutdown(graceMs) {
      this.setServing(false);
      healthServer?.forceShutdown();
      // tryShutdown stops listening and sends GOAWAY on every connection, so clients take
      // new calls elsewhere; but it completes only once every connection has closed, which
      // a client holding a stream this count does not know (a health Watch) puts off until
      // the grace ends. What shutdown waits for is the calls in flight: once they are
      // answered, connections still open get a moment to close cleanly, then are cut.
      return new Promise((resolve) => {
        let done = false;
        let flushTimer: NodeJS.Timeout | undefined;
        const finish = () => {
          if (done) return;
          done = true;
          clearTimeout(graceTimer);
          clearTimeout(flushTimer);
          onIdle = undefined;
          server.forceShutdown();
          resolve();
        };
        const graceTimer = setTimeout(finish, graceMs);
        const idle = () => (flushTimer = setTimeout(finish, SHUTDOWN_FLUSH_MS));
        server.tryShutdown(finish);
        if (inFlight === 0) idle();
        else onIdle = idle;
      });
    },
  };
}

/** Runs `fn` with `span` active; for child spans in handlers. */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/**
 * The server span of one call, continuing the W3C trace context in `metadata`, active while
 * `run` runs. The router's REST endpoint starts its spans here too, with the HTTP headers as
 * metadata, so a REST call is traced like a gRPC one.
 */
export function startServerSpan<T>(tracer: Tracer, name: string, attributes: Attributes, metadata: grpc.Metadata, run: (span: Span) => T): T {
  return tracer.startActiveSpan(name, { kind: SpanKind.SERVER, attributes }, extractTraceContext(metadata), run);
}

/** The status a failed call answers with (the one status table), recorded on its span; a bug's exception too. */
export function failedCall(span: Span, error: unknown): StatusOf {
  const status = statusOf(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: status.details });
  span.setAttribute('rpc.grpc.status_code', status.code);
  if (status.internal && error instanceof Error) span.recordException(error);
  return status;
}
