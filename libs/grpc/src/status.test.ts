/** The one table from errors to gRPC status codes. */
import { describe, expect, it } from 'vitest';
import { Metadata } from '@grpc/grpc-js';
import { TensorError } from '@infermesh/tensor';
import {
  ServiceError, Status, cancelled, deadlineExceeded, invalidArgument, notFound, resourceExhausted, statusOf, unavailable, MAX_DETAILS_BYTES,
} from './index.js';

function named(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

describe('statusOf', () => {
  it('keeps the code and message of a ServiceError, not as a bug', () => {
    expect(statusOf(new ServiceError(Status.PERMISSION_DENIED, 'no'))).toEqual({ code: Status.PERMISSION_DENIED, details: 'no', internal: false });
  });

  it.each([
    [invalidArgument, Status.INVALID_ARGUMENT],
    [notFound, Status.NOT_FOUND],
    [unavailable, Status.UNAVAILABLE],
    [resourceExhausted, Status.RESOURCE_EXHAUSTED],
    [deadlineExceeded, Status.DEADLINE_EXCEEDED],
    [cancelled, Status.CANCELLED],
  ] as const)('maps the %o helper to its code', (make, code) => {
    expect(statusOf(make('why'))).toEqual({ code, details: 'why', internal: false });
  });

  it('keeps the code and details of an error from a downstream gRPC call', () => {
    const error = Object.assign(new Error('14 UNAVAILABLE: worker gone'), { code: Status.UNAVAILABLE, details: 'worker gone', metadata: new Metadata() });
    expect(statusOf(error)).toEqual({ code: Status.UNAVAILABLE, details: 'worker gone', internal: false });
  });

  it('maps a TensorError to INVALID_ARGUMENT with its message', () => {
    expect(statusOf(new TensorError("input 'x': bad"))).toEqual({ code: Status.INVALID_ARGUMENT, details: "input 'x': bad", internal: false });
  });

  it('maps an error that carries its gRPC code (grpcCode) to that code', () => {
    class QueueFull extends Error {
      readonly grpcCode = Status.RESOURCE_EXHAUSTED;
    }
    expect(statusOf(new QueueFull('queue full'))).toEqual({ code: Status.RESOURCE_EXHAUSTED, details: 'queue full', internal: false });
  });

  it('does not map by class name: an error merely named like a known one is a bug', () => {
    expect(statusOf(named('QueueFullError', 'queue full'))).toMatchObject({ code: Status.INTERNAL, internal: true });
    expect(statusOf(named('TensorError', 'bad'))).toMatchObject({ code: Status.INTERNAL, internal: true });
  });

  it('treats a grpcCode that is not a status code as a bug', () => {
    expect(statusOf(Object.assign(new Error('odd'), { grpcCode: 99 }))).toMatchObject({ code: Status.INTERNAL, internal: true });
  });

  it('maps a TimeoutError (the deadline passed) to DEADLINE_EXCEEDED', () => {
    expect(statusOf(new DOMException('deadline exceeded', 'TimeoutError'))).toMatchObject({ code: Status.DEADLINE_EXCEEDED, details: 'deadline exceeded' });
  });

  it('maps an AbortError (the client cancelled) to CANCELLED, not DEADLINE_EXCEEDED', () => {
    expect(statusOf(new DOMException('call cancelled', 'AbortError'))).toMatchObject({ code: Status.CANCELLED, details: 'call cancelled' });
    expect(statusOf(named('AbortError', ''))).toMatchObject({ code: Status.CANCELLED, details: 'cancelled' });
  });

  it('treats anything else as a bug: INTERNAL with a generic message', () => {
    expect(statusOf(new TypeError('x is undefined'))).toEqual({ code: Status.INTERNAL, details: 'internal error', internal: true });
    expect(statusOf('a string')).toEqual({ code: Status.INTERNAL, details: 'internal error', internal: true });
    expect(statusOf(undefined)).toEqual({ code: Status.INTERNAL, details: 'internal error', internal: true });
  });

  it('does not mistake an object with a numeric code but no gRPC metadata for a gRPC error', () => {
    const error = Object.assign(new Error('ECONNREFUSED'), { code: 111, details: 'refused' });
    expect(statusOf(error)).toEqual({ code: Status.INTERNAL, details: 'internal error', internal: true });
  });
});

describe('the details sent to a client', () => {
  it('are kept whole up to MAX_DETAILS_BYTES', () => {
    const details = `input 'x': ${'a'.repeat(MAX_DETAILS_BYTES - 11)}`;
    expect(statusOf(new TensorError(details)).details).toBe(details);
  });

  it('are cut to MAX_DETAILS_BYTES of UTF-8, at a character boundary, when a message quotes a huge client input', () => {
    const shape = Array.from({ length: 100_000 }, () => 1);
    const ascii = statusOf(new TensorError(`input 'features': shape [${shape.join(', ')}] does not fit`)).details;
    expect(Buffer.byteLength(ascii)).toBeLessThanOrEqual(MAX_DETAILS_BYTES);
    expect(ascii).toMatch(/^input 'features': shape \[1, 1, .*…$/);
    const wide = statusOf(new ServiceError(Status.NOT_FOUND, `model '${'模'.repeat(5000)}' is not served`)).details;
    expect(Buffer.byteLength(wide)).toBeLessThanOrEqual(MAX_DETAILS_BYTES);
    expect(wide.endsWith('模…')).toBe(true);
    const emoji = statusOf(new ServiceError(Status.NOT_FOUND, '😀'.repeat(1000))).details;
    expect(emoji).toBe(`${'😀'.repeat((MAX_DETAILS_BYTES - 3) >> 2)}…`);
  });
});
