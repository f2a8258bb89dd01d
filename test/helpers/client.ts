/** A plain Open Inference Protocol client, built only from test/fixtures/open-inference-client.proto. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO = fileURLToPath(new URL('../fixtures/open-inference-client.proto', import.meta.url));

// snake_case fields and numeric int64s, as a typical client sees them: deliberately not the mesh's own loader options.
const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: typeof grpc.Client } };

export type Json = Record<string, unknown>;

export interface InferenceClient {
  call<T = Json>(method: string, request: Json, options?: { metadata?: grpc.Metadata; timeoutMs?: number }): Promise<T>;
  close(): void;
}

export function inferenceClient(address: string, credentials = grpc.credentials.createInsecure()): InferenceClient {
  const client = new proto.inference.GRPCInferenceService(address, credentials, {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  }) as grpc.Client & Record<string, (req: Json, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void>;
  return {
    call<T>(method: string, request: Json, options: { metadata?: grpc.Metadata; timeoutMs?: number } = {}) {
      return new Promise<T>((resolve, reject) =>
        client[method](request, options.metadata ?? new grpc.Metadata(), { deadline: Date.now() + (options.timeoutMs ?? 20_000) }, (error, response) =>
          error ? reject(error) : resolve(response as T),
        ),
      );
    },
    close: () => client.close(),
  };
}

/** The status code a call failed with (throws if it succeeded). */
export async function codeOf(promise: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
  try {
    await promise;
  } catch (error) {
    const e = error as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error('the call succeeded; an error was expected');
}

/** BYTES elements framed as 4-byte little-endian length + bytes, as the protocol defines. */
export function bytesTensor(elements: Buffer[]): Buffer {
  return Buffer.concat(elements.flatMap((e) => {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(e.length);
    return [length, e];
  }));
}

export function fp32(raw: Buffer): Float32Array {
  const copy = Buffer.from(raw);
  return new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4);
}

export { grpc };
