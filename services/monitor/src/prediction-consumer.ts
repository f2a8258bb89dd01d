/**
 * Reads the PREDICTIONS stream into MonitorState, from where the monitor's last snapshot
 * left off, and saves a snapshot every few seconds and on stop.
 *
 * On start: load the snapshot (counts, percentile windows, known models, and the stream
 * sequence S they cover); listen for heartbeats a moment; then read the stream with an
 * ordered consumer from S+1. A snapshot too large for one NATS message is saved without
 * its windows; after it, reading starts at the first message of the percentile window
 * instead, and records of messages up to S refill the windows only. Still too large, it
 * is saved without the drift window counts and recent accuracy too (they fill again):
 * the counts and marks are saved whatever the windows grow to. Each message
 * is handled once per process (an ordered consumer has no redeliveries), and a snapshot
 * is taken between messages, so it covers whole messages and a restart neither counts a
 * record twice nor misses one. See docs/architecture.md, "Monitor state across restarts".
 *
 * Each counted record feedback can label is kept (kept-predictions.ts); a snapshot is saved
 * only once the puts of the records it covers are done, and reading waits while too many
 * puts are in flight.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace, type Context, type Span } from '@opentelemetry/api';
import { events, replayStream, streamPosition, streamSequenceAt, type Bus, type Delivery, type SnapshotStore, type StreamReplay } from '@infermesh/bus';
import type { PredictionBatch__Output, PredictionRecord__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { MonitorState } from './monitor-state.js';
import type { KeptPredictions } from './kept-predictions.js';

export const CONSUME_SPAN_NAME = 'infermesh.predictions consume';
/** Records are stored a little after the router stamps them (it batches for up to 50 ms, and retries): read from a minute earlier. */
const STORE_DELAY_MARGIN_MS = 60_000;

export interface PredictionConsumerOptions {
  bus: Bus;
  state: MonitorState;
  store: SnapshotStore;
  logger: Logger;
  snapshotIntervalMs: number;
  heartbeatWaitMs: number;
  /** Where the predictions feedback joins are kept; none: nothing is kept (accuracy then counts every feedback unknown). */
  kept?: KeptPredictions;
}

export interface PredictionConsumer {
  /** Resolves once the records stored before the start are counted. */
  readonly caughtUp: Promise<void>;
  /** Stops reading, then saves a last snapshot. */
  stop(): Promise<void>;
}

export async function startPredictionConsumer({ bus, state, store, logger, snapshotIntervalMs, heartbeatWaitMs, kept }: PredictionConsumerOptions): Promise<PredictionConsumer> {
  const heartbeats = bus.subscribe(bus.subjects.heartbeats, events.heartbeat, ({ message }) => {
    const { added, references } = state.announce(message);
    const worker = message.workerId.slice(0, 128);
    if (added > 0) logger.info({ worker_id: worker, added, known: state.known.size }, 'learned model versions from a heartbeat');
    for (const r of references) {
      const fields = { worker_id: worker, model: r.model, version: r.version, profile_id: r.profileId.slice(0, 128) };
      if (r.outcome === 'learned') logger.info(fields, 'learned a drift reference from a heartbeat');
      else if (typeof r.outcome === 'object') logger.warn({ ...fields, why: r.outcome.rejected }, 'refused the drift reference of a heartbeat');
    }
  });
  await bus.ensureStreams();
  const position = await streamPosition(bus, 'PREDICTIONS');
  const { windows } = await loadSnapshot(state, store, logger);
  if (state.mark.streamCreated !== position.created) {
    // A stream made again numbers its messages from 1: read it all; the counts so far stay.
    if (state.mark.sequence > 0) logger.warn({ covered: state.mark.sequence }, 'the PREDICTIONS stream was made again since the snapshot; counting it from its start');
    state.mark = { sequence: 0, streamCreated: position.created };
  }
  if (heartbeatWaitMs > 0) await new Promise((resolve) => setTimeout(resolve, heartbeatWaitMs));

  const covered = state.mark.sequence;
  const from = covered === 0 || windows
    ? covered
    : Math.min(covered, (await streamSequenceAt(bus, 'PREDICTIONS', new Date(Date.now() - state.models.windowMaxAgeMs - STORE_DELAY_MARGIN_MS))) - 1);
  const target = position.lastSequence;
  let reachedTarget: () => void = () => undefined;
  // Caught up once the windows are refilled too: a SERVING monitor answers the percentiles it answered before.
  // Nothing stored between the start and the target (a purged or aged-out stream keeps its last sequence
  // while it holds nothing): no message would ever reach the target, so the start is caught up.
  const nothingToRead = Math.max(from + 1, position.firstSequence) > target;
  const caughtUp = nothingToRead ? Promise.resolve() : new Promise<void>((resolve) => (reachedTarget = resolve));
  const handleRecords = recordsHandler(state, logger, kept);
  const handled = (sequence: number) => {
    if (sequence > covered) state.mark = { ...state.mark, sequence };
    if (sequence >= target) reachedTarget();
  };
  logger.info({ covered, from_sequence: from + 1, stream_last_sequence: target, known_models: state.known.size }, 'reading prediction records');

  const replay: StreamReplay = await replayStream(bus, 'PREDICTIONS', events.predictionBatch, { afterSequence: from }, {
    message(delivery) {
      try {
        if (delivery.streamSequence <= covered) for (const record of delivery.message.records) state.recall(record);
        // Records stored before the start are counted without a span each: a first start may read days of them.
        else handleRecords(delivery, delivery.streamSequence > target);
      } finally {
        handled(delivery.streamSequence);
      }
      // Counted already: the next message waits while too many kept predictions are being stored.
      return kept?.room();
    },
    undecodable(sequence, subject, error) {
      // One read again to refill the windows was counted before the snapshot.
      if (sequence > covered) state.undecodable();
      handled(sequence);
      logger.warn({ err: error, stream_seq: sequence, subject: subject.slice(0, 256) }, 'skipped an undecodable PREDICTIONS message');
    },
    failed(sequence, subject, error) {
      handled(sequence);
      logger.error({ err: error, stream_seq: sequence, subject: subject.slice(0, 256) }, 'handling a PREDICTIONS message failed; skipped');
    },
    ended(error) {
      logger.error({ err: error }, 'reading the PREDICTIONS stream stopped');
    },
  });
  void caughtUp.then(() => logger.info({ sequence: state.mark.sequence }, 'prediction records counted up to the start'));

  let saved = { sequence: state.mark.sequence, feedback: state.feedbackMark.sequence };
  let saving: Promise<void> = Promise.resolve();
  let savedCompact = false;
  const save = () => {
    saving = saving.then(async () => {
      if (state.mark.sequence === saved.sequence && state.feedbackMark.sequence === saved.feedback) return;
      // Encoded at once, between two messages (of either stream): the snapshot covers whole messages up to its sequences.
      const covers = { sequence: state.mark.sequence, feedback: state.feedbackMark.sequence };
      const { bytes, windows, compact } = state.encodeWithin(store.maxBytes);
      if (compact !== savedCompact) {
        if (compact) logger.warn({ bytes: bytes.length, max_bytes: store.maxBytes }, 'the snapshot is saved without drift windows and recent accuracy: with them it would not fit one NATS message');
        savedCompact = compact;
      }
      // Not saved before the predictions of the records it covers are stored: after it, they are never put again.
      const puts = kept?.settled();
      try {
        await puts;
        await store.save(bytes);
        saved = covers;
        logger.debug({ sequence: covers.sequence, feedback_sequence: covers.feedback, bytes: bytes.length, windows, compact }, 'saved a snapshot');
      } catch (error) {
        // The previous snapshot stays valid: a restart then reads more of the stream again.
        logger.warn({ err: error, sequence: covers.sequence, feedback_sequence: covers.feedback, bytes: bytes.length, windows, compact }, 'saving a snapshot failed');
      }
    });
    return saving;
  };
  const timer = setInterval(() => void save(), snapshotIntervalMs);
  timer.unref();

  return {
    caughtUp,
    async stop() {
      clearInterval(timer);
      heartbeats.unsubscribe();
      await replay.stop();
      await save();
    },
  };
}

/** Whether the percentile windows came with the snapshot (true with no snapshot: there is nothing to refill). */
async function loadSnapshot(state: MonitorState, store: SnapshotStore, logger: Logger): Promise<{ windows: boolean }> {
  const bytes = await store.load();
  if (!bytes) {
    logger.info('no snapshot: counting the PREDICTIONS stream from its start');
    return { windows: true };
  }
  try {
    const { windows } = state.restore(bytes);
    logger.info({ sequence: state.mark.sequence, series: state.models.seriesCount, bytes: bytes.length, windows }, 'loaded the snapshot');
    return { windows };
  } catch (error) {
    // Counting the stream again from its start gives right counts for what it still holds.
    logger.error({ err: error, bytes: bytes.length }, 'the snapshot could not be read; counting the PREDICTIONS stream from its start');
    return { windows: true };
  }
}

/**
 * Counts each record of a message, in a CONSUMER span per record when `traced`. A record
 * that cannot be counted is counted as failed and skipped: no record can hold back the
 * ones after it. One log line per message, whatever it holds.
 */
export function recordsHandler(state: MonitorState, logger: Logger, kept?: Pick<KeptPredictions, 'keep'>): (delivery: Delivery<PredictionBatch__Output>, traced?: boolean) => void {
  const tracer = trace.getTracer('infermesh-monitor');
  return (delivery, traced = true) => {
    let invalid = 0;
    let failed = 0;
    let firstError: unknown;
    const count = (record: PredictionRecord__Output, span?: Span) => {
      try {
        const outcome = state.count(record);
        span?.setAttribute('infermesh.record.outcome', outcome);
        if (outcome === 'invalid') invalid += 1;
        // A shadow's record is not the client's answer: feedback is joined with the client's.
        else if (outcome === 'counted') kept?.keep(record);
      } catch (error) {
        state.drop('failed');
        failed += 1;
        firstError ??= error;
        span?.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        if (error instanceof Error) span?.recordException(error);
      }
    };
    for (const record of delivery.message.records) {
      if (!traced) count(record);
      else {
        tracer.startActiveSpan(CONSUME_SPAN_NAME, { kind: SpanKind.CONSUMER, attributes: spanAttributes(delivery.subject, record) }, recordContext(record, delivery.context), (span) => {
          count(record, span);
          span.end();
        });
      }
    }
    if (invalid > 0) logger.warn({ stream_seq: delivery.streamSequence, invalid }, 'counted prediction records as invalid');
    if (failed > 0) logger.error({ err: firstError, stream_seq: delivery.streamSequence, failed }, 'counting prediction records failed; skipped them');
  };
}

function spanAttributes(subject: string, record: PredictionRecord__Output) {
  return {
    'messaging.system': 'nats',
    'messaging.operation.type': 'process',
    'messaging.destination.name': subject.slice(0, 256),
    'infermesh.model': record.model.slice(0, 128),
    'infermesh.version': record.version.slice(0, 128),
    'infermesh.request_id': record.requestId.slice(0, 128),
  };
}

/** The record's own trace context (set by the router per record), else the message's. */
function recordContext(record: PredictionRecord__Output, fallback: Context): Context {
  if (!record.traceparent) return fallback;
  return propagation.extract(ROOT_CONTEXT, { traceparent: record.traceparent });
}
