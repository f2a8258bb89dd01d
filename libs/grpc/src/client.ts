import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { injectTraceContext } from './trace-metadata.js';

export function clientOptions(maxMessageBytes: number): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc.keepalive_time_ms': 30_000,
    // HTTP/2's default 64 KiB receive window would make a large answer (an image tensor is
    // ~110 KiB) wait for window updates; let it arrive in one go.
    'grpc-node.flow_control_window': 8 * 1024 * 1024,
  };
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

export interface UnaryCallOptions {
  deadline?: grpc.Deadline;
  signal?: AbortSignal;
  /** Span name; defaults to the method name. */
  spanName?: string;
  attributes?: Record<string, string | number>;
}

/**
 * One unary call as a promise, in a CLIENT span whose context travels in the metadata.
 * Aborting `signal` cancels the call.
 */
export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: UnaryCallOptions = {},
): Promise<Res> {
  const tracer = trace.getTracer('infermesh-grpc-client');
  // Generated client methods carry their path ("/inference.GRPCInferenceService/ModelInfer"); OTel names spans after it.
  const name = options.spanName ?? ((method as { path?: string }).path?.slice(1) || method.name || 'grpc.client');
  return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes: options.attributes }, (span) =>
    new Promise<Res>((resolve, reject) => {
      const metadata = injectTraceContext();
      const call = method.call(client, request, metadata, { deadline: options.deadline }, (error, response) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (error) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: error.details });
          span.setAttribute('rpc.grpc.status_code', error.code);
          span.end();
          reject(error);
        } else {
          span.end();
          resolve(response as Res);
        }
      });
      const onAbort = () => call.cancel();
      if (options.signal?.aborted) call.cancel();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    }),
  );
}
