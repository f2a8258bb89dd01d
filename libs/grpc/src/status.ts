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

function isGrpcCallError(error: unknown): error is GrpcCallError {
  return typeof error === 'object' && error !== null && typeof (error as GrpcCallError).code === 'number'
    && typeof (error as GrpcCallError).details === 'string' && 'metadata' in error;
}

/**
 * The one table from errors to gRPC status. Typed errors carry their own code; errors
 * from a downstream gRPC call keep theirs (a worker's INVALID_ARGUMENT reaches the
 * client as such); input errors from the tensor codec are INVALID_ARGUMENT; the rest
 * is a bug.
 */
const TABLE: { test: (error: unknown) => boolean; status: (error: unknown) => Omit<StatusOf, 'internal'> }[] = [
  { test: (e) => e instanceof ServiceError, status: (e) => ({ code: (e as ServiceError).code, details: (e as ServiceError).message }) },
  { test: isGrpcCallError, status: (e) => ({ code: (e as GrpcCallError).code, details: (e as GrpcCallError).details }) },
  { test: (e) => e instanceof Error && (e.name === 'TensorError' || e.name === 'InputError'), status: (e) => ({ code: Status.INVALID_ARGUMENT, details: (e as Error).message }) },
  { test: (e) => e instanceof Error && e.name === 'QueueFullError', status: (e) => ({ code: Status.RESOURCE_EXHAUSTED, details: (e as Error).message }) },
  { test: (e) => e instanceof Error && (e.name === 'AbortError' || e.name === 'TimeoutError'), status: (e) => ({ code: Status.DEADLINE_EXCEEDED, details: (e as Error).message || 'deadline exceeded' }) },
];

export function statusOf(error: unknown): StatusOf {
  for (const row of TABLE) if (row.test(error)) return { ...row.status(error), internal: false };
  return { code: Status.INTERNAL, details: 'internal error', internal: true };
}
