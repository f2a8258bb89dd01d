/**
 * Load generation against any async request function: closed loop at a fixed concurrency,
 * or open loop at a fixed rate. Every loop is bounded by a time window and a request
 * count, and stops by itself.
 */
export interface Window {
  /** Stop after this long (ms). */
  durationMs: number;
  /** Stop after this many requests (0 = no limit besides the duration). */
  maxRequests: number;
}

export interface LoadResult {
  latenciesMs: number[];
  errors: number;
  firstError?: string;
  elapsedMs: number;
}

export type Send = () => Promise<void>;

export async function closedLoop(send: Send, concurrency: number, window: Window): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let issued = 0;
  const started = performance.now();
  const deadline = started + window.durationMs;
  const more = () => performance.now() < deadline && (window.maxRequests === 0 || issued < window.maxRequests);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (more()) {
        issued++;
        const t0 = performance.now();
        try {
          await send();
          latenciesMs.push(performance.now() - t0);
        } catch (error) {
          errors++;
          firstError ??= (error as { details?: string; message?: string }).details ?? (error as Error).message;
        }
      }
    }),
  );
  return { latenciesMs, errors, firstError, elapsedMs: performance.now() - started };
}

/** Requests started at `rate` per second regardless of answers, at most `maxInFlight` outstanding. */
export async function openLoop(send: Send, rate: number, window: Window, maxInFlight = 4096): Promise<LoadResult & { dropped: number }> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let dropped = 0;
  let firstError: string | undefined;
  let inFlight = 0;
  let issued = 0;
  const pending = new Set<Promise<void>>();
  const started = performance.now();
  const interval = 1000 / rate;
  for (;;) {
    const now = performance.now();
    if (now - started >= window.durationMs || (window.maxRequests > 0 && issued >= window.maxRequests)) break;
    const due = Math.floor((now - started) / interval) + 1;
    while (issued < due && (window.maxRequests === 0 || issued < window.maxRequests)) {
      issued++;
      if (inFlight >= maxInFlight) {
        dropped++;
        continue;
      }
      inFlight++;
      const t0 = performance.now();
      const p: Promise<void> = send().then(
        () => void latenciesMs.push(performance.now() - t0),
        (error: unknown) => {
          errors++;
          firstError ??= (error as { details?: string; message?: string }).details ?? (error as Error).message;
        },
      ).finally(() => {
        inFlight--;
        pending.delete(p);
      });
      pending.add(p);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, interval - ((performance.now() - started) % interval))));
  }
  await Promise.all(pending);
  return { latenciesMs, errors, firstError, elapsedMs: performance.now() - started, dropped };
}
