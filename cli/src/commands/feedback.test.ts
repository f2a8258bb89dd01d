/** How `infermesh feedback` reads a line of the labels file, and what it counts as a failure. */
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import type { FeedbackRequest, FeedbackResponse__Output, FeedbackServiceClient } from '@infermesh/contracts';
import { Tally, formatSummary, outcomeOf, parseLabelLine, send } from './feedback.js';

describe('parseLabelLine', () => {
  it('reads one label as the labels of a one-input request', () => {
    expect(parseLabelLine('{"id": "r1", "label": "setosa"}', 'iris')).toEqual({ item: { modelName: 'iris', requestId: 'r1', labels: ['setosa'] } });
  });

  it('reads a list of labels, one per input, and a model of the line\'s own over --model', () => {
    expect(parseLabelLine('{"id": "r2", "labels": ["upright", "rotated_180"], "model": "text-direction"}', 'iris')).toEqual({
      item: { modelName: 'text-direction', requestId: 'r2', labels: ['upright', 'rotated_180'] },
    });
  });

  it('skips a blank line', () => {
    expect(parseLabelLine('   ', 'iris')).toBeUndefined();
  });

  it.each([
    ['{"id": "r1", "label": "setosa"', /^not JSON: /],
    ['["r1", "setosa"]', /^not a JSON object$/],
    ['{"id": 7, "label": "setosa"}', /^"id" must be a non-empty string/],
    ['{"id": "r1"}', /^give either "label" \(one input\) or "labels"/],
    ['{"id": "r1", "label": "a", "labels": ["a"]}', /^give either "label"/],
    ['{"id": "r1", "labels": []}', /^"labels" must be a non-empty list of strings$/],
    ['{"id": "r1", "label": 3}', /^"label" must be a string$/],
  ])('refuses %s, saying why', (line, why) => {
    const parsed = parseLabelLine(line, 'iris');
    expect(parsed && 'error' in parsed ? parsed.error : parsed).toMatch(why);
  });

  it('refuses a line without a model when --model is not given, saying where to give one', () => {
    expect(parseLabelLine('{"id": "r1", "label": "setosa"}')).toEqual({ error: 'no model: give "model" on the line, or --model' });
  });
});

describe('Tally', () => {
  it('keeps the lowest line numbers of each kind of failure, in order, whatever order they are answered in', () => {
    const tally = new Tally();
    for (const line of [9, 3, 12, 1, 7, 5, 2]) tally.add('invalid', line, `why ${line}`);
    expect(tally.examples.invalid?.map((e) => e.line)).toEqual([1, 2, 3, 5, 7]);
  });

  it('counts stored and already labelled lines as done, the rest as failures with their first examples', () => {
    const tally = new Tally();
    tally.add(outcomeOf(grpc.status.OK), 1);
    tally.add(outcomeOf(grpc.status.ALREADY_EXISTS), 2, 'request r2 was already labelled');
    for (let line = 3; line < 10; line++) tally.add(outcomeOf(grpc.status.INVALID_ARGUMENT), line, 'label 0 is empty');
    tally.blank++;
    expect([tally.done, tally.failures, tally.examples.invalid?.length, tally.examples.already_labelled]).toEqual([10, 7, 5, undefined]);
    const text = formatSummary({ file: 'labels.jsonl', lines: 10, seconds: 1, counts: tally.counts, examples: tally.examples });
    expect(text.split('\n').slice(0, 3)).toEqual([
      '1 stored, 1 already labelled, 7 invalid, 0 not found, 0 unavailable  (10 lines of labels.jsonl in 1.0 s, 10.0 lines/s)',
      'invalid (first 5 of 7):',
      '  line 3: label 0 is empty',
    ]);
  });
});

describe('send', () => {
  /** A stand-in router: each call is answered by the next of `answers` (a status code per item, or a whole-call error). */
  function router(answers: ((request: FeedbackRequest) => FeedbackResponse__Output | grpc.ServiceError)[]): { client: FeedbackServiceClient; calls: FeedbackRequest[] } {
    const calls: FeedbackRequest[] = [];
    const Feedback = (request: FeedbackRequest, _m: grpc.Metadata, _o: grpc.CallOptions, callback: (e: grpc.ServiceError | null, r?: FeedbackResponse__Output) => void) => {
      calls.push(request);
      const answer = answers[calls.length - 1](request);
      setImmediate(() => ('code' in answer ? callback(answer) : callback(null, answer)));
    };
    return { client: { Feedback } as unknown as FeedbackServiceClient, calls };
  }
  const each = (code: number) => (request: FeedbackRequest) => ({ results: (request.items ?? []).map(() => ({ statusCode: code, errorMessage: code ? 'why' : '' })) });
  const lines = [1, 2, 3].map((number) => ({ number, item: { modelName: 'iris', requestId: `r${number}`, labels: ['setosa'] } }));

  it('sends the items answered UNAVAILABLE again, and only those', async () => {
    const { client, calls } = router([
      (request) => ({ results: (request.items ?? []).map((_, i) => ({ statusCode: i === 1 ? grpc.status.UNAVAILABLE : 0, errorMessage: '' })) }),
      each(grpc.status.OK),
    ]);
    const tally = new Tally();
    await send(client, lines, tally);
    expect(calls.map((c) => c.items?.map((i) => i.requestId))).toEqual([['r1', 'r2', 'r3'], ['r2']]);
    expect(tally.counts.stored).toBe(3);
  });

  it('sends a call again when the router could not be reached, and stops on an error that a retry cannot mend', async () => {
    const unreachable = Object.assign(new Error('unreachable'), { code: grpc.status.UNAVAILABLE, details: 'no connection', metadata: new grpc.Metadata() });
    const { client, calls } = router([() => unreachable, each(grpc.status.OK)]);
    await send(client, lines, new Tally());
    expect(calls).toHaveLength(2);
    const unknownKey = Object.assign(new Error('unknown API key'), { code: grpc.status.UNAUTHENTICATED, details: 'unknown API key', metadata: new grpc.Metadata() });
    await expect(send(router([() => unknownKey]).client, lines, new Tally())).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });
});
