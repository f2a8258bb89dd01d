/**
 * The router's FeedbackService definition: the generated one, except that a FeedbackRequest
 * is read here at the wire level. Its strings are kept as bytes until they are checked
 * (proto3 requires valid UTF-8; decoded first, a bad label would silently become U+FFFD),
 * and a request with too many items or labels is refused by count, before any of them is
 * decoded.
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
  /** At most MAX_ITEM_LABELS + 1 (enough to refuse the item); `labelCount` is the count sent. */
  labels: Buffer[];
  labelCount: number;
}

/** A FeedbackRequest: its items, or why it cannot be taken as a whole (INVALID_ARGUMENT). */
export interface RawFeedbackRequest {
  items: RawFeedbackItem[];
  malformed?: string;
}

/** The wire type of length-delimited fields (strings, bytes, messages). */
const LEN = 2;
const EMPTY = Buffer.alloc(0);

function readItem(buf: Buffer, start: number, end: number): RawFeedbackItem {
  const reader = new WireReader(buf, start, end);
  const item: RawFeedbackItem = { modelName: EMPTY, requestId: EMPTY, labels: [], labelCount: 0 };
  while (!reader.done) {
    const { field, type } = reader.tag();
    if (type !== LEN || field > 3) {
      reader.skip(type);
      continue;
    }
    const bytes = reader.bytes();
    // A string field sent twice: the last one counts (proto3).
    if (field === 1) item.modelName = bytes;
    else if (field === 2) item.requestId = bytes;
    else if (item.labelCount++ <= MAX_ITEM_LABELS) item.labels.push(bytes);
  }
  return item;
}

/** Reads a FeedbackRequest's items without decoding a string; never throws. */
export function readFeedbackRequest(bytes: Buffer): RawFeedbackRequest {
  try {
    const reader = new WireReader(bytes);
    const ranges: [number, number][] = [];
    let count = 0;
    while (!reader.done) {
      const { field, type } = reader.tag();
      if (field !== 1 || type !== LEN) {
        reader.skip(type);
        continue;
      }
      const range = reader.delimited();
      if (++count <= MAX_FEEDBACK_ITEMS) ranges.push(range);
    }
    if (count === 0) return { items: [], malformed: `the request has no items: send 1 to ${MAX_FEEDBACK_ITEMS}` };
    if (count > MAX_FEEDBACK_ITEMS) return { items: [], malformed: `the request has ${count} items, over the limit of ${MAX_FEEDBACK_ITEMS} per call` };
    return { items: ranges.map(([start, end]) => readItem(bytes, start, end)) };
  } catch (error) {
    // Never throw from a deserializer: grpc-js would answer INTERNAL without saying what was wrong.
    return { items: [], malformed: `the request is not a FeedbackRequest: ${(error as Error).message}` };
  }
}

type Method = grpc.MethodDefinition<unknown, unknown>;

/** FeedbackService as the router serves it: requests read by readFeedbackRequest, answers encoded as generated. */
export function feedbackServiceDefinition(): grpc.ServiceDefinition {
  const generated = feedbackService();
  return { ...generated, Feedback: { ...(generated.Feedback as Method), requestDeserialize: readFeedbackRequest } };
}
