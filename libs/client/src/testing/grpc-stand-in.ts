/**
 * A small Open Inference Protocol gRPC server for the client's tests, built from the public
 * proto the package ships (its own proto-loader options, not the client's code). Models:
 *   echo          answers every input as an output of the same name, raw bytes as they came
 *   echo-contents the same, answered as typed `contents` (as some servers do)
 *   add-one       FP32 `x` -> FP32 `y` = x + 1
 *   fail          always INVALID_ARGUMENT (on a stream: error_message with the request's id)
 *   slow          never answers; counts the calls the client cancelled
 *   held          answers only after release() (streams: back-pressure)
 *   broken        answers 4 bytes for an FP32 output of shape [2]
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const MODELS = ['echo', 'echo-contents', 'add-one', 'fail', 'slow', 'held', 'broken'];

export interface GrpcStandIn {
  address: string;
  /** Calls of the slow model received. */
  slowCalls: number;
  /** Server-side cancellations seen (unary calls and streams). */
  cancelled: number;
  /** authorization metadata of the last call. */
  authorization?: string;
  /** Stream requests received, and the most that were ever unanswered at once. */
  streamReceived: number;
  maxUnanswered: number;
  /** The ids the server saw on stream requests, in order. */
  streamIds: string[];
  /** Answers every held request and, from now on, answers held ones at once. */
  release(): void;
  close(): Promise<void>;
}

const definition = protoLoader.loadSync('inference/grpc_service.proto', { includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } };

function fail(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/** Raw little-endian bytes as the typed contents field of their datatype. */
function contentsOf(datatype: string, raw: Buffer): Json {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const read = (size: number, get: (offset: number) => unknown) => Array.from({ length: raw.length / size }, (_, i) => get(i * size));
  switch (datatype) {
    case 'BOOL': return { bool_contents: read(1, (o) => view.getUint8(o) !== 0) };
    case 'INT8': return { int_contents: read(1, (o) => view.getInt8(o)) };
    case 'INT16': return { int_contents: read(2, (o) => view.getInt16(o, true)) };
    case 'INT32': return { int_contents: read(4, (o) => view.getInt32(o, true)) };
    case 'INT64': return { int64_contents: read(8, (o) => view.getBigInt64(o, true).toString()) };
    case 'UINT8': return { uint_contents: read(1, (o) => view.getUint8(o)) };
    case 'UINT16': return { uint_contents: read(2, (o) => view.getUint16(o, true)) };
    case 'UINT32': return { uint_contents: read(4, (o) => view.getUint32(o, true)) };
    case 'UINT64': return { uint64_contents: read(8, (o) => view.getBigUint64(o, true).toString()) };
    case 'FP32': return { fp32_contents: read(4, (o) => view.getFloat32(o, true)) };
    case 'FP64': return { fp64_contents: read(8, (o) => view.getFloat64(o, true)) };
    case 'BYTES': {
      const elements: Buffer[] = [];
      for (let o = 0; o < raw.length;) {
        const n = raw.readUInt32LE(o);
        elements.push(raw.subarray(o + 4, o + 4 + n));
        o += 4 + n;
      }
      return { bytes_contents: elements };
    }
    default: throw fail(grpc.status.INVALID_ARGUMENT, `no typed contents for ${datatype}`);
  }
}

/** `tls`: serve TLS that requires a client certificate signed by `ca`. */
export async function startGrpcStandIn(options: { tls?: { ca: Buffer; cert: Buffer; key: Buffer } } = {}): Promise<GrpcStandIn> {
  const server = new grpc.Server();
  const held: (() => void)[] = [];
  let released = false;
  const state: GrpcStandIn = {
    address: '',
    cancelled: 0,
    streamReceived: 0,
    maxUnanswered: 0,
    streamIds: [],
    release() {
      released = true;
      for (const answer of held.splice(0)) answer();
    },
    slowCalls: 0,
    async close() {
      server.forceShutdown();
    },
  };

  /** The answer to one request, or a thrown ServiceError; `later` takes the held ones. */
  function infer(request: Json, later: (answer: () => void) => void, reply: (error: grpc.ServiceError | null, response?: Json) => void): void {
    const base = { model_name: request.model_name, model_version: '1', id: request.id, parameters: { served_by: { string_param: 'stand-in' } } };
    switch (request.model_name) {
      case 'echo':
        reply(null, { ...base, outputs: request.inputs.map((i: Json) => ({ name: i.name, datatype: i.datatype, shape: i.shape })), raw_output_contents: request.raw_input_contents });
        return;
      case 'echo-contents':
        reply(null, {
          ...base,
          outputs: request.inputs.map((i: Json, n: number) => ({ name: i.name, datatype: i.datatype, shape: i.shape, contents: contentsOf(i.datatype, request.raw_input_contents[n]) })),
        });
        return;
      case 'add-one': {
        const raw: Buffer = Buffer.from(request.raw_input_contents[0]);
        const x = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
        reply(null, { ...base, outputs: [{ name: 'y', datatype: 'FP32', shape: request.inputs[0].shape }], raw_output_contents: [Buffer.from(x.map((v) => v + 1).buffer)] });
        return;
      }
      case 'broken':
        reply(null, { ...base, outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }], raw_output_contents: [Buffer.alloc(4)] });
        return;
      case 'fail':
        reply(fail(grpc.status.INVALID_ARGUMENT, `model 'fail' refuses request ${JSON.stringify(request.id)}`));
        return;
      case 'slow':
        state.slowCalls++;
        return;
      case 'held': {
        const answer = () => reply(null, { ...base, outputs: [], raw_output_contents: [] });
        if (released) answer();
        else later(answer);
        return;
      }
      default:
        reply(fail(grpc.status.NOT_FOUND, `model '${request.model_name}' is not served`));
    }
  }

  const unary = (answer: (request: Json) => Json) => (call: grpc.ServerUnaryCall<Json, Json>, callback: grpc.sendUnaryData<Json>) => {
    state.authorization = call.metadata.get('authorization')[0] as string | undefined;
    try {
      callback(null, answer(call.request));
    } catch (error) {
      callback(error as grpc.ServiceError);
    }
  };
  const known = (name: string) => {
    if (!MODELS.includes(name)) throw fail(grpc.status.NOT_FOUND, `model '${name}' is not served`);
  };

  server.addService(proto.inference.GRPCInferenceService.service, {
    ServerLive: unary(() => ({ live: true })),
    ServerReady: unary(() => ({ ready: true })),
    ModelReady: unary((r) => ({ ready: MODELS.includes(r.name) })),
    ServerMetadata: unary(() => ({ name: 'stand-in', version: '0.0.1', extensions: ['model_repository', 'statistics'] })),
    ModelMetadata: unary((r) => {
      known(r.name);
      return { name: r.name, versions: ['1'], platform: 'stand-in', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }] };
    }),
    ModelStatistics: unary((r) => {
      if (r.name) known(r.name);
      const d = (count: string, ns: string) => ({ count, ns });
      return {
        model_stats: [{
          name: r.name || 'echo', version: '1', last_inference: '1700000000000', inference_count: '12', execution_count: '3',
          inference_stats: { success: d('12', '9007199254740993'), fail: d('1', '500'), queue: d('12', '1200'), compute_input: d('3', '30'), compute_infer: d('3', '3000'), compute_output: d('3', '300') },
          batch_stats: [{ batch_size: '4', compute_input: d('3', '30'), compute_infer: d('3', '3000'), compute_output: d('3', '300') }],
        }],
      };
    }),
    RepositoryIndex: unary(() => ({ models: MODELS.map((name) => ({ name, version: '1', state: 'READY', reason: '' })) })),
    RepositoryModelLoad: unary((r) => {
      known(r.model_name);
      return {};
    }),
    RepositoryModelUnload: unary((r) => {
      known(r.model_name);
      return {};
    }),
    ModelInfer: (call: grpc.ServerUnaryCall<Json, Json>, callback: grpc.sendUnaryData<Json>) => {
      state.authorization = call.metadata.get('authorization')[0] as string | undefined;
      call.on('cancelled', () => state.cancelled++);
      infer(call.request, (answer) => held.push(answer), (error, response) => callback(error, response));
    },
    ModelStreamInfer: (call: grpc.ServerDuplexStream<Json, Json>) => {
      state.authorization = call.metadata.get('authorization')[0] as string | undefined;
      let unanswered = 0;
      let ended = false;
      let cancelled = false;
      call.on('cancelled', () => {
        cancelled = true;
        state.cancelled++;
      });
      const maybeEnd = () => {
        if (ended && unanswered === 0 && !cancelled) call.end();
      };
      call.on('data', (request: Json) => {
        state.streamReceived++;
        state.streamIds.push(request.id);
        unanswered++;
        state.maxUnanswered = Math.max(state.maxUnanswered, unanswered);
        // Answers leave in a shuffled order: the client must match them by id.
        const delay = Math.floor(Math.random() * 3);
        infer(request, (answer) => held.push(answer), (error, response) => {
          setTimeout(() => {
            unanswered--;
            if (cancelled) return;
            if (error) call.write({ error_message: error.details, infer_response: { id: request.id, model_name: request.model_name } });
            else call.write({ infer_response: response });
            maybeEnd();
          }, delay);
        });
      });
      call.on('end', () => {
        ended = true;
        maybeEnd();
      });
    },
    ModelConfig: unary(() => {
      throw fail(grpc.status.UNIMPLEMENTED, 'no model configuration here');
    }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', options.tls ? grpc.ServerCredentials.createSsl(options.tls.ca, [{ cert_chain: options.tls.cert, private_key: options.tls.key }], true) : grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  state.address = `127.0.0.1:${port}`;
  return state;
}
