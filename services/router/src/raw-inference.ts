/**
 * The router's GRPCInferenceService definition: the generated one, except that ModelInfer
 * and ModelStreamInfer keep requests and answers as bytes. A request is read only as far as
 * routing needs (libs/contracts' wire readers) and forwarded as the client sent it; the
 * worker's answer goes back to the client as the worker encoded it.
 */
import type * as grpc from '@grpc/grpc-js';
import { inferenceService, readInferRequestHeader, RequestLimitError, type InferRequestHeader, type ModelStreamInferResponse } from '@infermesh/contracts';

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

function readRequest(bytes: Buffer): RawInferRequest {
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

/** The service definition the router serves, with raw codecs for the two inference methods. */
export function rawInferenceService(): grpc.ServiceDefinition {
  const generated = inferenceService();
  const raw = (name: string): Method => ({
    ...(generated[name] as Method),
    requestDeserialize: readRequest,
    responseSerialize: passThrough as (value: unknown) => Buffer,
  });
  return { ...generated, ModelInfer: raw('ModelInfer'), ModelStreamInfer: raw('ModelStreamInfer') };
}

/** Encodes the ModelStreamInferResponse of a failed stream item (small: no tensors). */
export function encodeStreamError(message: ModelStreamInferResponse): Buffer {
  return (inferenceService().ModelStreamInfer as Method).responseSerialize(message);
}
