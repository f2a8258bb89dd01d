import { describe, expect, it } from 'vitest';
import { HandledMessages } from './handled-messages.js';

describe('HandledMessages', () => {
  it('knows no progress for a message it has not seen', () => {
    expect(new HandledMessages(4).handledOf(1)).toBe(0);
  });

  it('remembers how many records of each message were handled', () => {
    const handled = new HandledMessages(4);
    handled.markHandled(7, 1);
    handled.markHandled(7, 2);
    handled.markHandled(9, 5);
    expect([handled.handledOf(7), handled.handledOf(9), handled.size]).toEqual([2, 5, 2]);
  });

  it('forgets the oldest message beyond its capacity, so memory stays bounded', () => {
    const handled = new HandledMessages(2);
    handled.markHandled(1, 3);
    handled.markHandled(2, 3);
    // Progress on a message it holds makes no room and forgets nothing.
    handled.markHandled(1, 4);
    handled.markHandled(3, 3);
    expect([handled.handledOf(1), handled.handledOf(2), handled.handledOf(3), handled.size]).toEqual([0, 3, 3, 2]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new HandledMessages(0)).toThrow(RangeError);
    expect(() => new HandledMessages(1.5)).toThrow(RangeError);
  });
});
