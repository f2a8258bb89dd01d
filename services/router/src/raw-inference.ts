/**
 * The router's GRPCInferenceService definition: the generated one, except that ModelInfer
 * and ModelStreamInfer keep requests and answers as bytes. A request is read only as far as
 * routing needs (libs/contracts' wire readers) and forwarded as the client sent it; the
 * worker's answer goes back to the client as the worker encoded it.
 */
import type * as grpc from '@grpc/grpc-js';
import { inferenceService, readInferRequestHeader, RequestLimitError, REQUEST_LIMITS, WireFormatError, type InferRequestHeader, type ModelStreamInferResponse } from '@infermesh/contracts';

/** A client's ModelInferRequest: its bytes, and its routing fields (or why they could not be read). */
export interface RawInferRequest {
  bytes: Buffer;
  header?: InferRequestHeader;
  /**
   * Set when the bytes are not a ModelInferRequest, or one over the request limits (names,
   * ids, counts: libs/contracts REQUEST_LIMITS): the whole message the handler refuses it
   * with, as INVALID_ARGUMENT, before any lookup.
   */
  malformed?: string;
}

/** A request's routing fields read from its bytes; what is wrong with them in `malformed`. The REST endpoint reads its translated requests here too. */
export function readRequest(bytes: Buffer): RawInferRequest {
  try {
    return { bytes, header: readInferRequestHeader(bytes) };
  } catch (error) {
    // Never throw here: grpc-js would answer INTERNAL without saying what was wrong.
    const reason = (error as Error).message;
    return { bytes, malformed: error instanceof RequestLimitError ? reason : `the request is not a ModelInferRequest: ${reason}` };
  }
}

const passThrough = (bytes: Buffer) => bytes;

type Method = grpc.MethodDefinition<unknown, unknown>;

/**
 * The request a handler gets for bytes it must refuse: reading any of its fields throws
 * `error`, which the handler wrapper maps to its status (INVALID_ARGUMENT). A deserializer
 * cannot refuse by itself: grpc-js answers any error it throws with INTERNAL.
 */
function refusedRequest(error: Error): object {
  return new Proxy({}, { get: () => { throw error; } });
}

/** The name and version fields of the other methods' requests, with their limits (as in ModelInferRequest). */
const NAMED_FIELDS: readonly [field: string, wire: string, most: number][] = [
  ['name', 'name', REQUEST_LIMITS.nameBytes],
  ['version', 'version', REQUEST_LIMITS.versionBytes],
  ['repositoryName', 'repository_name', REQUEST_LIMITS.nameBytes],
];

/**
 * A generated method whose request is refused, before the handler looks anything up, when
 * its bytes are not the message or a name or version in it is over the request limits.
 */
function guarded(method: Method): Method {
  const decode = method.requestDeserialize;
  return {
    ...method,
    requestDeserialize: (bytes: Buffer) => {
      let request: Record<string, unknown>;
      try {
        request = decode(bytes) as Record<string, unknown>;
      } catch (error) {
        return refusedRequest(new WireFormatError(`the request is not a ${method.path.split('/').pop()} request: ${(error as Error).message.slice(0, 200)}`));
      }
      for (const [field, wire, most] of NAMED_FIELDS) {
        const value = request[field];
        if (typeof value === 'string' && Buffer.byteLength(value) > most) return refusedRequest(new RequestLimitError(`${wire} is ${Buffer.byteLength(value)} bytes, over the limit of ${most}`));
      }
      return request;
    },
  };
}

/**
 * The service definition the router serves: raw codecs for the two inference methods, and
 * the generated ones, guarded, for the rest.
 */
export function rawInferenceService(): grpc.ServiceDefinition {
  const generated = inferenceService();
  const raw = (name: string): Method => ({
    ...(generated[name] as Method),
    requestDeserialize: readRequest,
    responseSerialize: passThrough as (value: unknown) => Buffer,
  });
  const service = Object.fromEntries(Object.entries(generated).map(([name, method]) => [name, guarded(method as Method)]));
  return { ...service, ModelInfer: raw('ModelInfer'), ModelStreamInfer: raw('ModelStreamInfer') };
}

/** Encodes the ModelStreamInferResponse of a failed stream item (small: no tensors). */
export function encodeStreamError(message: ModelStreamInferResponse): Buffer {
  return (inferenceService().ModelStreamInfer as Method).responseSerialize(message);
}
