import { status as Status } from '@grpc/grpc-js';

export { Status };

/**
 * An error a handler throws on purpose: it reaches the client with this code and
 * message. Anything else becomes INTERNAL with a generic message (stack in the log).
 */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  constructor(
    readonly code: Status,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export const invalidArgument = (message: string) => new ServiceError(Status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new ServiceError(Status.NOT_FOUND, message);
export const unavailable = (message: string) => new ServiceError(Status.UNAVAILABLE, message);
export const resourceExhausted = (message: string) => new ServiceError(Status.RESOURCE_EXHAUSTED, message);
export const deadlineExceeded = (message: string) => new ServiceError(Status.DEADLINE_EXCEEDED, message);
export const cancelled = (message: string) => new ServiceError(Status.CANCELLED, message);
