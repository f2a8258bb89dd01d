/**
 * Reading a stream from a position the reader keeps, and the snapshot store that keeps
 * it, against a real nats-server with JetStream.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import {
  connectBus, events, replayStream, snapshotStore, streamName, streamPosition, streamSequenceAt, SnapshotTooLargeError,
  type Bus, type Delivery, type ReplayHandlers,
} from './index.js';

const logger = createLogger('replay-test', { level: 'silent' });

let nats: NatsServer;
const buses: Bus[] = [];
let sequence = 0;

beforeAll(async () => {
  nats = await startNatsServer();
});

afterAll(async () => {
  await nats?.stop();
});

afterEach(async () => {
  for (const bus of buses.splice(0)) await bus.drain();
});

/** A bus under a prefix of its own, with its PREDICTIONS stream. */
async function bus(): Promise<Bus> {
  const prefix = `r${++sequence}`;
  const connected = await connectBus({ url: nats.url, name: `replay-test-${prefix}`, prefix, logger });
  buses.push(connected);
  await connected.ensureStreams();
  return connected;
}

async function publish(b: Bus, ...ids: string[]): Promise<void> {
  for (const requestId of ids) await b.publishDurable(b.subjects.prediction('iris'), events.prediction, { requestId, model: 'iris' });
}

/** What a replay hands over, and a wait for the first `n` of it. */
function recorder() {
  const seen: string[] = [];
  let waiting: { n: number; resolve: () => void } | undefined;
  const note = (entry: string) => {
    seen.push(entry);
    if (waiting && seen.length >= waiting.n) waiting.resolve();
  };
  const handlers: ReplayHandlers<PredictionRecord__Output> = {
    message: (d: Delivery<PredictionRecord__Output>) => {
      if (d.message.requestId === 'throws') throw new Error('handler failed');
      note(`${d.streamSequence}:${d.message.requestId}`);
    },
    undecodable: (seq) => note(`${seq}:undecodable`),
    failed: (seq) => note(`${seq}:failed`),
    ended: (error) => note(`ended:${String(error)}`),
  };
  const next = (n: number) => new Promise<string[]>((resolve, reject) => {
    if (seen.length >= n) return resolve(seen);
    const timer = setTimeout(() => reject(new Error(`saw ${JSON.stringify(seen)}, wanted ${n}`)), 10_000);
    waiting = { n, resolve: () => (clearTimeout(timer), resolve(seen)) };
  });
  return { seen, handlers, next };
}

describe('replayStream', () => {
  it('reads the stream from the message after a sequence, in order', async () => {
    const b = await bus();
    await publish(b, 'a', 'b', 'c', 'd');
    const r = recorder();
    const replay = await replayStream(b, 'PREDICTIONS', events.prediction, { afterSequence: 2 }, r.handlers);
    expect(await r.next(2)).toEqual(['3:c', '4:d']);
    await publish(b, 'e');
    expect(await r.next(3)).toEqual(['3:c', '4:d', '5:e']);
    // The place moves once the handler's (possibly async) work is done, a tick after the handler saw 'e'.
    await vi.waitFor(() => expect(replay.lastSequence).toBe(5), { timeout: 5000 });
    await replay.stop();
  });

  it('reads every message from the start when no sequence was handled', async () => {
    const b = await bus();
    await publish(b, 'a', 'b');
    const r = recorder();
    const replay = await replayStream(b, 'PREDICTIONS', events.prediction, { afterSequence: 0 }, r.handlers);
    expect(await r.next(2)).toEqual(['1:a', '2:b']);
    await replay.stop();
  });

  it('skips an undecodable message and a message whose handler throws, and hands over the ones after them', async () => {
    const b = await bus();
    await publish(b, 'a');
    await b.js.publish(b.subjects.prediction('iris'), Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    await publish(b, 'throws', 'b');
    const r = recorder();
    const replay = await replayStream(b, 'PREDICTIONS', events.prediction, { afterSequence: 0 }, r.handlers);
    expect(await r.next(4)).toEqual(['1:a', '2:undecodable', '3:failed', '4:b']);
    await replay.stop();
  });

  it('hands over the next message only once the promise a handler returned for the last one settles', async () => {
    const b = await bus();
    await publish(b, 'a', 'b');
    const order: string[] = [];
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const r = recorder();
    const replay = await replayStream(b, 'PREDICTIONS', events.prediction, { afterSequence: 0 }, {
      ...r.handlers,
      message: (d: Delivery<PredictionRecord__Output>) => {
        order.push(`start ${d.message.requestId}`);
        r.handlers.message(d);
        return d.message.requestId === 'a' ? held.then(() => void order.push('released a')) : undefined;
      },
    });
    await r.next(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(order).toEqual(['start a']);
    release();
    await r.next(2);
    expect(order).toEqual(['start a', 'released a', 'start b']);
    await replay.stop();
  });

  it('starts at the first message stored at or after a time', async () => {
    const b = await bus();
    await publish(b, 'old');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const between = new Date();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await publish(b, 'new');
    const r = recorder();
    const replay = await replayStream(b, 'PREDICTIONS', events.prediction, { fromTime: between }, r.handlers);
    expect(await r.next(1)).toEqual(['2:new']);
    await replay.stop();
  });
});

describe('replayStream across a NATS outage', () => {
  /** Stores each message once the restarted server takes it again (its msgId keeps a retried publish from storing it twice). */
  async function publishOnceStoredAgain(b: Bus, ...ids: string[]): Promise<void> {
    for (const requestId of ids) {
      for (let attempt = 1; ; attempt++) {
        try {
          await b.publishDurable(b.subjects.prediction('iris'), events.prediction, { requestId, model: 'iris' }, requestId);
          break;
        } catch (error) {
          if (attempt === 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    }
  }

  // The server forgets the ordered consumer when it restarts. The reader must recreate it
  // and go on pulling every message stored after the restart, not only the first one; a
  // reader that stalls after the first one picks the rest up again only once it notices
  // missed heartbeats, 30 to 45 s later with nats.js's default pull expiry. The recorder
  // waits 10 s for them: a bound that tells "goes on reading after the reconnect" from
  // "stalls until the heartbeat check", not a claim about how fast records are read.
  it('goes on handing over every message stored after the server restarts', async () => {
    const server = await startNatsServer();
    try {
      const b = await connectBus({ url: server.url, name: 'replay-test-outage', prefix: 'outage', logger });
      await b.ensureStreams();
      await publish(b, 'before');
      const r = recorder();
      const replay = await replayStream(b, 'PREDICTIONS', events.prediction, { afterSequence: 0 }, r.handlers);
      expect(await r.next(1)).toEqual(['1:before']);
      await server.kill();
      await server.restart();
      await publishOnceStoredAgain(b, 'after-1', 'after-2', 'after-3');
      expect(await r.next(4)).toEqual(['1:before', '2:after-1', '3:after-2', '4:after-3']);
      await replay.stop();
      await b.drain();
    } finally {
      await server.stop();
    }
  });
});

describe('stream positions', () => {
  it('finds the sequence of the first message stored at or after a time, or one past the last when none is', async () => {
    const b = await bus();
    await publish(b, 'a', 'b');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const between = new Date();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await publish(b, 'c');
    expect(await streamSequenceAt(b, 'PREDICTIONS', new Date(0))).toBe(1);
    expect(await streamSequenceAt(b, 'PREDICTIONS', between)).toBe(3);
    expect(await streamSequenceAt(b, 'PREDICTIONS', new Date(Date.now() + 60_000))).toBe(4);
    const jsm = await b.js.jetstreamManager();
    expect((await jsm.consumers.list(streamName(b.prefix, 'PREDICTIONS')).next()).length).toBe(0);
  });

  it('tells a stream made again apart by its creation time', async () => {
    const b = await bus();
    await publish(b, 'a', 'b');
    const first = await streamPosition(b, 'PREDICTIONS');
    expect(first).toMatchObject({ firstSequence: 1, lastSequence: 2 });
    const jsm = await b.js.jetstreamManager();
    await jsm.streams.delete(streamName(b.prefix, 'PREDICTIONS'));
    await b.ensureStreams();
    const again = await streamPosition(b, 'PREDICTIONS');
    expect(again.lastSequence).toBe(0);
    expect(again.created).not.toBe(first.created);
  });
});

describe('snapshotStore', () => {
  it('loads nothing before the first save, then the latest snapshot saved', async () => {
    const b = await bus();
    const store = await snapshotStore(b, 'monitor');
    expect(await store.load()).toBeUndefined();
    await store.save(new TextEncoder().encode('first'));
    await store.save(new TextEncoder().encode('second'));
    expect(new TextDecoder().decode(await store.load())).toBe('second');
    const again = await snapshotStore(b, 'monitor');
    expect(new TextDecoder().decode(await again.load())).toBe('second');
  });

  it('keeps each owner\'s snapshot apart, and only the latest of each', async () => {
    const b = await bus();
    const a = await snapshotStore(b, 'monitor-a');
    const c = await snapshotStore(b, 'monitor-b');
    await a.save(new TextEncoder().encode('a1'));
    await a.save(new TextEncoder().encode('a2'));
    await c.save(new TextEncoder().encode('b1'));
    expect(new TextDecoder().decode(await a.load())).toBe('a2');
    expect(new TextDecoder().decode(await c.load())).toBe('b1');
    const jsm = await b.js.jetstreamManager();
    expect((await jsm.streams.info(`KV_${b.prefix}_snapshots`)).state.messages).toBe(2);
  });

  it('refuses a snapshot larger than the server takes, and keeps the one before', async () => {
    const b = await bus();
    const store = await snapshotStore(b, 'monitor');
    await store.save(new TextEncoder().encode('kept'));
    await expect(store.save(new Uint8Array((b.nc.info?.max_payload ?? 0) + 1))).rejects.toBeInstanceOf(SnapshotTooLargeError);
    expect(new TextDecoder().decode(await store.load())).toBe('kept');
  });
});
