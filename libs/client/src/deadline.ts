/** Deadlines: a call's timeoutMs, checked once for both protocols. */
import { invalidArgument } from './errors.js';

/** setTimeout holds at most 2^31-1 ms; a local timer for a longer deadline is the same as none. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The call's deadline in ms (Infinity: none); `given` overrides the client's default. */
export function timeoutOf(given: number | undefined, fallback: number): number {
  const ms = given ?? fallback;
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms <= 0) throw invalidArgument(`timeoutMs must be a number of milliseconds > 0 (Infinity for none), not ${String(ms)}`);
  return ms;
}

/** Calls `expire` after `ms` unless cleared; no timer when `ms` is beyond what a timer holds. */
export function startTimer(ms: number, expire: () => void): NodeJS.Timeout | undefined {
  return Number.isFinite(ms) && ms <= MAX_TIMER_MS ? setTimeout(expire, ms) : undefined;
}
