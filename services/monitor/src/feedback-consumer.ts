/**
 * Reads the FEEDBACK stream in order and joins each Feedback with the prediction it labels
 * (kept-predictions.ts) into MonitorState.accuracy, from the FEEDBACK sequence the
 * monitor's snapshot covers: like the records, each message is handled once per process
 * (ordered consumer) and the accuracy and its sequence are saved together, so a restart
 * neither applies a feedback twice nor skips one.
 *
 * Started once the prediction consumer has counted the records stored before the start
 * and their predictions are stored: feedback sent while the monitor was down then finds
 * them.
 *
 * The grace wait: a feedback can reach the monitor before its prediction is kept (routers
 * batch records, and spool them while NATS is down). A feedback whose prediction is not
 * found, while it is younger than `graceMs`, waits until it is that old and is looked up
 * again; feedback after it waits behind it (order is what makes the stream sequence a
 * mark), so the accuracy lags the feedback by at most the grace. Then it counts as
 * `expired` when its request id is a UUIDv7 older than the retention, else `unknown`.
 * Feedback for a request id its client used for more than one prediction counts as
 * `ambiguous` (kept-predictions.ts): joining either could be wrong.
 */
import { events, replayStream, streamPosition, type Bus, type Delivery, type StreamReplay } from '@infermesh/bus';
import type { Feedback__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { MonitorState } from './monitor-state.js';
import { AMBIGUOUS, keptPredictionKey, type KeptPredictions } from './kept-predictions.js';

export interface FeedbackConsumerOptions {
  bus: Bus;
  state: MonitorState;
  kept: Pick<KeptPredictions, 'get' | 'retentionMs'>;
  logger: Logger;
  /** How long a feedback whose prediction is not found waits for it (MONITOR_FEEDBACK_GRACE_MS), from when the router took it. */
  graceMs: number;
  now?: () => number;
  /** Wait before looking a prediction up again after NATS failed to answer. */
  lookupRetryMs?: number;
  /**
   * Resolves once this monitor has read, and kept, every prediction record stored so far
   * (see server.ts). Asked before a feedback is called unknown: a busy monitor that lags
   * behind the PREDICTIONS stream has not kept the prediction yet, however old the feedback.
   */
  predictionsRead?: () => Promise<void>;
}

export interface FeedbackConsumer {
  /** Stops reading; a feedback waiting for its prediction is left for the next start (its sequence is not covered). */
  stop(): Promise<void>;
}

/** The stop came while a feedback was in hand: it is not handled, and its sequence stays uncovered. */
class Stopped extends Error {
  override readonly name = 'Stopped';
}

/** The time a UUIDv7 names (its first 48 bits, Unix milliseconds); undefined for any other id. */
export function uuidV7Time(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

export async function startFeedbackConsumer({ bus, state, kept, logger, graceMs, now = Date.now, lookupRetryMs = 1000, predictionsRead }: FeedbackConsumerOptions): Promise<FeedbackConsumer> {
  await bus.ensureStreams();
  const position = await streamPosition(bus, 'FEEDBACK');
  if (state.feedbackMark.streamCreated !== position.created) {
    // A stream made again numbers its messages from 1: read it all; the accuracy so far stays.
    if (state.feedbackMark.sequence > 0) logger.warn({ covered: state.feedbackMark.sequence }, 'the FEEDBACK stream was made again since the snapshot; joining it from its start');
    state.feedbackMark = { sequence: 0, streamCreated: position.created };
  }
  const abort = new AbortController();
  const stopped = () => {
    if (abort.signal.aborted) throw new Stopped('the feedback consumer stopped');
  };
  const wait = (ms: number) =>
    new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(new Stopped('the feedback consumer stopped'));
      };
      const timer = setTimeout(() => {
        abort.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      abort.signal.addEventListener('abort', onAbort, { once: true });
    });

  /** The kept prediction under `key`; NATS failing to answer is retried (a feedback is never counted unknown because NATS blinked). */
  async function lookup(key: string) {
    let failingSince = 0;
    for (;;) {
      stopped();
      try {
        const found = await kept.get(key);
        if (failingSince) logger.info({ failed_for_ms: now() - failingSince }, 'looking up kept predictions works again');
        return found;
      } catch (error) {
        if (!failingSince) logger.warn({ err: error }, 'looking up a kept prediction failed; trying again');
        failingSince ||= now();
        await wait(lookupRetryMs);
      }
    }
  }

  const covered = (sequence: number) => {
    if (sequence > state.feedbackMark.sequence) state.feedbackMark = { ...state.feedbackMark, sequence };
  };

  async function handle({ message: feedback, streamSequence }: Delivery<Feedback__Output>): Promise<void> {
    stopped();
    const key = keptPredictionKey(feedback.clientId, feedback.model, feedback.requestId);
    let prediction = await lookup(key);
    if (!prediction) {
      // From when the router took it; never later than now, so a forged time waits the grace at most.
      const received = Number(feedback.receivedMs);
      const receivedMs = Number.isFinite(received) && received > 0 ? Math.min(received, now()) : now();
      const left = receivedMs + graceMs - now();
      if (left > 0) {
        await wait(left);
        prediction = await lookup(key);
      }
      if (!prediction && predictionsRead) {
        await predictionsRead();
        stopped();
        prediction = await lookup(key);
      }
    }
    // Everything below is synchronous: the accuracy and its mark move together, between two snapshots.
    stopped();
    const model = state.accuracy.modelLabel(feedback.model);
    if (prediction === AMBIGUOUS) {
      state.accuracy.unjoined(feedback.model, 'ambiguous');
      logger.debug({ model, key: key.slice(0, 16) }, 'feedback for a request id used for more than one prediction; not joined');
    } else if (prediction) {
      const outcome = state.accuracy.apply(prediction, feedback.labels);
      if (outcome === 'mismatched') logger.debug({ model, key: key.slice(0, 16), labels: feedback.labels.length, predicted: prediction.predictedLabels.length }, 'feedback labels do not match the prediction\'s inputs');
    } else {
      const issued = uuidV7Time(feedback.requestId);
      const outcome = issued !== undefined && issued < now() - kept.retentionMs ? 'expired' : 'unknown';
      state.accuracy.unjoined(feedback.model, outcome);
      // A digest, not the id: request ids come from clients.
      logger.debug({ model, key: key.slice(0, 16), outcome }, 'feedback joined no kept prediction');
    }
    covered(streamSequence);
  }

  logger.info({ covered: state.feedbackMark.sequence, stream_last_sequence: position.lastSequence, grace_ms: graceMs, retention_ms: kept.retentionMs }, 'joining feedback');
  const replay: StreamReplay = await replayStream(bus, 'FEEDBACK', events.feedback, { afterSequence: state.feedbackMark.sequence }, {
    message: handle,
    undecodable(sequence, subject, error) {
      if (abort.signal.aborted) return;
      state.accuracy.drop('undecodable');
      covered(sequence);
      logger.warn({ err: error, stream_seq: sequence, subject: subject.slice(0, 256) }, 'skipped an undecodable FEEDBACK message');
    },
    failed(sequence, subject, error) {
      if (error instanceof Stopped) return;
      state.accuracy.drop('failed');
      covered(sequence);
      logger.error({ err: error, stream_seq: sequence, subject: subject.slice(0, 256) }, 'joining a FEEDBACK message failed; skipped');
    },
    ended(error) {
      logger.error({ err: error }, 'reading the FEEDBACK stream stopped');
    },
  });

  return {
    async stop() {
      abort.abort();
      await replay.stop();
    },
  };
}
