import { describe, expect, it } from 'vitest';
import { Slots } from './slots.js';

function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('Slots', () => {
  it('runs at most its size at once and starts the waiting in arrival order', async () => {
    const slots = new Slots(2);
    const gates = Array.from({ length: 5 }, gate);
    const started: number[] = [];
    const runs = gates.map((g, i) => slots.run(async () => {
      started.push(i);
      await g.opened;
      return i;
    }));
    await tick();
    expect(started).toEqual([0, 1]);
    expect([slots.inUse, slots.queued]).toEqual([2, 3]);
    gates[1].open();
    await tick();
    expect(started).toEqual([0, 1, 2]);
    expect([slots.inUse, slots.queued]).toEqual([2, 2]);
    for (const g of gates) g.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3, 4]);
    expect([slots.inUse, slots.queued]).toEqual([0, 0]);
  });

  it('frees the slot of work that fails', async () => {
    const slots = new Slots(1);
    await expect(slots.run(async () => {
      throw new Error('decode failed');
    })).rejects.toThrow('decode failed');
    expect(slots.inUse).toBe(0);
    expect(await slots.run(async () => 'next')).toBe('next');
  });

  it('lets go of waiting work whose signal aborts, and gives the slot to the next', async () => {
    const slots = new Slots(1);
    const first = gate();
    const running = slots.run(() => first.opened);
    const controller = new AbortController();
    const ran: string[] = [];
    const cancelled = slots.run(async () => void ran.push('cancelled'), controller.signal);
    const next = slots.run(async () => void ran.push('next'));
    await tick();
    expect(slots.queued).toBe(2);
    controller.abort(new DOMException('call cancelled', 'AbortError'));
    await expect(cancelled).rejects.toThrow('call cancelled');
    expect(slots.queued).toBe(1);
    first.open();
    await Promise.all([running, next]);
    expect(ran).toEqual(['next']);
    expect([slots.inUse, slots.queued]).toEqual([0, 0]);
  });

  it('does not start work whose signal has already aborted', async () => {
    const slots = new Slots(1);
    let ran = false;
    await expect(slots.run(async () => (ran = true), AbortSignal.abort())).rejects.toThrow();
    expect(ran).toBe(false);
    expect(slots.inUse).toBe(0);
  });

  it('refuses a size below 1', () => {
    expect(() => new Slots(0)).toThrow(/size 0; expected a whole number of at least 1/);
  });
});
