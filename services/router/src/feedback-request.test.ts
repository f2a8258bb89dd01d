/** The router's FeedbackRequest reader, against the protobufjs codec the rest of the mesh uses. */
import { describe, expect, it } from 'vitest';
import type { MethodDefinition } from '@grpc/grpc-js';
import { feedbackService, type FeedbackRequest, type FeedbackResponse } from '@infermesh/contracts';
import { MAX_FEEDBACK_ITEMS, MAX_ITEM_LABELS, labelCount, labelOf, readFeedbackItems, readFeedbackRequest, type RawFeedbackItem } from './feedback-request.js';

const codec = feedbackService().Feedback as unknown as MethodDefinition<FeedbackRequest, FeedbackResponse>;
const encode = (request: FeedbackRequest) => codec.requestSerialize(request);
const labels = (item: RawFeedbackItem) => Array.from({ length: labelCount(item) }, (_, i) => labelOf(item, i).toString('utf8'));

/** The items of `bytes`, read as the handler reads them once the key is checked. */
function itemsOf(bytes: Buffer): RawFeedbackItem[] {
  const read = readFeedbackItems(readFeedbackRequest(bytes));
  if ('malformed' in read) throw new Error(read.malformed);
  return read.items;
}

describe('readFeedbackRequest', () => {
  it('finds where each item is and reads none of them (it runs for every caller, before the key is checked)', () => {
    const items = [{ modelName: 'iris', requestId: 'r1', labels: ['setosa'] }, { modelName: 'iris', requestId: 'r2', labels: Array(5000).fill('x') }];
    const bytes = encode({ items });
    const read = readFeedbackRequest(bytes);
    expect(Object.keys(read).sort()).toEqual(['bytes', 'itemBounds']);
    // Each item's bounds hold the item's own encoding (the tag and length before it are the request's).
    expect(read.itemBounds.map(([start, end]) => bytes.subarray(start, end))).toEqual(items.map((item) => {
      const alone = encode({ items: [item] });
      return alone.subarray(alone.length - (read.itemBounds[items.indexOf(item)][1] - read.itemBounds[items.indexOf(item)][0]));
    }));
  });

  it('refuses a request without items', () => {
    expect(readFeedbackRequest(encode({ items: [] })).malformed).toBe('the request has no items: send 1 to 1000');
  });

  it('refuses a request of more than 1000 items by count, naming it', () => {
    const items = Array.from({ length: MAX_FEEDBACK_ITEMS + 1 }, (_, i) => ({ modelName: 'iris', requestId: `r${i}`, labels: ['setosa'] }));
    expect(readFeedbackRequest(encode({ items })).malformed).toBe('the request has more than 1000 items, over the limit of 1000 per call');
    expect(readFeedbackRequest(encode({ items: items.slice(0, MAX_FEEDBACK_ITEMS) })).itemBounds).toHaveLength(MAX_FEEDBACK_ITEMS);
  });

  it('refuses a request at its 1001st item, without reading on (64 MB of empty items)', () => {
    const bytes = Buffer.concat([Buffer.alloc(2 * (MAX_FEEDBACK_ITEMS + 1), Buffer.from([0x0a, 0x00])), Buffer.from([0x0a, 0x7f])]);
    // Read to the end, the last item (127 bytes claimed, none there) would make it "not a FeedbackRequest".
    expect(readFeedbackRequest(bytes).malformed).toBe('the request has more than 1000 items, over the limit of 1000 per call');
  });

  it('skips a few fields it does not know, and refuses a request of many', () => {
    const item = encode({ items: [{ modelName: 'iris', requestId: 'r1', labels: ['setosa'] }] });
    const unknown = (count: number) => Buffer.alloc(2 * count, Buffer.from([0x10, 0x01])); // field 2, varint 1
    expect(readFeedbackRequest(Buffer.concat([unknown(64), item])).itemBounds).toHaveLength(1);
    expect(readFeedbackRequest(Buffer.concat([unknown(65), item])).malformed).toBe('the request has more than 64 fields that are not items');
  });

  it('refuses bytes that are not a FeedbackRequest instead of throwing', () => {
    const bytes = encode({ items: [{ modelName: 'iris', requestId: 'r1', labels: ['setosa'] }] });
    expect(readFeedbackRequest(bytes.subarray(0, bytes.length - 2)).malformed).toMatch(/^the request is not a FeedbackRequest: /);
  });
});

describe('readFeedbackItems', () => {
  it('gives each item\'s model, request id and labels as the bytes sent, in order', () => {
    const items = itemsOf(encode({ items: [
      { modelName: 'iris', requestId: 'r1', labels: ['setosa'] },
      { modelName: 'text-direction', requestId: 'r2', labels: ['upright', 'rotated_180'] },
    ] }));
    expect(items.map((item) => ({ model: item.modelName.toString(), id: item.requestId.toString(), labels: labels(item), overLimit: item.overLimit }))).toEqual([
      { model: 'iris', id: 'r1', labels: ['setosa'], overLimit: false },
      { model: 'text-direction', id: 'r2', labels: ['upright', 'rotated_180'], overLimit: false },
    ]);
  });

  it('reads an item with no fields as empty ones (proto3 defaults), for the checks to refuse', () => {
    const [item] = itemsOf(encode({ items: [{}] }));
    expect([item.modelName.length, item.requestId.length, labelCount(item)]).toEqual([0, 0, 0]);
  });

  it('stops reading an item at its 1025th label, and marks it over the limit', () => {
    const [item, next] = itemsOf(encode({ items: [{ modelName: 'iris', requestId: 'r1', labels: Array.from({ length: 5000 }, () => 'x') }, { modelName: 'iris', requestId: 'r2', labels: ['y'] }] }));
    expect([labelCount(item), item.overLimit, labels(next)]).toEqual([MAX_ITEM_LABELS, true, ['y']]);
    const [exactly] = itemsOf(encode({ items: [{ modelName: 'iris', requestId: 'r3', labels: Array(MAX_ITEM_LABELS).fill('z') }] }));
    expect([labelCount(exactly), exactly.overLimit]).toEqual([MAX_ITEM_LABELS, false]);
  });

  it('says the request is malformed when an item is not a FeedbackItem', () => {
    // An item of 3 bytes whose label claims 5.
    const read = readFeedbackItems(readFeedbackRequest(Buffer.from([0x0a, 0x03, 0x1a, 0x05, 0x41])));
    expect('malformed' in read && read.malformed).toMatch(/^the request is not a FeedbackRequest: /);
  });
});
