/**
 * One error class for every failure, with the gRPC status name as its code whichever protocol
 * was spoken, so callers branch on `error.code` alone. The tables mapping gRPC codes and HTTP
 * statuses to names live here and nowhere else.
 */

export type StatusName =
  | 'OK' | 'CANCELLED' | 'UNKNOWN' | 'INVALID_ARGUMENT' | 'DEADLINE_EXCEEDED' | 'NOT_FOUND'
  | 'ALREADY_EXISTS' | 'PERMISSION_DENIED' | 'RESOURCE_EXHAUSTED' | 'FAILED_PRECONDITION'
  | 'ABORTED' | 'OUT_OF_RANGE' | 'UNIMPLEMENTED' | 'INTERNAL' | 'UNAVAILABLE' | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

/** gRPC status codes in numeric order (code n is STATUS_NAMES[n]). */
export const STATUS_NAMES: readonly StatusName[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

export interface InferenceErrorOptions {
  httpStatus?: number;
  grpcCode?: number;
  cause?: unknown;
}

export class InferenceError extends Error {
  override readonly name = 'InferenceError';
  readonly code: StatusName;
  /** The HTTP status of a REST answer. */
  readonly httpStatus?: number;
  /** The numeric gRPC status (set for gRPC answers and local errors alike). */
  readonly grpcCode?: number;

  constructor(code: StatusName, message: string, options: InferenceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.grpcCode = options.grpcCode ?? STATUS_NAMES.indexOf(code);
    if (options.httpStatus !== undefined) this.httpStatus = options.httpStatus;
  }
}

export function statusName(grpcCode: number): StatusName {
  return STATUS_NAMES[grpcCode] ?? 'UNKNOWN';
}

export function isStatusName(value: string): value is StatusName {
  return (STATUS_NAMES as readonly string[]).includes(value);
}

/**
 * The error of a ModelStreamInfer item. The protocol carries a message only; a server that
 * starts it with a status name ("INVALID_ARGUMENT: ...", as infermesh does) gives its code,
 * any other message is UNKNOWN.
 */
export function streamItemError(message: string): InferenceError {
  const match = /^([A-Z_]{2,19}): ([\s\S]*)$/.exec(message);
  return match && isStatusName(match[1]) && match[1] !== 'OK' ? new InferenceError(match[1], match[2]) : new InferenceError('UNKNOWN', message);
}

/** The status an HTTP answer stands for when the server did not name one (KServe v2 / Triton REST). */
export function statusOfHttp(httpStatus: number): StatusName {
  switch (httpStatus) {
    case 400: return 'INVALID_ARGUMENT';
    case 401: return 'UNAUTHENTICATED';
    case 403: return 'PERMISSION_DENIED';
    case 404: return 'NOT_FOUND';
    case 408: return 'DEADLINE_EXCEEDED';
    case 409: return 'ALREADY_EXISTS';
    case 413: return 'RESOURCE_EXHAUSTED';
    case 429: return 'RESOURCE_EXHAUSTED';
    case 499: return 'CANCELLED';
    case 501: return 'UNIMPLEMENTED';
    case 502: return 'UNAVAILABLE';
    case 503: return 'UNAVAILABLE';
    case 504: return 'DEADLINE_EXCEEDED';
    default: return httpStatus >= 500 ? 'INTERNAL' : 'UNKNOWN';
  }
}

export function invalidArgument(message: string): InferenceError {
  return new InferenceError('INVALID_ARGUMENT', message);
}

/** An answer the client cannot read: the server broke the protocol (or is not an inference server). */
export function badAnswer(message: string, cause?: unknown): InferenceError {
  return new InferenceError('INTERNAL', `the server's answer is not valid: ${message}`, { cause });
}

/** The error for a call the caller's signal cancelled. */
export function cancelled(signal: AbortSignal | undefined, what: string): InferenceError {
  const reason = signal?.reason;
  const why = reason instanceof Error ? `: ${reason.message}` : typeof reason === 'string' ? `: ${reason}` : '';
  return new InferenceError('CANCELLED', `${what} was cancelled (the caller's signal was aborted${why})`, { cause: reason });
}

export function deadlineExceeded(timeoutMs: number, what: string): InferenceError {
  return new InferenceError('DEADLINE_EXCEEDED', `${what} did not finish within its deadline of ${timeoutMs} ms`);
}

/** Short, printable form of a name from the caller or a server, bounded so no message grows huge. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}
