/**
 * Reading a stream from a position of the reader's choosing, for a consumer that keeps its
 * own place (a snapshot of what it has counted and the sequence that snapshot covers)
 * instead of asking JetStream to remember acknowledgements.
 *
 * An ordered consumer delivers each stored message once, in sequence order, and recreates
 * itself after a gap or a reconnect, resuming after the last sequence it delivered. There
 * is nothing to ack and nothing redelivered, so a message the handler cannot take is the
 * handler's to count and skip; it can never block the messages after it.
 */
import { AckPolicy, DeliverPolicy, type JetStreamManager, type OrderedConsumerOptions } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { MessageCodec } from '@infermesh/contracts';
import { traceContextOf, type Bus, type Received } from './bus.js';
import { streamName, type StreamKind } from './subjects.js';

/** Where a stream stands: its sequences, and when it was created (a recreated stream starts its sequences again). */
export interface StreamPosition {
  firstSequence: number;
  lastSequence: number;
  /** ISO time the stream was created; changes when the stream is deleted and made again. */
  created: string;
}

/** Where to start reading: after a sequence already handled, or at the first message stored at or after a time. */
export type ReplayStart = { afterSequence: number } | { fromTime: Date };

/** A stored message handed over by a replay: what a subscriber receives, and where it is in its stream. */
export interface Delivery<T> extends Received<T> {
  /** The message's sequence in its stream: the place a reader keeps to resume after. */
  streamSequence: number;
}

export interface ReplayHandlers<T> {
  /**
   * Called for each decoded message, in stream order; a throw (or a rejection) is the
   * handler's failure to count (the replay goes on). When it returns a promise, the next
   * message waits for it: a handler that starts writes of its own holds the reading back.
   */
  message(delivery: Delivery<T>): void | Promise<void>;
  /** A message that does not decode: it is skipped, and the replay goes on. */
  undecodable(streamSequence: number, subject: string, error: unknown): void;
  /** The handler threw for this message: it is skipped, and the replay goes on. */
  failed(streamSequence: number, subject: string, error: unknown): void;
  /** The consumer could not go on (its stream was deleted): nothing more will arrive. */
  ended(error: unknown): void;
}

export interface StreamReplay {
  /** Sequence of the last message handled (or skipped); the start's sequence before any. */
  readonly lastSequence: number;
  /** Stops reading; resolves once the message in hand is handled. */
  stop(): Promise<void>;
}

async function manager(bus: Bus): Promise<JetStreamManager> {
  return bus.js.jetstreamManager();
}

export async function streamPosition(bus: Bus, stream: StreamKind): Promise<StreamPosition> {
  const info = await (await manager(bus)).streams.info(streamName(bus.prefix, stream));
  return { firstSequence: info.state.first_seq, lastSequence: info.state.last_seq, created: info.created };
}

/**
 * The sequence of the first message stored at or after `time` (one past the last message
 * when none is). The server works it out for a consumer starting at that time; the
 * consumer is made, read and deleted, so nothing is delivered.
 */
export async function streamSequenceAt(bus: Bus, stream: StreamKind, time: Date): Promise<number> {
  const jsm = await manager(bus);
  const name = streamName(bus.prefix, stream);
  const probe = await jsm.consumers.add(name, {
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: time.toISOString(),
    ack_policy: AckPolicy.None,
    mem_storage: true,
    // Removed by the server too, should this process die before deleting it.
    inactive_threshold: nanos(10_000),
  });
  await jsm.consumers.delete(name, probe.name).catch(() => undefined);
  return probe.delivered.stream_seq + 1;
}

/**
 * How long each pull request lives; the client asks for idle heartbeats every half of it
 * and, once two are missed, drops what it thinks is pending and pulls afresh.
 *
 * That missed-heartbeat check is what gets the reader going again after a NATS outage.
 * The ordered consumer lives in the server's memory, so a restarted server has lost it;
 * on reconnect nats.js (3.4) finds it gone and recreates it, but keeps the count of
 * messages it was still waiting for from the lost pull, so its first pull to the new
 * consumer asks only for as many as had arrived since the lost pull went out (often none,
 * which the server takes as one), and no further pull goes out until two heartbeats are
 * missed. With the default 30 s expiry
 * that is 30 to 45 s without records after every outage, whatever is stored meanwhile;
 * with 3 s it is 3 to 4.5 s. The price is one pull request every 3 s on an idle stream.
 */
const PULL_EXPIRES_MS = 3_000;

/**
 * Reads `stream` from `start` with an ordered consumer, handing each message to
 * `handlers.message` as it is stored, until stopped. The caller keeps `lastSequence` (in
 * its snapshot) to resume from after a restart.
 */
export async function replayStream<T>(bus: Bus, stream: StreamKind, codec: MessageCodec<unknown, T>, start: ReplayStart, handlers: ReplayHandlers<T>): Promise<StreamReplay> {
  const name = streamName(bus.prefix, stream);
  const options: Partial<OrderedConsumerOptions> =
    'fromTime' in start
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: start.fromTime.toISOString() }
      : start.afterSequence > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.afterSequence + 1 }
        : { deliver_policy: DeliverPolicy.All };
  const consumer = await bus.js.consumers.get(name, options);
  const messages = await consumer.consume({ max_messages: 512, expires: PULL_EXPIRES_MS });
  let lastSequence = 'afterSequence' in start ? start.afterSequence : 0;
  const done = (async () => {
    for await (const msg of messages) {
      let message: T;
      try {
        message = codec.decode(msg.data);
      } catch (error) {
        lastSequence = msg.seq;
        handlers.undecodable(msg.seq, msg.subject, error);
        continue;
      }
      try {
        await handlers.message({ subject: msg.subject, message, context: traceContextOf(msg.headers), streamSequence: msg.seq });
      } catch (error) {
        handlers.failed(msg.seq, msg.subject, error);
      }
      lastSequence = msg.seq;
    }
  })().catch((error: unknown) => handlers.ended(error));
  return {
    get lastSequence() {
      return lastSequence;
    },
    async stop() {
      await messages.close();
      await done;
    },
  };
}
