/**
 * The router's Feedback call against a real nats-server, through a router built as
 * createRouter builds it: what is stored on the FEEDBACK stream, what each item is
 * answered, and that nothing is stored for an item or a call that is refused.
 */
import * as grpc from '@grpc/grpc-js';
import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { events } from '@infermesh/bus';
import { feedbackService, type FeedbackItem, type FeedbackRequest, type FeedbackResponse__Output, type Feedback__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import { bufCurl } from '@infermesh/testing';
import { feedbackMessageId } from './feedback-store.js';
import { modelStatus, startRouter, unary, type RouterUnderTest } from './router.fixture.js';

const spans = new InMemorySpanExporter();
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));

const MODELS = [modelStatus('iris', { maxBatchSize: 8 }), modelStatus('text-direction', { maxBatchSize: 0 })];
const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

let mesh: RouterUnderTest;

beforeAll(async () => {
  mesh = await startRouter();
  mesh.serve(MODELS);
});

afterAll(async () => {
  await mesh?.stop();
});

beforeEach(() => spans.reset());

/** The error a call rejects with. */
async function thrownBy(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

let ids = 0;
/** A request id no other test labels. */
const fresh = (what = 'r') => `${what}-${++ids}`;

function feedback(request: FeedbackRequest, client = mesh.feedbackClient(), metadata = new grpc.Metadata()): Promise<FeedbackResponse__Output> {
  return new Promise((resolve, reject) =>
    client.Feedback(request, metadata, { deadline: Date.now() + 20_000 }, (error, response) => (error ? reject(error) : resolve(response!))),
  );
}

async function storedFeedback(): Promise<Feedback__Output[]> {
  return mesh.stored('FEEDBACK', (data) => events.feedback.decode(data));
}

async function storedFor(requestId: string): Promise<Feedback__Output[]> {
  return (await storedFeedback()).filter((f) => f.requestId === requestId);
}

/** Sends `items` as raw bytes: what a client that does not check UTF-8 sends. */
function feedbackBytes(bytes: Buffer): Promise<FeedbackResponse__Output> {
  const method = feedbackService().Feedback as unknown as grpc.MethodDefinition<FeedbackRequest, FeedbackResponse__Output>;
  const client = new grpc.Client(mesh.address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(method.path, (b: Buffer) => b, method.responseDeserialize, bytes, (error, response) => {
      client.close();
      return error ? reject(error) : resolve(response!);
    }),
  );
}

/** The bytes of `item` with the first occurrence of `marker` replaced by `replacement` (same length). */
function withBytes(item: FeedbackItem, marker: string, replacement: Buffer): Buffer {
  const method = feedbackService().Feedback as unknown as grpc.MethodDefinition<FeedbackRequest, FeedbackResponse__Output>;
  const bytes = Buffer.from(method.requestSerialize({ items: [item] }));
  const at = bytes.indexOf(marker);
  replacement.copy(bytes, at);
  return bytes;
}

describe('Feedback', () => {
  it('stores an item on FEEDBACK as a Feedback event: model, request id, labels, client, when received, and the call\'s trace', async () => {
    const id = fresh();
    const before = Date.now();
    const metadata = new grpc.Metadata();
    metadata.set('traceparent', TRACEPARENT);
    const response = await feedback({ items: [{ modelName: 'iris', requestId: id, labels: ['setosa', 'virginica'] }] }, undefined, metadata);
    expect(response.results).toEqual([{ statusCode: Status.OK, errorMessage: '' }]);
    const [stored] = await storedFor(id);
    expect(stored).toMatchObject({ model: 'iris', requestId: id, labels: ['setosa', 'virginica'], clientId: '' });
    expect(Number(stored.receivedMs)).toBeGreaterThanOrEqual(before);
    expect(stored.traceparent.slice(0, 36)).toBe(TRACEPARENT.slice(0, 36)); // the client's trace
  });

  it('publishes on the model\'s feedback subject with a message id of (client, model, request id)', async () => {
    const id = fresh();
    await feedback({ items: [{ modelName: 'text-direction', requestId: id, labels: ['upright'] }] });
    const jsm = await mesh.reader.js.jetstreamManager();
    const info = await jsm.streams.info('FEEDBACK');
    const last = await jsm.streams.getMessage('FEEDBACK', { seq: info.state.last_seq });
    expect(last!.subject).toBe('infermesh.feedback.text-direction');
    expect(last!.header.get('Nats-Msg-Id')).toBe(feedbackMessageId('', 'text-direction', id));
  });

  it('answers ALREADY_EXISTS for a request labelled before, and keeps the first labels', async () => {
    const id = fresh();
    await feedback({ items: [{ modelName: 'iris', requestId: id, labels: ['setosa'] }] });
    const again = await feedback({ items: [{ modelName: 'iris', requestId: id, labels: ['virginica'] }] });
    expect(again.results).toEqual([{ statusCode: Status.ALREADY_EXISTS, errorMessage: `request '${id}' of model 'iris' was already labelled` }]);
    expect((await storedFor(id)).map((f) => f.labels)).toEqual([['setosa']]);
  });

  it('answers a request labelled twice in one call once: the first item counts, the second is ALREADY_EXISTS', async () => {
    const id = fresh();
    const response = await feedback({ items: [{ modelName: 'iris', requestId: id, labels: ['setosa'] }, { modelName: 'iris', requestId: id, labels: ['virginica'] }] });
    expect(response.results.map((r) => r.statusCode)).toEqual([Status.OK, Status.ALREADY_EXISTS]);
    expect((await storedFor(id)).map((f) => f.labels)).toEqual([['setosa']]);
  });

  it('labels the same request id of two models separately', async () => {
    const id = fresh();
    const response = await feedback({ items: [{ modelName: 'iris', requestId: id, labels: ['setosa'] }, { modelName: 'text-direction', requestId: id, labels: ['upright'] }] });
    expect(response.results.map((r) => r.statusCode)).toEqual([Status.OK, Status.OK]);
  });

  it('refuses a call without items with INVALID_ARGUMENT', async () => {
    const error = await thrownBy(feedback({ items: [] }));
    expect([error.code, error.details]).toEqual([Status.INVALID_ARGUMENT, 'the request has no items: send 1 to 1000']);
  });

  it('refuses a call of more than 1000 items with INVALID_ARGUMENT, and stores none of them', async () => {
    const id = fresh('over');
    const items = Array.from({ length: 1001 }, (_, i) => ({ modelName: 'iris', requestId: `${id}-${i}`, labels: ['setosa'] }));
    const error = await thrownBy(feedback({ items }));
    expect([error.code, error.details]).toEqual([Status.INVALID_ARGUMENT, 'the request has more than 1000 items, over the limit of 1000 per call']);
    expect((await storedFeedback()).filter((f) => f.requestId.startsWith(`${id}-`))).toEqual([]);
  });

  it('stores a call of 1000 items, each answered OK', async () => {
    const id = fresh('full');
    const items = Array.from({ length: 1000 }, (_, i) => ({ modelName: 'iris', requestId: `${id}-${i}`, labels: ['setosa'] }));
    const response = await feedback({ items });
    expect(response.results.filter((r) => r.statusCode === Status.OK)).toHaveLength(1000);
    expect((await storedFeedback()).filter((f) => f.requestId.startsWith(`${id}-`))).toHaveLength(1000);
  });

  describe('refuses each invalid item on its own, with its reason, and stores the valid ones beside it', () => {
    const long = 'x'.repeat(257);
    const cases: [string, (id: string) => FeedbackItem, Status, string][] = [
      ['an empty model name', (id) => ({ modelName: '', requestId: id, labels: ['setosa'] }), Status.INVALID_ARGUMENT, 'model_name is empty'],
      ['a model name over 256 bytes', (id) => ({ modelName: long, requestId: id, labels: ['setosa'] }), Status.INVALID_ARGUMENT, 'model_name is 257 bytes, over the limit of 256'],
      ['an empty request id', () => ({ modelName: 'iris', requestId: '', labels: ['setosa'] }), Status.INVALID_ARGUMENT, 'request_id is empty'],
      ['a request id over 256 bytes', () => ({ modelName: 'iris', requestId: 'é'.repeat(129), labels: ['setosa'] }), Status.INVALID_ARGUMENT, 'request_id is 258 bytes, over the limit of 256'],
      ['no labels', (id) => ({ modelName: 'iris', requestId: id, labels: [] }), Status.INVALID_ARGUMENT, 'labels is empty: send the true label of each input of the request, in order'],
      ['an empty label', (id) => ({ modelName: 'iris', requestId: id, labels: ['setosa', ''] }), Status.INVALID_ARGUMENT, 'label 1 is empty'],
      ['a label over 256 bytes', (id) => ({ modelName: 'iris', requestId: id, labels: [long] }), Status.INVALID_ARGUMENT, 'label 0 is 257 bytes, over the limit of 256'],
      ['more labels than the model\'s max batch size', (id) => ({ modelName: 'iris', requestId: id, labels: Array(9).fill('setosa') }), Status.INVALID_ARGUMENT, '9 labels, but model \'iris\' takes at most 8 inputs per request'],
      ['more than 1024 labels for a model without a max batch size', (id) => ({ modelName: 'text-direction', requestId: id, labels: Array(1025).fill('upright') }), Status.INVALID_ARGUMENT, 'more than 1024 labels, over the limit of 1024'],
      ['a model the mesh does not serve', (id) => ({ modelName: 'resnet', requestId: id, labels: ['cat'] }), Status.NOT_FOUND, "model 'resnet' is not served by this mesh (models: iris, text-direction)"],
    ];
    it.each(cases)('%s', async (_what, item, code, message) => {
      const before = (await storedFeedback()).length;
      const valid = fresh('beside');
      const response = await feedback({ items: [item(fresh()), { modelName: 'iris', requestId: valid, labels: ['setosa'] }] });
      expect(response.results).toEqual([{ statusCode: code, errorMessage: message }, { statusCode: Status.OK, errorMessage: '' }]);
      expect((await storedFeedback()).slice(before).map((f) => f.requestId)).toEqual([valid]);
    });

    it('takes as many labels as the model\'s max batch size', async () => {
      const response = await feedback({ items: [{ modelName: 'iris', requestId: fresh(), labels: Array(8).fill('setosa') }, { modelName: 'text-direction', requestId: fresh(), labels: Array(1024).fill('upright') }] });
      expect(response.results.map((r) => r.statusCode)).toEqual([Status.OK, Status.OK]);
    });

    it('a request id that is not valid UTF-8', async () => {
      const response = await feedbackBytes(withBytes({ modelName: 'iris', requestId: 'r-XX', labels: ['setosa'] }, 'XX', Buffer.from([0xc3, 0x28])));
      expect(response.results).toEqual([{ statusCode: Status.INVALID_ARGUMENT, errorMessage: 'request_id is not valid UTF-8' }]);
    });

    it('a label that is not valid UTF-8', async () => {
      const response = await feedbackBytes(withBytes({ modelName: 'iris', requestId: fresh(), labels: ['setosa', 'XX'] }, 'XX', Buffer.from([0xff, 0xfe])));
      expect(response.results).toEqual([{ statusCode: Status.INVALID_ARGUMENT, errorMessage: 'label 1 is not valid UTF-8' }]);
    });
  });

  it('refuses bytes that are not a FeedbackRequest with INVALID_ARGUMENT', async () => {
    const error = await thrownBy(feedbackBytes(Buffer.from([0x0a, 0x05, 0x01])));
    expect(error.code).toBe(Status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/^the request is not a FeedbackRequest: /);
  });

  it('makes one span per call, with what became of its items', async () => {
    await feedback({ items: [{ modelName: 'iris', requestId: fresh(), labels: ['setosa'] }, { modelName: 'nope', requestId: fresh(), labels: ['x'] }] });
    const finished = spans.getFinishedSpans().filter((s) => s.name === 'infermesh.v1.FeedbackService/Feedback');
    expect(finished).toHaveLength(1);
    expect(finished[0].attributes).toMatchObject({ 'infermesh.feedback.items': 2, 'infermesh.feedback.stored': 1, 'infermesh.feedback.refused': 1, 'infermesh.feedback.unavailable': 0 });
  });

  it('is found through server reflection and called the way a user does (buf curl)', async () => {
    const id = fresh();
    const answer = await bufCurl(mesh.address, 'infermesh.v1.FeedbackService/Feedback', { items: [{ model_name: 'iris', request_id: id, labels: ['setosa'] }] });
    expect(answer).toEqual({ results: [{}] }); // status_code 0, no message: proto3 leaves defaults out
    expect(await storedFor(id)).toHaveLength(1);
  });
});

describe('Feedback before the routing table is filled', () => {
  it('answers UNAVAILABLE for a model not yet announced (NOT_FOUND would be final to the client)', async () => {
    const starting = await startRouter();
    try {
      const response = await feedback({ items: [{ modelName: 'iris', requestId: 'r1', labels: ['setosa'] }] }, starting.feedbackClient());
      expect(response.results).toEqual([{ statusCode: Status.UNAVAILABLE, errorMessage: 'routing table not yet filled: the router has just started; retry' }]);
    } finally {
      await starting.stop();
    }
  });
});

describe('Feedback with API keys', () => {
  let keyed: RouterUnderTest & { keys: Record<string, string> };

  beforeAll(async () => {
    keyed = await startRouter({
      keys: [{ id: 'reports', models: ['iris'] }, { id: 'anything', models: '*' }, { id: 'slow', models: '*', rate: { per_second: 0.001, burst: 2 } }],
    });
    keyed.serve(MODELS);
  });

  afterAll(async () => {
    await keyed?.stop();
  });

  it('refuses a call without a key with UNAUTHENTICATED', async () => {
    const error = await thrownBy(feedback({ items: [{ modelName: 'iris', requestId: 'r1', labels: ['setosa'] }] }, keyed.feedbackClient()));
    expect(error.code).toBe(Status.UNAUTHENTICATED);
  });

  it('answers PERMISSION_DENIED for an item of a model the key may not call, and stores the others under the key\'s id', async () => {
    const [allowed, denied] = [fresh(), fresh()];
    const response = await feedback(
      { items: [{ modelName: 'iris', requestId: allowed, labels: ['setosa'] }, { modelName: 'text-direction', requestId: denied, labels: ['upright'] }] },
      keyed.feedbackClient(keyed.keys.reports),
    );
    expect(response.results).toEqual([{ statusCode: Status.OK, errorMessage: '' }, { statusCode: Status.PERMISSION_DENIED, errorMessage: "key reports may not call model 'text-direction'" }]);
    const stored = await keyed.stored('FEEDBACK', (data) => events.feedback.decode(data));
    expect(stored.filter((f) => f.requestId === allowed || f.requestId === denied).map((f) => [f.requestId, f.clientId])).toEqual([[allowed, 'reports']]);
  });

  it('answers PERMISSION_DENIED, not NOT_FOUND, for a model the key may not call that the mesh does not serve either', async () => {
    const response = await feedback({ items: [{ modelName: 'resnet', requestId: fresh(), labels: ['cat'] }] }, keyed.feedbackClient(keyed.keys.reports));
    expect(response.results[0].statusCode).toBe(Status.PERMISSION_DENIED);
  });

  it('takes one token of the key\'s rate per call, however many items it carries', async () => {
    const call = () => feedback({ items: Array.from({ length: 5 }, () => ({ modelName: 'iris', requestId: fresh(), labels: ['setosa'] })) }, keyed.feedbackClient(keyed.keys.slow));
    expect((await call()).results.filter((r) => r.statusCode === Status.OK)).toHaveLength(5);
    expect((await call()).results.filter((r) => r.statusCode === Status.OK)).toHaveLength(5);
    const error = await thrownBy(call());
    expect([error.code, error.details]).toEqual([Status.RESOURCE_EXHAUSTED, 'key slow is over its rate limit of 0.001 requests/s']);
  });

  it('keeps each key\'s labels of one request id apart: a request id is labelled once per client', async () => {
    const id = fresh();
    const item = { modelName: 'iris', requestId: id, labels: ['setosa'] };
    const first = await feedback({ items: [item] }, keyed.feedbackClient(keyed.keys.reports));
    const other = await feedback({ items: [item] }, keyed.feedbackClient(keyed.keys.anything));
    expect([first.results[0].statusCode, other.results[0].statusCode]).toEqual([Status.OK, Status.OK]);
  });
});

describe('Feedback while NATS is down', () => {
  it('answers each item UNAVAILABLE, keeps serving inference, and stores the same items once NATS is back', async () => {
    const down = await startRouter();
    try {
      down.serve(MODELS);
      const disconnected = (async () => {
        for await (const status of down.bus.nc.status()) if (status.type === 'disconnect') return;
      })();
      await down.nats.kill();
      await disconnected;
      const items = [{ modelName: 'iris', requestId: 'during-outage-1', labels: ['setosa'] }, { modelName: 'iris', requestId: 'during-outage-2', labels: ['versicolor'] }];
      const response = await feedback({ items }, down.feedbackClient());
      expect(response.results.map((r) => r.statusCode)).toEqual([Status.UNAVAILABLE, Status.UNAVAILABLE]);
      // At once, without a publish waiting for its ack to time out.
      expect(response.results[0].errorMessage).toBe('NATS is unreachable; sending it again is safe: a request is labelled once');
      const answered = await unary<object, { id: string }>(down.inferenceClient(), 'ModelInfer', {
        modelName: 'iris', id: 'while-down', inputs: [{ name: 'features', datatype: 'FP32', shape: ['1', '4'] }], rawInputContents: [Buffer.alloc(16)],
      });
      expect(answered.id).toBe('while-down');

      await down.nats.restart();
      await waitForStored(down, items, 2);
    } finally {
      await down.stop();
    }
  });
});

describe('Feedback when JetStream does not take it', () => {
  it('answers the item UNAVAILABLE, saying a retry is safe, when the FEEDBACK stream is gone', async () => {
    const streamless = await startRouter();
    try {
      streamless.serve(MODELS);
      await (await streamless.reader.js.jetstreamManager()).streams.delete('FEEDBACK');
      const response = await feedback({ items: [{ modelName: 'iris', requestId: 'r1', labels: ['setosa'] }] }, streamless.feedbackClient());
      expect(response.results[0].statusCode).toBe(Status.UNAVAILABLE);
      expect(response.results[0].errorMessage).toMatch(/^feedback not stored, JetStream did not take it \(.+\); sending it again is safe/);
    } finally {
      await streamless.stop();
    }
  });
});

describe('Feedback larger than the NATS server takes in one message', () => {
  it('answers the item RESOURCE_EXHAUSTED naming the sizes (sending it again cannot help), and stores the others', async () => {
    const small = await startRouter();
    try {
      small.serve([modelStatus('wide', { maxBatchSize: 1024 })]);
      // As a server configured with max_payload of 64 KiB says in its INFO (this connection's view of it).
      Object.assign(small.bus.nc.info!, { max_payload: 64 * 1024 });
      const labels = Array.from({ length: 1024 }, (_, i) => `${i}`.padEnd(256, 'x'));
      const response = await feedback({
        items: [{ modelName: 'wide', requestId: 'too-big', labels }, { modelName: 'wide', requestId: 'fits', labels: labels.slice(0, 8) }],
      }, small.feedbackClient());
      expect(response.results.map((r) => r.statusCode)).toEqual([Status.RESOURCE_EXHAUSTED, Status.OK]);
      expect(response.results[0].errorMessage).toMatch(/^feedback of \d+ bytes is larger than the NATS server takes in one message \(max_payload 65536 bytes\): send fewer or shorter labels$/);
      expect((await small.stored('FEEDBACK', (data) => events.feedback.decode(data))).map((f) => f.requestId)).toEqual(['fits']);
    } finally {
      await small.stop();
    }
  });
});

/** Sends `items` until the router stores them (it reconnects to NATS meanwhile); expects `count` stored. */
async function waitForStored(on: RouterUnderTest, items: FeedbackItem[], count: number): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const response = await feedback({ items }, on.feedbackClient());
    if (response.results.every((r) => r.statusCode === Status.OK || r.statusCode === Status.ALREADY_EXISTS)) break;
    if (attempt > 100) throw new Error(`not stored after NATS came back: ${JSON.stringify(response.results)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // The test's own reader reconnects on its own schedule after the restart: its first JetStream requests may time out.
  let stored: Feedback__Output[] | undefined;
  for (let attempt = 0; !stored && attempt < 20; attempt++) stored = await on.stored('FEEDBACK', (data) => events.feedback.decode(data)).catch(() => undefined);
  expect(stored?.map((f) => f.requestId).sort()).toEqual(items.map((i) => i.requestId).sort().slice(0, count));
}
