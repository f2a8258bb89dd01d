import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ServiceError, Status } from '@infermesh/grpc';
import type { Alert } from '@infermesh/contracts';
import { AlertWatchers, type AlertSink } from './alert-watchers.js';

/** A stream whose transport takes `room` alerts, then none until the test drains it. */
class FakeSink extends EventEmitter implements AlertSink {
  readonly written: string[] = [];
  constructor(private room = Infinity) {
    super();
  }
  write(alert: Alert): boolean {
    this.written.push(alert.rule ?? '');
    this.room -= 1;
    return this.room > 0;
  }
  drain(room = Infinity): void {
    this.room = room;
    this.emit('drain');
  }
}

const alert = (rule: string): Alert => ({ rule, state: 'firing' });

describe('AlertWatchers', () => {
  it('sends the alerts firing first, then each transition, in order', async () => {
    const watchers = new AlertWatchers();
    const sink = new FakeSink();
    const served = watchers.serve(sink, new AbortController().signal, [alert('a'), alert('b')]);
    watchers.send(alert('c'));
    watchers.close();
    await served;
    expect(sink.written).toEqual(['a', 'b', 'c']);
  });

  it('keeps alerts a stream cannot take yet, and sends them in order once it drains', () => {
    const watchers = new AlertWatchers(10);
    const sink = new FakeSink(1);
    void watchers.serve(sink, new AbortController().signal);
    for (const rule of ['a', 'b', 'c']) watchers.send(alert(rule));
    expect(sink.written).toEqual(['a']);
    sink.drain();
    expect(sink.written).toEqual(['a', 'b', 'c']);
  });

  it('ends a stream that falls too far behind with RESOURCE_EXHAUSTED, and goes on with the others', async () => {
    const watchers = new AlertWatchers(2);
    const slow = new FakeSink(1);
    const fast = new FakeSink();
    const slowServed = watchers.serve(slow, new AbortController().signal);
    void watchers.serve(fast, new AbortController().signal);
    for (const rule of ['a', 'b', 'c', 'd', 'e']) watchers.send(alert(rule));
    const error = await slowServed.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(fast.written).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(watchers.size).toBe(1);
    slow.drain();
    expect(slow.written).toEqual(['a']);
  });

  it('sends every alert firing when a stream opens, however many, without ending it', () => {
    const watchers = new AlertWatchers(2);
    const sink = new FakeSink(1);
    void watchers.serve(sink, new AbortController().signal, ['a', 'b', 'c', 'd'].map(alert));
    expect(sink.written).toEqual(['a', 'b', 'c', 'd']);
    expect(watchers.size).toBe(1);
  });

  it('ends every stream OK on close, handing over what waited, and serves no new one', async () => {
    const watchers = new AlertWatchers(10);
    const sink = new FakeSink(1);
    const served = watchers.serve(sink, new AbortController().signal);
    watchers.send(alert('a'));
    watchers.send(alert('b'));
    watchers.close();
    await expect(served).resolves.toBeUndefined();
    expect(sink.written).toEqual(['a', 'b']);
    await expect(watchers.serve(new FakeSink(), new AbortController().signal)).resolves.toBeUndefined();
    expect(watchers.size).toBe(0);
  });

  it('lets go of a stream whose client left', async () => {
    const watchers = new AlertWatchers();
    const sink = new FakeSink();
    const left = new AbortController();
    const served = watchers.serve(sink, left.signal);
    left.abort();
    await served;
    watchers.send(alert('after'));
    expect([watchers.size, sink.written]).toEqual([0, []]);
  });
});
