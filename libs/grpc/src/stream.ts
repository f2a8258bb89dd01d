/**
 * Serves a bidirectional stream of independent requests (Triton's ModelStreamInfer):
 * each item is handled as it arrives, its answer written as soon as it is ready (in
 * completion order, matched by id), and a failing item yields an error message in the
 * stream while the stream goes on. At most `window` items are in progress; beyond that,
 * and while an answer waits for the transport to drain, the stream stops reading, so gRPC
 * flow control pushes back on a client that sends faster than the mesh computes or reads. When the client cancels, every item still in progress
 * is aborted.
 *
 * A message that does not decode costs only its own answer: grpc-js would end the whole
 * call with INTERNAL and leave the items before it unanswered, so servers decode a stream's
 * messages with `undecodableAsMessages` and serveStream answers it as one more item (an
 * error, the stream goes on: gRPC frames each message, so the next one is intact), or, where
 * an answer cannot name the item, ends the stream with INVALID_ARGUMENT after answering the
 * items before it.
 */
import { setMaxListeners } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Logger } from '@infermesh/log';
import type { ModelInferRequest__Output, ModelInferResponse, ModelStreamInferResponse } from '@infermesh/contracts';
import { statusOf, type StatusOf } from './status.js';
import { Status, invalidArgument, type ServiceError } from './errors.js';
import type { CallContext } from './server.js';

export interface StreamOptions<Req, Res> {
  window: number;
  logger: Logger;
  /**
   * Span name of each item: a new trace per item, linked to the stream's span. Without it
   * items get no span of their own (items that carry their own traces, like a router's
   * batches).
   */
  itemSpanName?: string;
  /**
   * Ends the stream gracefully when aborted: no more items are read, the items in progress
   * are answered, then the stream completes (a worker that drains).
   */
  until?: AbortSignal;
  /**
   * Handles one item. `ctx.span` is the item's own span: a new trace per item, linked to
   * the stream's span, so a data set streamed for an hour is not one giant trace.
   */
  handle(request: Req, ctx: CallContext): Promise<Res>;
  /** The message written for a failed item ("CODE: details" and the status it maps to). */
  failure(request: Req, message: string, status: StatusOf): Res;
  /**
   * The message written for a message that does not decode ("INVALID_ARGUMENT: details"), after
   * which the stream goes on. Without it the stream reads no more, answers the items before,
   * and ends with INVALID_ARGUMENT: for streams whose answers must name their item.
   */
  undecodable?(message: string): Res;
}

/** What a stream's handler receives for a message that did not decode as the method's request. */
export class UndecodableMessage {
  constructor(
    readonly type: string,
    /** The decoder's reason (about the bytes, never the bytes themselves). */
    readonly reason: string,
  ) {}
}

/** A decoder's reason is about offsets and wire types; kept short all the same. */
const MAX_REASON = 200;

/**
 * `definition` with the listed streaming methods decoding each message for serveStream: a
 * message that does not decode arrives as an UndecodableMessage instead of ending the call.
 */
export function undecodableAsMessages(definition: grpc.ServiceDefinition, methods: readonly string[]): grpc.ServiceDefinition {
  const served: Record<string, grpc.MethodDefinition<unknown, unknown>> = { ...definition };
  for (const name of methods) {
    const method = definition[name] as grpc.MethodDefinition<unknown, unknown> & { requestType?: { type?: { name?: string } } };
    if (!method?.requestStream) continue;
    const type = method.requestType?.type?.name ?? 'request';
    served[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return new UndecodableMessage(type, String((error as Error)?.message ?? error).slice(0, MAX_REASON));
        }
      },
    };
  }
  return served;
}

export async function serveStream<Req, Res>(call: grpc.ServerDuplexStream<Req, Res>, ctx: CallContext, options: StreamOptions<Req, Res>): Promise<void> {
  const { signal } = ctx;
  // Each item in progress listens on the stream's signal (and removes its listener when done).
  setMaxListeners(options.window * 4 + 16, signal);
  const tracer = trace.getTracer('infermesh-stream');
  const link = { context: ctx.span.spanContext() };
  let inProgress = 0;
  let ended = false;
  let paused = false;
  /** Set once `until` aborts: reading never resumes. */
  let stopped = false;
  let received = 0;
  /** Set when a message did not decode and the stream cannot answer it in place. */
  let refusal: ServiceError | undefined;
  let settle: () => void = () => {};
  const finished = new Promise<void>((resolve) => (settle = resolve));
  const done = () => {
    if (ended && inProgress === 0) settle();
  };
  // A write that the transport cannot take yet stops reading until 'drain', or the end of the
  // call: a cancelled call never drains (grpc-js drops its buffer). Without it, items that fail
  // at once never fill the window, and a client that never reads grows the send buffer unbounded.
  let writable: Promise<void> = Promise.resolve();
  let draining = false;

  const pause = () => {
    if (paused) return;
    paused = true;
    call.pause();
  };

  const resume = () => {
    if (paused && !stopped && !draining && inProgress < options.window) {
      paused = false;
      call.resume();
    }
  };

  const write = (message: Res) => {
    if (signal.aborted || call.destroyed) return;
    if (call.write(message) || draining) return;
    draining = true;
    pause();
    writable = new Promise((resolve) => {
      const done = () => {
        draining = false;
        call.off('drain', done);
        call.off('close', done);
        call.off('error', done);
        signal.removeEventListener('abort', done);
        resolve();
        resume();
      };
      call.once('drain', done);
      call.once('close', done);
      call.once('error', done);
      signal.addEventListener('abort', done, { once: true });
    });
  };

  const handleItem = async (request: Req, itemCtx: CallContext) => {
    try {
      write(await options.handle(request, itemCtx));
    } catch (error) {
      const status = statusOf(error);
      itemCtx.span.setStatus({ code: SpanStatusCode.ERROR, message: status.details });
      if (status.internal) options.logger.error({ err: error }, 'stream item failed');
      write(options.failure(request, `${Status[status.code]}: ${status.details}`, status));
    } finally {
      if (itemCtx.span !== ctx.span) itemCtx.span.end();
      inProgress--;
      resume();
      done();
    }
  };

  call.on('data', (request: Req | UndecodableMessage) => {
    received++;
    if (request instanceof UndecodableMessage) {
      const details = `message ${received} of the stream does not decode as ${request.type}: ${request.reason}`;
      if (options.undecodable) {
        write(options.undecodable(`${Status[Status.INVALID_ARGUMENT]}: ${details}`));
      } else {
        refusal ??= invalidArgument(details);
        stop();
      }
      return;
    }
    inProgress++;
    if (inProgress >= options.window) pause();
    if (!options.itemSpanName) {
      void handleItem(request, ctx);
      return;
    }
    void tracer.startActiveSpan(options.itemSpanName, { kind: SpanKind.SERVER, links: [link] }, ROOT_CONTEXT, (span) => handleItem(request, { ...ctx, span }));
  });
  call.on('end', () => {
    ended = true;
    done();
  });
  call.on('error', () => {
    ended = true;
    done();
  });
  signal.addEventListener('abort', () => {
    ended = true;
    done();
  }, { once: true });
  const stop = () => {
    // Read no more: what the client sends from now on is not taken (it sees the stream end).
    stopped = true;
    pause();
    ended = true;
    done();
  };
  if (options.until?.aborted) stop();
  else options.until?.addEventListener('abort', stop, { once: true });
  await finished;
  // `until` outlives its streams (a worker's drain signal): a listener left on it per stream would pile up.
  options.until?.removeEventListener('abort', stop);
  await writable;
  // grpc-js sends the status after the answers already written.
  if (refusal) throw refusal;
}

/**
 * ModelStreamInfer (Triton's message shape) over `infer`: each answer as
 * `infer_response`, each failure as `error_message` with the request's id and model, so
 * the client can match it.
 */
export function serveInferStream(
  call: grpc.ServerDuplexStream<ModelInferRequest__Output, ModelStreamInferResponse>,
  ctx: CallContext,
  options: { window: number; logger: Logger; infer: (request: ModelInferRequest__Output, ctx: CallContext) => Promise<ModelInferResponse> },
): Promise<void> {
  return serveStream<ModelInferRequest__Output, ModelStreamInferResponse>(call, ctx, {
    window: options.window,
    logger: options.logger,
    itemSpanName: 'inference.GRPCInferenceService/ModelStreamInfer item',
    handle: async (request, itemCtx) => ({ errorMessage: '', inferResponse: await options.infer(request, itemCtx) }),
    failure: (request, message) => ({ errorMessage: message, inferResponse: { id: request.id, modelName: request.modelName, modelVersion: request.modelVersion } }),
    // As Triton answers a request it cannot run: an error in the stream, which goes on.
    undecodable: (message) => ({ errorMessage: message, inferResponse: {} }),
  });
}
