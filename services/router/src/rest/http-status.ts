/**
 * gRPC status → HTTP status, for the REST endpoint's errors (docs/architecture.md "REST").
 * The answer also names the gRPC status in a header, since one HTTP status covers several.
 */
import { Status, ServiceError } from '@infermesh/grpc';

/** The header naming the gRPC status of an error answer (INVALID_ARGUMENT, NOT_FOUND, ...). */
export const GRPC_STATUS_HEADER = 'infermesh-grpc-status';

const HTTP_OF: Partial<Record<Status, number>> = {
  [Status.OK]: 200,
  [Status.INVALID_ARGUMENT]: 400,
  [Status.OUT_OF_RANGE]: 400,
  [Status.FAILED_PRECONDITION]: 400,
  [Status.NOT_FOUND]: 404,
  [Status.ALREADY_EXISTS]: 409,
  [Status.PERMISSION_DENIED]: 403,
  [Status.UNAUTHENTICATED]: 401,
  [Status.RESOURCE_EXHAUSTED]: 429,
  [Status.UNAVAILABLE]: 503,
  [Status.DEADLINE_EXCEEDED]: 504,
  // nginx's "client closed request": nobody reads it, but the log and the span say what happened.
  [Status.CANCELLED]: 499,
  [Status.UNIMPLEMENTED]: 501,
};

/** The HTTP status of a gRPC status code; 500 for the rest (INTERNAL, UNKNOWN, DATA_LOSS, ABORTED). */
export function httpStatusOf(code: Status): number {
  return HTTP_OF[code] ?? 500;
}

/** The name of a gRPC status code, as the header carries it. */
export function statusName(code: Status): string {
  return Status[code] ?? 'UNKNOWN';
}

/**
 * A refusal only HTTP has (a body over the size limit: 413, a method the route does not take:
 * 405), with the gRPC status a client maps it back to. Everything else is a ServiceError,
 * whose HTTP status comes from the table above.
 */
export class RestError extends ServiceError {
  constructor(
    code: Status,
    message: string,
    readonly httpStatus: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}

export const payloadTooLarge = (message: string) => new RestError(Status.RESOURCE_EXHAUSTED, message, 413, { connection: 'close' });
