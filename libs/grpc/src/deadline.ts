/**
 * Timers for deadlines. Node's setTimeout takes at most 2^31-1 ms (about 24.8 days); a
 * longer delay overflows and fires at once, so a client deadline a month away would end
 * its call immediately. grpc-js clamps the same way (its deadline.ts); here a far timer is
 * re-armed in steps until the real time comes.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface DeadlineTimer {
  clear(): void;
}

/** Calls `fire` at `atMs` (ms since the epoch), however far away; the timer never keeps the process alive. */
export function atDeadline(atMs: number, fire: () => void, now: () => number = Date.now): DeadlineTimer {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const remaining = atMs - now();
    if (remaining <= 0) {
      timer = undefined;
      fire();
      return;
    }
    timer = setTimeout(arm, Math.min(remaining, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return {
    clear() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
