/**
 * The router's FeedbackService definition: the generated one, except that a FeedbackRequest
 * is read here at the wire level, in two steps. The deserializer, which runs for any caller,
 * reads only where each item is (work in proportion to the items, 1000 at most, never to the
 * labels), and refuses a request with too many by count. Its items are read once the call's
 * key is checked (readFeedbackItems), each label only as its bounds until the item's model is
 * checked; strings are kept as bytes until they are checked (proto3 requires valid UTF-8;
 * decoded first, a bad label would silently become U+FFFD).
 */
import type * as grpc from '@grpc/grpc-js';
import { feedbackService, WireReader } from '@infermesh/contracts';

/** Items of one Feedback call (feedback.proto). */
export const MAX_FEEDBACK_ITEMS = 1000;
/** Labels of one item, at most (a model without a max batch size is held to this too). */
export const MAX_ITEM_LABELS = 1024;

/** One FeedbackItem as sent: its fields as bytes (views into the request), not yet checked. */
export interface RawFeedbackItem {
  modelName: Buffer;
  requestId: Buffer;
  /**
   * Labels read, at most MAX_ITEM_LABELS (then `overLimit`): their start and end offsets in
   * `source`, in pairs, so a label costs no Buffer until its item passed the model checks.
   */
  labelBounds: number[];
  /** More than MAX_ITEM_LABELS labels: reading stopped there, and the item is refused. */
  overLimit: boolean;
  source: Buffer;
}

/** A FeedbackRequest as the deserializer leaves it: where its items are, or why it cannot be taken as a whole (INVALID_ARGUMENT). */
export interface RawFeedbackRequest {
  bytes: Buffer;
  /** Each item's start and end offsets in `bytes`. */
  itemBounds: [number, number][];
  malformed?: string;
}

/** Fields of a request other than its items that are skipped at most (unknown to this router). */
const MAX_OTHER_FIELDS = 64;
/** The wire type of length-delimited fields (strings, bytes, messages). */
const LEN = 2;
const EMPTY = Buffer.alloc(0);

/** The label `index` of `item`, as sent. */
export function labelOf(item: RawFeedbackItem, index: number): Buffer {
  return item.source.subarray(item.labelBounds[2 * index], item.labelBounds[2 * index + 1]);
}

export function labelCount(item: RawFeedbackItem): number {
  return item.labelBounds.length / 2;
}

function readItem(buf: Buffer, start: number, end: number): RawFeedbackItem {
  const reader = new WireReader(buf, start, end);
  const item: RawFeedbackItem = { modelName: EMPTY, requestId: EMPTY, labelBounds: [], overLimit: false, source: buf };
  while (!reader.done) {
    const { field, type } = reader.tag();
    if (type !== LEN || field > 3) {
      reader.skip(type);
      continue;
    }
    // A string field sent twice: the last one counts (proto3).
    if (field === 1) item.modelName = reader.bytes();
    else if (field === 2) item.requestId = reader.bytes();
    else if (item.labelBounds.length === 2 * MAX_ITEM_LABELS) {
      // Refused whatever else it holds: the rest is not read.
      item.overLimit = true;
      break;
    } else item.labelBounds.push(...reader.delimited());
  }
  return item;
}

/** Reads where a FeedbackRequest's items are, not the items; never throws (the deserializer of every call). */
export function readFeedbackRequest(bytes: Buffer): RawFeedbackRequest {
  try {
    const reader = new WireReader(bytes);
    const itemBounds: [number, number][] = [];
    let others = 0;
    while (!reader.done) {
      const { field, type } = reader.tag();
      if (field !== 1 || type !== LEN) {
        // Fields of a later FeedbackRequest are skipped, a few of them: not 64 MB of them.
        if (++others > MAX_OTHER_FIELDS) return { bytes, itemBounds: [], malformed: `the request has more than ${MAX_OTHER_FIELDS} fields that are not items` };
        reader.skip(type);
        continue;
      }
      // Refused at the first item over the limit: 64 MB of empty items is not walked to the end.
      if (itemBounds.length === MAX_FEEDBACK_ITEMS) return { bytes, itemBounds: [], malformed: `the request has more than ${MAX_FEEDBACK_ITEMS} items, over the limit of ${MAX_FEEDBACK_ITEMS} per call` };
      itemBounds.push(reader.delimited());
    }
    if (itemBounds.length === 0) return { bytes, itemBounds: [], malformed: `the request has no items: send 1 to ${MAX_FEEDBACK_ITEMS}` };
    return { bytes, itemBounds };
  } catch (error) {
    // Never throw from a deserializer: grpc-js would answer INTERNAL without saying what was wrong.
    return { bytes, itemBounds: [], malformed: `the request is not a FeedbackRequest: ${(error as Error).message}` };
  }
}

/** The items of a request readFeedbackRequest took, or why they cannot be read (a malformed item: the call is refused). */
export function readFeedbackItems(request: RawFeedbackRequest): { items: RawFeedbackItem[] } | { malformed: string } {
  try {
    return { items: request.itemBounds.map(([start, end]) => readItem(request.bytes, start, end)) };
  } catch (error) {
    return { malformed: `the request is not a FeedbackRequest: ${(error as Error).message}` };
  }
}

type Method = grpc.MethodDefinition<unknown, unknown>;

/** FeedbackService as the router serves it: requests read by readFeedbackRequest, answers encoded as generated. */
export function feedbackServiceDefinition(): grpc.ServiceDefinition {
  const generated = feedbackService();
  return { ...generated, Feedback: { ...(generated.Feedback as Method), requestDeserialize: readFeedbackRequest } };
}
