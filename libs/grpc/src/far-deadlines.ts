/**
 * grpc-js (1.14.7, the newest) reads an incoming call's `grpc-timeout` header as
 * `(value * unitMs) | 0`: a timeout over 2^31-1 ms (about 24.8 days) wraps to a negative
 * number, and the server ends the call at once with DEADLINE_EXCEEDED. grpc-js's own client
 * treats a deadline that far away as none (deadline.ts, getRelativeTimeout → Infinity);
 * this makes its server do the same, so a client that sets a deadline a month away is
 * served (the router still bounds every request with ROUTER_REQUEST_TIMEOUT_MS).
 *
 * It wraps the one internal method that parses the header. If a grpc-js release renames
 * it, installing fails loudly here, and libs/grpc's tests of far deadlines fail too.
 */
import { createRequire } from 'node:module';
import { MAX_TIMER_MS } from './deadline.js';

const require = createRequire(import.meta.url);

/** grpc-timeout: up to 8 digits and a unit (gRPC over HTTP/2, "Timeout"). */
const TIMEOUT = /^(\d{1,8})\s*([HMSmun])$/;
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
const INSTALLED = Symbol.for('infermesh.grpc.far-deadlines');

interface InterceptingCallPrototype {
  handleTimeoutHeader(header: unknown): void;
  [INSTALLED]?: true;
}

/** The timeout a grpc-timeout header asks for, in ms (undefined when it is not valid). */
export function timeoutMs(header: string): number | undefined {
  const match = TIMEOUT.exec(header.trim());
  return match ? Number(match[1]) * UNIT_MS[match[2]] : undefined;
}

export function acceptFarDeadlines(): void {
  const { BaseServerInterceptingCall } = require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: InterceptingCallPrototype } };
  const prototype = BaseServerInterceptingCall?.prototype;
  if (!prototype || typeof prototype.handleTimeoutHeader !== 'function') {
    throw new Error('@grpc/grpc-js no longer has BaseServerInterceptingCall.handleTimeoutHeader: review libs/grpc/src/far-deadlines.ts against this grpc-js version');
  }
  if (prototype[INSTALLED]) return;
  const original = prototype.handleTimeoutHeader;
  prototype.handleTimeoutHeader = function handleTimeoutHeader(this: InterceptingCallPrototype, header: unknown) {
    const ms = timeoutMs(String(header));
    // Beyond what a timer can hold: no deadline, as grpc-js's client does.
    if (ms !== undefined && ms > MAX_TIMER_MS) return;
    original.call(this, header);
  };
  prototype[INSTALLED] = true;
}
