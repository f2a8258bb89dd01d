/**
 * The windowed stream both protocols share: requests are pulled from the caller's iterable
 * only while fewer than `window` are outstanding (sent and not yet handed to the caller's
 * loop), answers are matched to requests by id and yielded in completion order, and leaving
 * the loop early, aborting the signal or passing the deadline cancels what is in flight.
 * A transport (one gRPC ModelStreamInfer call, or REST infer calls) only sends and reports.
 */
import { randomBytes } from 'node:crypto';
import { startTimer, timeoutOf } from './deadline.js';
import { cancelled, deadlineExceeded, InferenceError, invalidArgument, quote, badAnswer } from './errors.js';
import type { InferRequest, InferResult, StreamOptions, StreamResult } from './types.js';

export const DEFAULT_WINDOW = 16;
export const MAX_WINDOW = 10_000;

export type Outcome = { ok: true; result: InferResult } | { ok: false; error: InferenceError };

/** What a transport tells the stream. */
export interface StreamSink {
  /** The answer to request `id`. An id not in flight is ignored, unless it is an error that only one request can own. */
  answer(id: string, outcome: Outcome): void;
  /** The whole stream failed (connection lost, deadline, the server's error status). */
  fail(error: InferenceError): void;
  /** The server closed the stream. */
  finished(): void;
}

export interface StreamTransport {
  /** Sends one request; throws (InferenceError) for a request that cannot be encoded. Resolves when more may be written. */
  send(request: InferRequest, id: string): Promise<void> | void;
  /** No more requests will come. */
  end(): void;
  /** Stops everything in flight. */
  cancel(): void;
}

export function checkWindow(window: number | undefined): number {
  const value = window ?? DEFAULT_WINDOW;
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_WINDOW) {
    throw invalidArgument(`window must be a whole number from 1 to ${MAX_WINDOW}, not ${window}`);
  }
  return value;
}

function iteratorOf(requests: Iterable<InferRequest> | AsyncIterable<InferRequest>): AsyncIterator<InferRequest> | Iterator<InferRequest> {
  if (requests && typeof (requests as AsyncIterable<InferRequest>)[Symbol.asyncIterator] === 'function') {
    return (requests as AsyncIterable<InferRequest>)[Symbol.asyncIterator]();
  }
  if (requests && typeof (requests as Iterable<InferRequest>)[Symbol.iterator] === 'function') {
    return (requests as Iterable<InferRequest>)[Symbol.iterator]();
  }
  throw invalidArgument('inferStream needs an iterable or async iterable of requests');
}

export async function* windowedStream(
  requests: Iterable<InferRequest> | AsyncIterable<InferRequest>,
  options: StreamOptions,
  open: (sink: StreamSink) => StreamTransport,
): AsyncGenerator<StreamResult> {
  const window = checkWindow(options.window);
  const { signal } = options;
  // A stream has no deadline unless the caller gives it one: it may rightly run for hours.
  const timeoutMs = timeoutOf(options.timeoutMs, Infinity);
  if (signal?.aborted) throw cancelled(signal, 'the stream');
  const iterator = iteratorOf(requests);
  const prefix = `${randomBytes(4).toString('hex')}-`;
  let sequence = 0;

  const pending = new Map<string, InferRequest>();
  const ready: StreamResult[] = [];
  let failure: { error: unknown } | undefined;
  let inputDone = false;
  let serverEnded = false;
  let stopped = false;
  let wakeConsumer: (() => void) | undefined;
  let wakePump: (() => void) | undefined;
  const notify = () => {
    const wake = wakeConsumer;
    wakeConsumer = undefined;
    wake?.();
  };
  const slotFreed = () => {
    const wake = wakePump;
    wakePump = undefined;
    wake?.();
  };
  const failWith = (error: unknown) => {
    failure ??= { error };
    notify();
    slotFreed();
  };

  const transport = open({
    answer(id, outcome) {
      let request = pending.get(id);
      // Some servers send an error without the request's id: it can only be the one in flight.
      if (!request && !outcome.ok && pending.size === 1) [[id, request]] = pending;
      if (!request) {
        if (!outcome.ok) failWith(new InferenceError(outcome.error.code, `the server answered an error no request in flight can own (id ${quote(id)}): ${outcome.error.message}`));
        return;
      }
      pending.delete(id);
      ready.push(outcome.ok ? { ok: true, request, result: outcome.result } : { ok: false, request, error: outcome.error });
      notify();
    },
    fail: failWith,
    finished() {
      serverEnded = true;
      notify();
    },
  });

  const onAbort = () => {
    failWith(cancelled(signal, 'the stream'));
    transport.cancel();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = startTimer(timeoutMs, () => {
    failWith(deadlineExceeded(timeoutMs, 'the stream'));
    transport.cancel();
  });

  // Once the loop has left or the stream has failed (abort, deadline, error), nothing more is pulled.
  const halted = () => stopped || failure !== undefined;
  // Pulls requests while a slot is free and sends them; runs beside the loop below.
  const pump = async () => {
    while (!halted()) {
      while (!halted() && pending.size + ready.length >= window) await new Promise<void>((resolve) => (wakePump = resolve));
      if (halted()) return;
      const next = await iterator.next();
      if (halted()) return;
      if (next.done) {
        inputDone = true;
        notify();
        return;
      }
      const request = next.value;
      const given = request && typeof request === 'object' && typeof request.id === 'string' && request.id !== '' ? request.id : undefined;
      if (given !== undefined && pending.has(given)) {
        ready.push({ ok: false, request, error: invalidArgument(`request id ${quote(given)} is already in flight on this stream; answers are matched by id`) });
        notify();
        continue;
      }
      const id = given ?? `${prefix}${++sequence}`;
      pending.set(id, request);
      try {
        await transport.send(request, id);
      } catch (error) {
        if (!(error instanceof InferenceError)) throw error;
        pending.delete(id);
        ready.push({ ok: false, request, error });
        notify();
      }
    }
  };
  pump().catch(failWith);

  let completed = false;
  try {
    for (;;) {
      const next = ready.shift();
      if (next) {
        slotFreed();
        yield next;
        continue;
      }
      if (failure) throw failure.error;
      if (inputDone && pending.size === 0) {
        completed = true;
        transport.end();
        return;
      }
      if (serverEnded) throw badAnswer(`the server closed the stream with ${pending.size} request(s) unanswered`);
      await new Promise<void>((resolve) => (wakeConsumer = resolve));
    }
  } finally {
    stopped = true;
    slotFreed();
    signal?.removeEventListener('abort', onAbort);
    if (timer) clearTimeout(timer);
    if (!completed) transport.cancel();
    // Tell the caller's iterable no more will be pulled (closes a generator; errors there are its own).
    // Not awaited: a source still waiting inside next() would hold the caller's break until it yields.
    if (!inputDone && iterator.return) {
      try {
        const closing = iterator.return();
        if (closing instanceof Promise) closing.catch(() => undefined);
      } catch {
        // a synchronous iterator's return() threw: nothing more to close
      }
    }
  }
}
