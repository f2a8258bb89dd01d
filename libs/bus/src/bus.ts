/**
 * The mesh's NATS connection: typed publish/subscribe of protobuf events, JetStream
 * streams for what must not be lost, W3C trace context in message headers.
 */
import {
  connect, headers as natsHeaders, AckPolicy, DeliverPolicy, RetentionPolicy, StorageType,
  type NatsConnection, type JetStreamClient, type MsgHdrs, type Msg, type JsMsg, type ConsumerMessages,
} from 'nats';
import { context, propagation, type Context } from '@opentelemetry/api';
import type { Logger } from '@infermesh/log';
import type { MessageCodec } from '@infermesh/contracts';
import { subjects, streamName, type Subjects } from './subjects.js';

export interface BusOptions {
  url: string;
  /** Connection name shown by the server (service and instance). */
  name: string;
  prefix: string;
  logger: Logger;
}

export interface Received<T> {
  subject: string;
  message: T;
  /** Trace context of the publisher. */
  context: Context;
}

export interface Bus {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly subjects: Subjects;
  readonly prefix: string;
  publish<T>(subject: string, codec: MessageCodec<T, unknown>, message: T): void;
  /** JetStream publish: resolves once the server has stored the message. */
  publishDurable<T>(subject: string, codec: MessageCodec<T, unknown>, message: T, msgId?: string): Promise<void>;
  subscribe<T>(subject: string, codec: MessageCodec<unknown, T>, handler: (received: Received<T>) => void): { unsubscribe(): void };
  /** Creates the mesh's streams when missing (idempotent). */
  ensureStreams(): Promise<void>;
  /**
   * A durable pull consumer: handler errors leave the message un-acked, so it is
   * redelivered; undecodable messages are terminated and logged.
   */
  consumeDurable<T>(stream: 'PREDICTIONS' | 'FEEDBACK' | 'ALERTS', durable: string, codec: MessageCodec<unknown, T>, handler: (received: Received<T>) => Promise<void> | void): Promise<{ stop(): Promise<void> }>;
  drain(): Promise<void>;
}

function traceHeaders(ctx: Context = context.active()): MsgHdrs {
  const h = natsHeaders();
  propagation.inject(ctx, h, { set: (carrier, key, value) => carrier.set(key, value) });
  return h;
}

function traceContextOf(h: MsgHdrs | undefined): Context {
  if (!h) return context.active();
  return propagation.extract(context.active(), h, {
    get: (carrier, key) => (carrier.has(key) ? carrier.get(key) : undefined),
    keys: (carrier) => carrier.keys(),
  });
}

export async function connectBus(options: BusOptions): Promise<Bus> {
  const { logger, prefix } = options;
  const nc = await connect({ servers: options.url, name: options.name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  logger.info({ nats: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') logger.warn({ nats: s.type, data: String(s.data) }, 'NATS connection status');
    }
  })();
  const js = nc.jetstream();
  const subj = subjects(prefix);

  return {
    nc,
    js,
    subjects: subj,
    prefix,
    publish(subject, codec, message) {
      nc.publish(subject, codec.encode(message), { headers: traceHeaders() });
    },
    async publishDurable(subject, codec, message, msgId) {
      await js.publish(subject, codec.encode(message), { headers: traceHeaders(), msgID: msgId });
    },
    subscribe(subject, codec, handler) {
      const sub = nc.subscribe(subject, {
        callback: (error, msg: Msg) => {
          if (error) return logger.warn({ err: error, subject }, 'subscription error');
          let message;
          try {
            message = codec.decode(msg.data);
          } catch (err) {
            return logger.warn({ err, subject: msg.subject }, 'dropped an undecodable event');
          }
          handler({ subject: msg.subject, message, context: traceContextOf(msg.headers) });
        },
      });
      return { unsubscribe: () => sub.unsubscribe() };
    },
    async ensureStreams() {
      const jsm = await nc.jetstreamManager();
      const wanted = [
        { kind: 'PREDICTIONS' as const, subjects: [subj.predictions] },
        { kind: 'FEEDBACK' as const, subjects: [subj.feedbacks] },
        { kind: 'ALERTS' as const, subjects: [subj.alerts] },
      ];
      for (const stream of wanted) {
        const name = streamName(prefix, stream.kind);
        try {
          await jsm.streams.info(name);
        } catch {
          try {
            await jsm.streams.add({ name, subjects: stream.subjects, retention: RetentionPolicy.Limits, storage: StorageType.File, max_age: 7 * 24 * 3600 * 1e9, duplicate_window: 120 * 1e9 });
            logger.info({ stream: name }, 'created JetStream stream');
          } catch (err) {
            // Another service created it between our look-up and add.
            await jsm.streams.info(name).catch(() => { throw err; });
          }
        }
      }
    },
    async consumeDurable<T>(stream: 'PREDICTIONS' | 'FEEDBACK' | 'ALERTS', durable: string, codec: MessageCodec<unknown, T>, handler: (received: Received<T>) => Promise<void> | void) {
      const name = streamName(prefix, stream);
      const jsm = await nc.jetstreamManager();
      await jsm.consumers.add(name, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30e9, max_deliver: 10 });
      const consumer = await js.consumers.get(name, durable);
      const messages: ConsumerMessages = await consumer.consume({ max_messages: 256 });
      const done = (async () => {
        for await (const msg of messages as AsyncIterable<JsMsg>) {
          let message: T;
          try {
            message = codec.decode(msg.data);
          } catch (err) {
            logger.warn({ err, subject: msg.subject, stream: name }, 'terminated an undecodable message');
            msg.term();
            continue;
          }
          try {
            await handler({ subject: msg.subject, message, context: traceContextOf(msg.headers) });
            msg.ack();
          } catch (err) {
            logger.error({ err, subject: msg.subject }, 'event handler failed; message will be redelivered');
            msg.nak(1000);
          }
        }
      })();
      return {
        async stop() {
          await messages.close();
          await done;
        },
      };
    },
    async drain() {
      if (!nc.isClosed()) await nc.drain();
    },
  };
}
