/** How `infermesh feedback` reads a line of the labels file, and what it counts as a failure. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { feedbackService, type FeedbackRequest, type FeedbackRequest__Output, type FeedbackResponse, type FeedbackResponse__Output, type FeedbackServiceClient } from '@infermesh/contracts';
import { MAX_CALL_BYTES, Tally, feedback, formatSummary, outcomeOf, parseLabelLine, send, type FeedbackSummary } from './feedback.js';

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

describe('feedback, against a FeedbackService on real gRPC', () => {
  let server: grpc.Server;
  let address: string;
  let dir: string;
  /** Each call the service took: its items' request ids and labels, and its size on the wire. */
  const calls: { items: FeedbackRequest__Output['items']; bytes: number }[] = [];
  const method = feedbackService().Feedback as unknown as grpc.MethodDefinition<FeedbackRequest, FeedbackResponse>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'feedback-command-'));
    server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    server.addService(feedbackService(), {
      Feedback: (call: grpc.ServerUnaryCall<FeedbackRequest__Output, FeedbackResponse>, callback: grpc.sendUnaryData<FeedbackResponse>) => {
        calls.push({ items: call.request.items, bytes: method.requestSerialize(call.request).length });
        callback(null, { results: call.request.items.map(() => ({ statusCode: 0, errorMessage: '' })) });
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });

  afterAll(async () => {
    server?.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the command on a file of `content`; its exit code and its --json summary. */
  async function run(name: string, content: string | Buffer): Promise<{ code: number; summary: FeedbackSummary }> {
    const file = join(dir, name);
    await writeFile(file, content);
    calls.length = 0;
    const printed = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const code = await feedback({ address, file, model: 'iris', json: true });
      return { code, summary: JSON.parse(String(printed.mock.calls.at(-1)?.[0])) as FeedbackSummary };
    } finally {
      printed.mockRestore();
    }
  }

  it('reads a labels file written on Windows (a byte order mark, CRLF line endings): every line is sent', async () => {
    const { code, summary } = await run('windows.jsonl', `\uFEFF{"id": "w1", "label": "setosa"}\r\n{"id": "w2", "label": "virginica"}\r\n`);
    expect({ code, stored: summary.counts.stored, invalid: summary.counts.invalid }).toEqual({ code: 0, stored: 2, invalid: 0 });
    expect(calls.flatMap((c) => c.items.map((i) => [i.requestId, i.labels]))).toEqual([['w1', ['setosa']], ['w2', ['virginica']]]);
  });

  it(`sends calls of at most ${MAX_CALL_BYTES} bytes: lines of many long labels go in more calls than 500 items would make`, async () => {
    const labels = Array.from({ length: 64 }, (_, i) => `${i}`.padEnd(250, 'x'));
    const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ id: `wide-${i}`, labels }));
    const { code, summary } = await run('wide.jsonl', `${lines.join('\n')}\n`);
    expect({ code, stored: summary.counts.stored }).toEqual({ code: 0, stored: 500 });
    expect(calls.length).toBeGreaterThan(1);
    expect(Math.max(...calls.map((c) => c.bytes))).toBeLessThanOrEqual(MAX_CALL_BYTES);
  });

  it('reports a line over the limit, and one not in UTF-8, by number, and sends the lines around them', async () => {
    const { code, summary } = await run('mixed.jsonl', Buffer.concat([
      Buffer.from(`{"id": "m1", "label": "setosa"}\n{"id": "m2", "label": "${'x'.repeat(600 * 1024)}"}\n{"id": "m3", "label": "caf`),
      Buffer.from([0xe9]),
      Buffer.from('"}\n{"id": "m4", "label": "setosa"}\n'),
    ]));
    expect({ code, stored: summary.counts.stored }).toEqual({ code: 3, stored: 2 });
    expect(summary.examples.invalid?.map((e) => e.line)).toEqual([2, 3]);
    expect(summary.examples.invalid?.[0].message).toMatch(/^the line is 614\d{3} bytes, over the limit of 524288$/);
    expect(summary.examples.invalid?.[1].message).toMatch(/^the line is not valid UTF-8/);
  });

  it('shows the control characters of a binary file\'s line escaped in the summary, never raw on the terminal', async () => {
    const { summary } = await run('binary.jsonl', Buffer.from('\x1b]0;title\x07\x1b[31m\x00\x01\n'));
    const text = formatSummary(summary);
    expect(text).toContain('line 1: not JSON');
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(text).toContain('\\u001b');
  });
});
