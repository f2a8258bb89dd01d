import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, atDeadline } from './deadline.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('atDeadline', () => {
  it('fires when the deadline comes', () => {
    vi.useFakeTimers({ now: 0 });
    const fire = vi.fn();
    atDeadline(1000, fire);
    vi.advanceTimersByTime(999);
    expect(fire).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fire).toHaveBeenCalledOnce();
  });

  it('does not fire at once for a deadline beyond what setTimeout can take (2^31-1 ms)', () => {
    vi.useFakeTimers({ now: 0 });
    const fire = vi.fn();
    const thirtyDays = 30 * 24 * 3600 * 1000;
    expect(thirtyDays).toBeGreaterThan(MAX_TIMER_MS);
    atDeadline(thirtyDays, fire);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fire).not.toHaveBeenCalled();
    vi.advanceTimersByTime(thirtyDays - MAX_TIMER_MS - 1);
    expect(fire).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fire).toHaveBeenCalledOnce();
  });

  it('fires at once for a deadline already past', () => {
    vi.useFakeTimers({ now: 5000 });
    const fire = vi.fn();
    atDeadline(10, fire);
    expect(fire).toHaveBeenCalledOnce();
  });

  it('never fires once cleared', () => {
    vi.useFakeTimers({ now: 0 });
    const fire = vi.fn();
    atDeadline(100, fire).clear();
    vi.advanceTimersByTime(1000);
    expect(fire).not.toHaveBeenCalled();
  });
});
