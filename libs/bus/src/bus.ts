/**
 * The mesh's NATS connection: typed publish/subscribe of protobuf events, JetStream
 * streams for what must not be lost, W3C trace context in message headers.
 */
import { connect, headers as natsHeaders, nanos, type ConnectionOptions, type NatsConnection, type MsgHdrs, type Subscription } from '@nats-io/transport-node';
import {
  jetstream, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType,
  type JetStreamClient, type JetStreamManager,
} from '@nats-io/jetstream';
import { context, propagation, type Context } from '@opentelemetry/api';
import type { Logger } from '@infermesh/log';
import type { MessageCodec } from '@infermesh/contracts';
import { subjects, streamName, type Subjects } from './subjects.js';
import { streamReplicas } from './replicas.js';

export interface BusOptions {
  url: string;
  /** Connection name shown by the server (service and instance). */
  name: string;
  prefix: string;
  logger: Logger;
  /** Credentials and TLS (natsConnectOptions). */
  connectOptions?: Partial<ConnectionOptions>;
}

export interface Received<T> {
  subject: string;
  message: T;
  /** Trace context of the publisher. */
  context: Context;
}

/** What the stream answered a durable publish: where it stored the message, or that it already had one with that msgId. */
export interface DurableAck {
  sequence: number;
  duplicate: boolean;
}

export interface Bus {
  readonly nc: NatsConnection;
  /** JetStream of the connection; `js.jetstreamManager()` inspects streams and consumers. */
  readonly js: JetStreamClient;
  readonly subjects: Subjects;
  readonly prefix: string;
  publish<T>(subject: string, codec: MessageCodec<T, unknown>, message: T): void;
  /**
   * JetStream publish: resolves once the server has stored the message. A `msgId` seen
   * again within the stream's duplicate window is stored once, so a retried publish is safe.
   */
  publishDurable<T>(subject: string, codec: MessageCodec<T, unknown>, message: T, msgId?: string): Promise<DurableAck>;
  subscribe<T>(subject: string, codec: MessageCodec<unknown, T>, handler: (received: Received<T>) => void): { unsubscribe(): void };
  /** Creates the mesh's streams when missing (idempotent). */
  ensureStreams(): Promise<void>;
  drain(): Promise<void>;
}

/** How long stored records live, and how long JetStream remembers a msgId to drop a republished one. */
const STREAM_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const DUPLICATE_WINDOW_MS = 120 * 1000;
/**
 * FEEDBACK remembers a request's labels for a day: a second Feedback for one request id
 * within it is refused (ALREADY_EXISTS), which is also how long predictions are kept
 * for feedback by default (MONITOR_FEEDBACK_RETENTION_MS).
 */
export const FEEDBACK_DUPLICATE_WINDOW_MS = 24 * 3600 * 1000;

function traceHeaders(ctx: Context = context.active()): MsgHdrs {
  const h = natsHeaders();
  propagation.inject(ctx, h, { set: (carrier, key, value) => carrier.set(key, value) });
  return h;
}

/** The publisher's trace context from a message's headers (the current context when it has none). */
export function traceContextOf(h: MsgHdrs | undefined): Context {
  if (!h) return context.active();
  return propagation.extract(context.active(), h, {
    get: (carrier, key) => (carrier.has(key) ? carrier.get(key) : undefined),
    keys: (carrier) => carrier.keys(),
  });
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}

export async function connectBus(options: BusOptions): Promise<Bus> {
  const { logger, prefix } = options;
  const nc = await connect({ ...options.connectOptions, servers: options.url, name: options.name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  logger.info({ nats: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') logger.warn({ nats: s.type, server: s.server }, 'NATS connection status');
      else if (s.type === 'error') logger.warn({ nats: s.type, err: s.error }, 'NATS connection status');
    }
  })();
  const js = jetstream(nc);
  const subj = subjects(prefix);

  // One manager per connection (creating one asks the server whether JetStream is
  // enabled); not before it is needed, since core NATS alone works without JetStream.
  let managerOnce: Promise<JetStreamManager> | undefined;
  const jsm = (): Promise<JetStreamManager> => {
    managerOnce ??= js.jetstreamManager().catch((error: unknown) => {
      managerOnce = undefined;
      throw error;
    });
    return managerOnce;
  };

  async function deliver<T>(subject: string, codec: MessageCodec<unknown, T>, sub: Subscription, handler: (received: Received<T>) => void): Promise<void> {
    try {
      for await (const msg of sub) {
        let message: T;
        try {
          message = codec.decode(msg.data);
        } catch (err) {
          logger.warn({ err, subject: msg.subject }, 'dropped an undecodable event');
          continue;
        }
        try {
          handler({ subject: msg.subject, message, context: traceContextOf(msg.headers) });
        } catch (err) {
          // Core NATS keeps no copy to redeliver: log and go on with the next event.
          logger.error({ err, subject: msg.subject }, 'event handler failed');
        }
      }
    } catch (err) {
      // The iterator ends with the error that closed the subscription (a permission denied).
      logger.warn({ err, subject }, 'subscription closed by an error');
    }
  }

  return {
    nc,
    js,
    subjects: subj,
    prefix,
    publish(subject, codec, message) {
      nc.publish(subject, codec.encode(message), { headers: traceHeaders() });
    },
    async publishDurable(subject, codec, message, msgId) {
      const ack = await js.publish(subject, codec.encode(message), { headers: traceHeaders(), msgID: msgId });
      return { sequence: ack.seq, duplicate: ack.duplicate };
    },
    subscribe(subject, codec, handler) {
      const sub = nc.subscribe(subject);
      void deliver(subject, codec, sub, handler);
      return { unsubscribe: () => sub.unsubscribe() };
    },
    async ensureStreams() {
      const replicas = streamReplicas();
      const manager = await jsm();
      const wanted = [
        { name: streamName(prefix, 'PREDICTIONS'), subjects: [subj.predictions], duplicateWindowMs: DUPLICATE_WINDOW_MS },
        { name: streamName(prefix, 'FEEDBACK'), subjects: [subj.feedbacks], duplicateWindowMs: FEEDBACK_DUPLICATE_WINDOW_MS },
      ];
      for (const stream of wanted) {
        try {
          await manager.streams.info(stream.name);
          continue;
        } catch (error) {
          if (!isStreamNotFound(error)) throw error;
        }
        try {
          await manager.streams.add({
            name: stream.name,
            subjects: stream.subjects,
            retention: RetentionPolicy.Limits,
            storage: StorageType.File,
            max_age: nanos(STREAM_MAX_AGE_MS),
            duplicate_window: nanos(stream.duplicateWindowMs),
            num_replicas: replicas,
          });
          logger.info({ stream: stream.name }, 'created JetStream stream');
        } catch (error) {
          // Another service created it between our look-up and add.
          await manager.streams.info(stream.name).catch(() => {
            throw error;
          });
        }
      }
    },
    async drain() {
      if (!nc.isClosed()) await nc.drain();
    },
  };
}
