/**
 * What a worker tells the router about a prediction, for its PredictionRecord: the drift
 * bins of its inputs, the profile they were binned with, the predicted labels and the id the
 * client was answered with. Workers are trusted, but a bug in one must not make records
 * (and the NATS messages that carry 256 of them) large, so each field is bounded here and
 * copied out of the batch message it arrived in (a record may wait in memory for a while;
 * a view would keep the whole batch message alive).
 */
import { OUTPUT_SAMPLE_VALUES } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { WorkerAnswer } from './coalescer.js';

/** Drift bins kept per record at most (one byte per input and feature); more are dropped, not cut, so rows stay whole. */
export const MAX_DRIFT_BINS_BYTES = 64 * 1024;
/**
 * A predicted label or a profile id kept at most this long (UTF-8 bytes; longer ones are cut);
 * a longer request id is not kept at all: cut, it is an id no feedback can name (feedback's ids
 * are at most 256 bytes too).
 */
export const MAX_TOLD_STRING_BYTES = 256;
/** A worker answer with oversized drift bins is logged the first time, then once per this many. */
const LOG_EVERY = 1000;

export interface ToldFields {
  driftBins: Buffer;
  profileId: string;
  predictedLabels: string[];
  /** '' when the worker did not say (or said one over MAX_TOLD_STRING_BYTES). */
  requestId: string;
  /** The first values of a label-less model's first output, when the router asked (for shadow agreement). */
  outputSample: number[];
}

const NOTHING_TOLD: ToldFields = { driftBins: Buffer.alloc(0), profileId: '', predictedLabels: [], requestId: '', outputSample: [] };

/** `text` cut to at most `most` UTF-8 bytes, on a character boundary. */
export function cutUtf8(text: string, most: number): string {
  if (text.length * 3 <= most || Buffer.byteLength(text) <= most) return text;
  const bytes = Buffer.from(text);
  let end = most;
  // Back off over continuation bytes (10xxxxxx) to the start of the character cut through.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

export class ToldFieldsReader {
  private oversizedBins = 0;

  constructor(private readonly logger: Logger) {}

  /** The bounded, copied fields of `answer` for a record of a request of `items` items. */
  read(answer: WorkerAnswer | undefined, items: number): ToldFields {
    if (!answer) return NOTHING_TOLD;
    let driftBins = NOTHING_TOLD.driftBins;
    if (answer.driftBins.length > MAX_DRIFT_BINS_BYTES) {
      if (this.oversizedBins++ % LOG_EVERY === 0) {
        this.logger.warn(
          { worker_id: answer.workerId, bytes: answer.driftBins.length, limit: MAX_DRIFT_BINS_BYTES, dropped_total: this.oversizedBins },
          'drift bins over the limit dropped from a prediction record',
        );
      }
    } else if (answer.driftBins.length > 0) {
      driftBins = Buffer.from(answer.driftBins);
    }
    return {
      driftBins,
      profileId: cutUtf8(answer.profileId, MAX_TOLD_STRING_BYTES),
      // One label per input at most: the record's `items` is what feedback is compared with.
      predictedLabels: answer.predictedLabels.slice(0, Math.max(0, items)).map((label) => cutUtf8(label, MAX_TOLD_STRING_BYTES)),
      requestId: Buffer.byteLength(answer.requestId) <= MAX_TOLD_STRING_BYTES ? answer.requestId : '',
      outputSample: answer.outputSample.slice(0, OUTPUT_SAMPLE_VALUES),
    };
  }
}
