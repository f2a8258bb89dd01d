import { status as Status } from '@grpc/grpc-js';
import { ServiceError } from './errors.js';

export interface StatusOf {
  code: Status;
  details: string;
  /** True when the error is a bug: log it with its stack. */
  internal: boolean;
}

interface GrpcCallError {
  code: number;
  details: string;
}

/**
 * An error that says which gRPC status it means. Libraries that must not depend on gRPC
 * (tensor decoding, batching, the wire readers) put the status code on their error classes
 * (`grpcCode`), so this table never matches on class names across packages.
 */
export interface CodedError extends Error {
  readonly grpcCode: number;
}

function isGrpcCallError(error: unknown): error is GrpcCallError {
  return typeof error === 'object' && error !== null && typeof (error as GrpcCallError).code === 'number'
    && typeof (error as GrpcCallError).details === 'string' && 'metadata' in error;
}

function isCoded(error: unknown): error is CodedError {
  return error instanceof Error && Number.isInteger((error as Partial<CodedError>).grpcCode) && Status[(error as CodedError).grpcCode] !== undefined;
}

/** What an AbortSignal's reason is when a call ends early (the server's call context sets these). */
function isAbort(error: unknown, name: 'AbortError' | 'TimeoutError'): error is Error {
  return error instanceof Error && error.name === name;
}

/**
 * The one table from errors to gRPC status. Typed errors carry their own code; errors
 * from a downstream gRPC call keep theirs (a worker's INVALID_ARGUMENT reaches the
 * client as such); a call the client cancelled is CANCELLED and one past its deadline
 * DEADLINE_EXCEEDED; the rest is a bug.
 */
const TABLE: { test: (error: unknown) => boolean; status: (error: unknown) => Omit<StatusOf, 'internal'> }[] = [
  { test: (e) => e instanceof ServiceError, status: (e) => ({ code: (e as ServiceError).code, details: (e as ServiceError).message }) },
  { test: isGrpcCallError, status: (e) => ({ code: (e as GrpcCallError).code, details: (e as GrpcCallError).details }) },
  { test: isCoded, status: (e) => ({ code: (e as CodedError).grpcCode, details: (e as CodedError).message }) },
  { test: (e) => isAbort(e, 'TimeoutError'), status: (e) => ({ code: Status.DEADLINE_EXCEEDED, details: (e as Error).message || 'deadline exceeded' }) },
  { test: (e) => isAbort(e, 'AbortError'), status: (e) => ({ code: Status.CANCELLED, details: (e as Error).message || 'cancelled' }) },
];

export function statusOf(error: unknown): StatusOf {
  for (const row of TABLE) {
    if (!row.test(error)) continue;
    const status = row.status(error);
    return { code: status.code, details: boundedDetails(status.details), internal: false };
  }
  return { code: Status.INTERNAL, details: 'internal error', internal: true };
}

/**
 * The most UTF-8 bytes of a status message sent to a client. Messages quote what the client
 * sent (names, shapes); the message travels percent-encoded in the grpc-message trailer, and
 * a trailer over the client's header limit (8 KB in grpc-js) does not fail the call, it
 * destroys the client's connection. 1 KiB stays under it however the text encodes.
 */
export const MAX_DETAILS_BYTES = 1024;
const encoder = new TextEncoder();

/** `details` cut to at most `maxBytes` of UTF-8 (MAX_DETAILS_BYTES by default), at a character boundary, marked with '…'. */
export function boundedDetails(details: string, maxBytes = MAX_DETAILS_BYTES): string {
  // A UTF-16 unit is 1 to 3 bytes: only lengths between a third of the limit and the limit need counting.
  if (details.length * 3 <= maxBytes) return details;
  if (details.length <= maxBytes && encoder.encode(details).length <= maxBytes) return details;
  // encodeInto stops at a character boundary; '…' is 3 bytes.
  const { read } = encoder.encodeInto(details, new Uint8Array(Math.max(0, maxBytes - 3)));
  return `${details.slice(0, read)}…`;
}
