/**
 * infermesh feedback: sends the true labels of earlier requests, from a .jsonl file, to the
 * router's FeedbackService. Each line is `{"id": "...", "label": "setosa"}` or
 * `{"id": "...", "labels": [...]}`, with an optional `"model"` (else --model).
 *
 * The file is read as a stream of UTF-8 lines (millions of lines are fine; CRLF and a byte
 * order mark too; ../lines.ts): lines go in calls of up to ITEMS_PER_CALL items and
 * MAX_CALL_BYTES, CALLS_IN_FLIGHT calls at once. A line that cannot be read (over the limit,
 * not UTF-8, not a label line) is reported with its number and the rest go on. Items the router could not store now
 * (UNAVAILABLE) are sent again a few times; sending again is always safe, since the router
 * stores a request's labels once, so a re-run of the same file answers the lines stored
 * before as "already labelled", which is not a failure.
 *
 * Exit code: 0 when every line was stored or already labelled, 3 when some were not (the
 * summary says which, with line numbers), 1 when it could not run, 130 when interrupted.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { FeedbackItem, FeedbackResponse__Output, FeedbackServiceClient } from '@infermesh/contracts';
import { call, feedbackClient } from '../client.js';
import { Progress } from '../progress.js';
import { readLines } from '../lines.js';

export const ITEMS_PER_CALL = 500;
export const CALLS_IN_FLIGHT = 4;
/** Tries of one call (or of its items answered UNAVAILABLE) before they count as unavailable. */
const ATTEMPTS = 5;
const FIRST_BACKOFF_MS = 500;
/** Examples kept of each kind of failure, for the summary. */
const EXAMPLES = 5;
/**
 * A line longer than this (UTF-8 bytes) is refused unread, and never held: 1024 labels of 256
 * bytes (the router's limits) fit well within it.
 */
const MAX_LINE_BYTES = 512 * 1024;
/**
 * A call carries at most this many bytes of items, however few: gRPC's usual limit on a
 * message, well within the router's (GRPC_MAX_MESSAGE_BYTES, 64 MiB by default). 500 lines of
 * many long labels would pass it, and the router would refuse the whole call.
 */
export const MAX_CALL_BYTES = 4 * 1024 * 1024;
/** A message in the summary is shown up to this many characters. */
const MAX_SHOWN = 300;

export interface FeedbackOptions {
  address: string;
  file: string;
  /** The model of lines without their own "model". */
  model?: string;
  json: boolean;
}

/** What became of a line. */
export type Outcome = 'stored' | 'already_labelled' | 'invalid' | 'not_found' | 'denied' | 'unavailable' | 'failed';
const OUTCOMES: readonly Outcome[] = ['stored', 'already_labelled', 'invalid', 'not_found', 'denied', 'unavailable', 'failed'];
const SUCCESS: ReadonlySet<Outcome> = new Set(['stored', 'already_labelled']);
const WORDS: Record<Outcome, string> = {
  stored: 'stored', already_labelled: 'already labelled', invalid: 'invalid', not_found: 'not found', denied: 'denied', unavailable: 'unavailable', failed: 'failed',
};

export interface FeedbackSummary {
  file: string;
  /** Lines read, blank ones included. */
  lines: number;
  seconds: number;
  counts: Record<Outcome, number>;
  /** The first few lines of each kind of failure, with why. */
  examples: Partial<Record<Outcome, { line: number; message: string }[]>>;
}

/** One line: the item it sends, or why it cannot be sent; undefined for a blank line. */
export function parseLabelLine(text: string, model?: string): { item: FeedbackItem } | { error: string } | undefined {
  if (!text.trim()) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { error: `not JSON: ${(error as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { error: 'not a JSON object' };
  const line = parsed as Record<string, unknown>;
  if (typeof line.id !== 'string' || !line.id) return { error: '"id" must be a non-empty string: the id the prediction was answered with' };
  if ((line.label === undefined) === (line.labels === undefined)) return { error: 'give either "label" (one input) or "labels" (one per input of the request)' };
  let labels: string[];
  if (line.label !== undefined) {
    if (typeof line.label !== 'string') return { error: '"label" must be a string' };
    labels = [line.label];
  } else {
    if (!Array.isArray(line.labels) || line.labels.length === 0 || !line.labels.every((l) => typeof l === 'string')) return { error: '"labels" must be a non-empty list of strings' };
    labels = line.labels as string[];
  }
  if (line.model !== undefined && (typeof line.model !== 'string' || !line.model)) return { error: '"model" must be a non-empty string' };
  const modelName = (line.model as string | undefined) ?? model;
  if (!modelName) return { error: 'no model: give "model" on the line, or --model' };
  return { item: { modelName, requestId: line.id, labels } };
}

export function outcomeOf(code: number): Outcome {
  switch (code) {
    case grpc.status.OK:
      return 'stored';
    case grpc.status.ALREADY_EXISTS:
      return 'already_labelled';
    case grpc.status.INVALID_ARGUMENT:
      return 'invalid';
    case grpc.status.NOT_FOUND:
      return 'not_found';
    case grpc.status.PERMISSION_DENIED:
      return 'denied';
    case grpc.status.UNAVAILABLE:
      return 'unavailable';
    default:
      return 'failed';
  }
}

/** Counts lines by outcome, keeping the first few failing lines of each kind. */
export class Tally {
  readonly counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  readonly examples: Partial<Record<Outcome, { line: number; message: string }[]>> = {};
  blank = 0;

  add(outcome: Outcome, line: number, message = ''): void {
    this.counts[outcome]++;
    if (SUCCESS.has(outcome)) return;
    // The lowest line numbers, in order: calls in flight answer out of order.
    const kept = (this.examples[outcome] ??= []);
    if (kept.length === EXAMPLES && line > kept[EXAMPLES - 1].line) return;
    const at = kept.findIndex((k) => k.line > line);
    kept.splice(at < 0 ? kept.length : at, 0, { line, message });
    if (kept.length > EXAMPLES) kept.pop();
  }

  /** Lines dealt with (answered, refused here, or blank). */
  get done(): number {
    return OUTCOMES.reduce((sum, o) => sum + this.counts[o], this.blank);
  }

  get failures(): number {
    return OUTCOMES.reduce((sum, o) => sum + (SUCCESS.has(o) ? 0 : this.counts[o]), 0);
  }
}

export interface Line {
  number: number;
  item: FeedbackItem;
}

/**
 * The most an item takes in a FeedbackRequest: each string's bytes, its tag and length (5 bytes
 * at most each for these sizes), and the item's own tag and length.
 */
export function itemBytes(item: FeedbackItem): number {
  const strings = [item.modelName ?? '', item.requestId ?? '', ...(item.labels ?? [])];
  return strings.reduce((sum, text) => sum + Buffer.byteLength(text) + 5, 5);
}

/** `text` as it may be printed on a terminal: control characters escaped (a binary file's bytes echoed by JSON.parse), and bounded. */
function printable(text: string): string {
  const shown = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
  return shown.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Whether a failed call may succeed if sent again (sending again is always safe). */
function retryable(error: unknown): boolean {
  const code = (error as grpc.ServiceError)?.code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.RESOURCE_EXHAUSTED;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One call's lines, sent until each is answered: the whole call again when it failed in a
 * way that may pass, and the items answered UNAVAILABLE again, up to ATTEMPTS tries. A call
 * that fails otherwise (a wrong key) stops the command.
 */
export async function send(client: FeedbackServiceClient, lines: Line[], tally: Tally): Promise<void> {
  let pending = lines;
  for (let attempt = 1; pending.length > 0; attempt++) {
    let response: FeedbackResponse__Output;
    try {
      response = await call<{ items: FeedbackItem[] }, FeedbackResponse__Output>(client, client.Feedback, { items: pending.map((l) => l.item) }, 60_000);
    } catch (error) {
      if (!retryable(error) || attempt >= ATTEMPTS) throw error;
      await pause(FIRST_BACKOFF_MS * 2 ** (attempt - 1));
      continue;
    }
    if (response.results.length !== pending.length) throw new Error(`the router answered ${response.results.length} results to ${pending.length} items`);
    const again: Line[] = [];
    response.results.forEach((result, i) => {
      const outcome = outcomeOf(result.statusCode);
      if (outcome === 'unavailable' && attempt < ATTEMPTS) again.push(pending[i]);
      else tally.add(outcome, pending[i].number, result.errorMessage);
    });
    pending = again;
    if (pending.length > 0) await pause(FIRST_BACKOFF_MS * 2 ** (attempt - 1));
  }
}

/** Lines in the file (a last line without a newline counts), read as a stream. */
async function countLines(file: string): Promise<number> {
  let lines = 0;
  let last = 0x0a;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) lines++;
    if (chunk.length > 0) last = chunk[chunk.length - 1];
  }
  return last === 0x0a ? lines : lines + 1;
}

export function formatSummary(summary: FeedbackSummary): string {
  const { counts } = summary;
  const shown = OUTCOMES.filter((o) => counts[o] > 0 || ['stored', 'already_labelled', 'invalid', 'not_found', 'unavailable'].includes(o));
  const rate = summary.lines / Math.max(summary.seconds, 0.001);
  const out = [`${shown.map((o) => `${counts[o]} ${WORDS[o]}`).join(', ')}  (${summary.lines} lines of ${summary.file} in ${summary.seconds.toFixed(1)} s, ${rate.toFixed(1)} lines/s)`];
  for (const outcome of OUTCOMES) {
    const examples = summary.examples[outcome];
    if (!examples?.length) continue;
    out.push(`${WORDS[outcome]}${counts[outcome] > examples.length ? ` (first ${examples.length} of ${counts[outcome]})` : ''}:`);
    for (const { line, message } of examples) out.push(`  line ${line}: ${printable(message)}`);
  }
  return out.join('\n');
}

/** Runs the command; resolves with its exit code. */
export async function feedback(options: FeedbackOptions): Promise<number> {
  const info = await stat(options.file).catch(() => undefined);
  if (!info?.isFile()) throw new Error(`--file ${options.file} is not a file`);
  const total = await countLines(options.file);
  const progress = new Progress(total, 'feedback');
  const client = feedbackClient(options.address);
  const tally = new Tally();
  const started = Date.now();
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let interrupted = false;
  const onSigint = () => (interrupted = true);
  process.once('SIGINT', onSigint);

  const dispatch = async (lines: Line[]) => {
    const sending: Promise<void> = send(client, lines, tally)
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => {
        inFlight.delete(sending);
        progress.update(tally.done, tally.failures);
      });
    inFlight.add(sending);
    while (inFlight.size >= CALLS_IN_FLIGHT) await Promise.race(inFlight);
  };

  const input = createReadStream(options.file);
  let number = 0;
  let batch: Line[] = [];
  let batchBytes = 0;
  try {
    for await (const line of readLines(input, MAX_LINE_BYTES)) {
      if (failure !== undefined || interrupted) break;
      number = line.number;
      const parsed = 'tooLong' in line
        ? { error: `the line is ${line.tooLong} bytes, over the limit of ${MAX_LINE_BYTES}` }
        : 'notUtf8' in line
          ? { error: 'the line is not valid UTF-8: save the file as UTF-8' }
          : parseLabelLine(line.text, options.model);
      if (parsed === undefined) {
        tally.blank++;
        continue;
      }
      if ('error' in parsed) {
        tally.add('invalid', number, parsed.error);
        continue;
      }
      const bytes = itemBytes(parsed.item);
      if (batch.length > 0 && batchBytes + bytes > MAX_CALL_BYTES) {
        await dispatch(batch);
        batch = [];
        batchBytes = 0;
      }
      batch.push({ number, item: parsed.item });
      batchBytes += bytes;
      if (batch.length >= ITEMS_PER_CALL) {
        await dispatch(batch);
        batch = [];
        batchBytes = 0;
      }
    }
    if (batch.length > 0 && failure === undefined && !interrupted) await dispatch(batch);
    await Promise.all(inFlight);
  } finally {
    input.destroy();
    client.close();
    process.off('SIGINT', onSigint);
  }
  progress.update(tally.done, tally.failures, true);

  const summary: FeedbackSummary = { file: options.file, lines: number, seconds: (Date.now() - started) / 1000, counts: tally.counts, examples: tally.examples };
  if (failure !== undefined) {
    // What was answered before the failure is stored; a re-run sends the rest (and finds those already labelled).
    process.stderr.write(`${formatSummary(summary)}\nstopped: run the same command again to send the rest\n`);
    throw failure;
  }
  console.log(options.json ? JSON.stringify(summary) : formatSummary(summary));
  if (interrupted) {
    process.stderr.write('interrupted: run the same command again to send the rest (lines stored already are answered "already labelled")\n');
    return 130;
  }
  return tally.failures > 0 ? 3 : 0;
}
