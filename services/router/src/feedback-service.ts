/**
 * The public FeedbackService: a client sends the true labels of requests it made earlier
 * (hours later is normal), and each is stored on the FEEDBACK stream for the monitor to join
 * with its prediction. Served beside GRPCInferenceService, with the same API keys.
 *
 * A call is checked as a whole first (its key, one token of the key's rate per call, 1 to
 * 1000 items); then each item on its own, and answered on its own: its strings, whether the
 * key may call its model, whether the mesh serves the model, how many labels the model
 * takes. Items that pass are published concurrently (at most PUBLISHES_IN_FLIGHT at once);
 * nothing is published before every item is checked. Labels are not inference: they take
 * nothing from a key's quota.
 */
import { isUtf8 } from 'node:buffer';
import type { FeedbackResponse, FeedbackResult } from '@infermesh/contracts';
import { Status, boundedDetails, invalidArgument, statusOf, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import type { RoutingTable } from './routing-table.js';
import { MAX_ITEM_LABELS, labelCount, labelOf, readFeedbackItems, type RawFeedbackItem, type RawFeedbackRequest } from './feedback-request.js';
import type { FeedbackStore, LabelledRequest } from './feedback-store.js';
import { modelNotServed, quote, traceparentOf } from './inference-service.js';
import { openAccess, type AccessControl, type Caller } from './auth/index.js';

/** Publishes of one call in flight at once: enough to hide the round trips, few enough to leave the connection to the records. */
export const PUBLISHES_IN_FLIGHT = 32;
/** model_name, request_id and each label, at most (UTF-8 bytes), as a ModelInferRequest's names and id. */
export const MAX_FEEDBACK_STRING_BYTES = 256;

export interface FeedbackDeps {
  table: RoutingTable;
  store: FeedbackStore;
  logger: Logger;
  /** API keys; without it every call is served (the open API of `npm start`). */
  access?: AccessControl;
}

/** Why an item is refused, as its result. */
class ItemRefused {
  constructor(
    readonly code: Status,
    readonly message: string,
  ) {}
}

const refuse = (message: string) => new ItemRefused(Status.INVALID_ARGUMENT, message);

/** A string field: its text, or why it is refused. */
function text(field: string, bytes: Buffer): string | ItemRefused {
  if (bytes.length === 0) return refuse(`${field} is empty`);
  if (bytes.length > MAX_FEEDBACK_STRING_BYTES) return refuse(`${field} is ${bytes.length} bytes, over the limit of ${MAX_FEEDBACK_STRING_BYTES}`);
  if (!isUtf8(bytes)) return refuse(`${field} is not valid UTF-8`);
  return bytes.toString('utf8');
}

/** The labels an item of `model` may carry: one per input of a request, so at most the model's max batch size. */
function labelLimit(table: RoutingTable, model: string): number {
  const maxBatch = table.model(model)?.maxBatchSize ?? 0;
  return maxBatch > 0 ? Math.min(maxBatch, MAX_ITEM_LABELS) : MAX_ITEM_LABELS;
}

/** Checks an item: its strings, its count of labels, its model (the key's, served, its max batch), then each label. */
function checkItem(item: RawFeedbackItem, caller: Caller, table: RoutingTable): LabelledRequest | ItemRefused {
  // First: reading it stopped there, so its other fields may not have been read.
  if (item.overLimit) return refuse(`more than ${MAX_ITEM_LABELS} labels, over the limit of ${MAX_ITEM_LABELS}`);
  const model = text('model_name', item.modelName);
  if (model instanceof ItemRefused) return model;
  const requestId = text('request_id', item.requestId);
  if (requestId instanceof ItemRefused) return requestId;
  const count = labelCount(item);
  if (count === 0) return refuse('labels is empty: send the true label of each input of the request, in order');
  try {
    // As for inference: a key learns nothing of a model it may not call, not even whether it exists.
    caller.checkModel(model);
  } catch (error) {
    const status = statusOf(error);
    if (status.internal) throw error;
    return new ItemRefused(status.code, status.details);
  }
  if (!table.isKnown(model)) {
    // Just started: a model missing here may not be announced yet. NOT_FOUND would be final to clients.
    if (!table.filled) return new ItemRefused(Status.UNAVAILABLE, 'routing table not yet filled: the router has just started; retry');
    const notFound = modelNotServed(table, model);
    return new ItemRefused(notFound.code, notFound.message);
  }
  const most = labelLimit(table, model);
  if (count > most) return refuse(`${count} labels, but model ${quote(model)} takes at most ${most} inputs per request`);
  const labels: string[] = [];
  for (let i = 0; i < count; i++) {
    const label = text(`label ${i}`, labelOf(item, i));
    if (label instanceof ItemRefused) return label;
    labels.push(label);
  }
  return { model, requestId, labels, clientId: caller.keyId };
}

/** Runs `task` for each of `indexes`, at most `limit` at once, starting none once `signal` is aborted. */
async function forEachBounded(indexes: number[], limit: number, signal: AbortSignal, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < indexes.length && !signal.aborted) await task(indexes[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, indexes.length) }, lane));
}

/** What became of a call's items, for its span and log line (never the labels). */
function countsOf(results: FeedbackResult[]): Record<'stored' | 'already_labelled' | 'refused' | 'unavailable', number> {
  const counts = { stored: 0, already_labelled: 0, refused: 0, unavailable: 0 };
  for (const { statusCode } of results) {
    if (statusCode === Status.OK) counts.stored++;
    else if (statusCode === Status.ALREADY_EXISTS) counts.already_labelled++;
    else if (statusCode === Status.UNAVAILABLE) counts.unavailable++;
    else counts.refused++;
  }
  return counts;
}

export function feedbackHandlers(deps: FeedbackDeps): ServiceHandlers {
  const { table, store, logger } = deps;
  const access = deps.access ?? openAccess;

  async function feedback(request: RawFeedbackRequest, ctx: CallContext): Promise<FeedbackResponse> {
    const caller = access.authorize('Feedback', ctx.metadata);
    if (request.malformed) throw invalidArgument(request.malformed);
    // Read only now: a call without a valid key, or over its key's rate, costs no more than finding its items.
    const read = readFeedbackItems(request);
    if ('malformed' in read) throw invalidArgument(read.malformed);
    const traceparent = traceparentOf(ctx.span);
    const results: FeedbackResult[] = new Array(read.items.length);
    const checked: (LabelledRequest | undefined)[] = read.items.map((item, i) => {
      const outcome = checkItem(item, caller, table);
      if (outcome instanceof ItemRefused) {
        results[i] = { statusCode: outcome.code, errorMessage: boundedDetails(outcome.message) };
        return undefined;
      }
      return outcome;
    });
    // Published in item order on one connection: of a request labelled twice in one call,
    // the stream keeps the first item and answers the second ALREADY_EXISTS.
    const toStore = checked.flatMap((labelled, i) => (labelled ? [i] : []));
    await forEachBounded(toStore, PUBLISHES_IN_FLIGHT, ctx.signal, async (i) => {
      results[i] = await store.store(checked[i]!, traceparent);
    });
    // Cancelled or past its deadline: the wrapper answers with that. Items not yet sent were not
    // stored; those sent may have been, and sending them again is safe.
    ctx.signal.throwIfAborted();

    const counts = countsOf(results);
    ctx.span.setAttributes({
      'infermesh.feedback.items': results.length,
      'infermesh.feedback.stored': counts.stored,
      'infermesh.feedback.already_labelled': counts.already_labelled,
      'infermesh.feedback.refused': counts.refused,
      'infermesh.feedback.unavailable': counts.unavailable,
    });
    if (counts.unavailable > 0) {
      const reason = results.find((r) => r.statusCode === Status.UNAVAILABLE)?.errorMessage;
      logger.warn({ client_id: caller.keyId, items: results.length, ...counts, reason }, 'feedback not stored for some items; the client may send them again');
    } else {
      logger.debug({ client_id: caller.keyId, items: results.length, ...counts }, 'feedback call answered');
    }
    return { results };
  }

  return { Feedback: feedback };
}
