/** The router's FeedbackRequest reader, against the protobufjs codec the rest of the mesh uses. */
import { describe, expect, it } from 'vitest';
import type { MethodDefinition } from '@grpc/grpc-js';
import { feedbackService, type FeedbackRequest, type FeedbackResponse } from '@infermesh/contracts';
import { MAX_FEEDBACK_ITEMS, MAX_ITEM_LABELS, readFeedbackRequest } from './feedback-request.js';

const codec = feedbackService().Feedback as unknown as MethodDefinition<FeedbackRequest, FeedbackResponse>;
const encode = (request: FeedbackRequest) => codec.requestSerialize(request);
const strings = (buffers: Buffer[]) => buffers.map((b) => b.toString('utf8'));

describe('readFeedbackRequest', () => {
  it('gives each item\'s model, request id and labels as the bytes sent, in order', () => {
    const read = readFeedbackRequest(encode({ items: [
      { modelName: 'iris', requestId: 'r1', labels: ['setosa'] },
      { modelName: 'text-direction', requestId: 'r2', labels: ['upright', 'rotated_180'] },
    ] }));
    expect(read.malformed).toBeUndefined();
    expect(read.items.map((item) => ({ model: item.modelName.toString(), id: item.requestId.toString(), labels: strings(item.labels), count: item.labelCount }))).toEqual([
      { model: 'iris', id: 'r1', labels: ['setosa'], count: 1 },
      { model: 'text-direction', id: 'r2', labels: ['upright', 'rotated_180'], count: 2 },
    ]);
  });

  it('reads an item with no fields as empty ones (proto3 defaults), for the checks to refuse', () => {
    const [item] = readFeedbackRequest(encode({ items: [{}] })).items;
    expect([item.modelName.length, item.requestId.length, item.labelCount]).toEqual([0, 0, 0]);
  });

  it('refuses a request without items', () => {
    expect(readFeedbackRequest(encode({ items: [] })).malformed).toBe('the request has no items: send 1 to 1000');
  });

  it('refuses a request of more than 1000 items by count, naming it', () => {
    const items = Array.from({ length: MAX_FEEDBACK_ITEMS + 1 }, (_, i) => ({ modelName: 'iris', requestId: `r${i}`, labels: ['setosa'] }));
    expect(readFeedbackRequest(encode({ items }))).toEqual({ items: [], malformed: 'the request has 1001 items, over the limit of 1000 per call' });
    expect(readFeedbackRequest(encode({ items: items.slice(0, MAX_FEEDBACK_ITEMS) })).items).toHaveLength(MAX_FEEDBACK_ITEMS);
  });

  it('keeps no more labels of an item than it takes to refuse it, and counts them all', () => {
    const [item] = readFeedbackRequest(encode({ items: [{ modelName: 'iris', requestId: 'r1', labels: Array.from({ length: 5000 }, () => 'x') }] })).items;
    expect([item.labels.length, item.labelCount]).toEqual([MAX_ITEM_LABELS + 1, 5000]);
  });

  it('refuses bytes that are not a FeedbackRequest instead of throwing', () => {
    const bytes = encode({ items: [{ modelName: 'iris', requestId: 'r1', labels: ['setosa'] }] });
    expect(readFeedbackRequest(bytes.subarray(0, bytes.length - 2)).malformed).toMatch(/^the request is not a FeedbackRequest: /);
  });
});
