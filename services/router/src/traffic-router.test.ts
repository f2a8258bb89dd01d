/**
 * Traffic policies through a router in this process: the policy put in the `<prefix>_traffic`
 * bucket (the router watches it), ModelInfer over real gRPC, and a stand-in worker that
 * answers per version (version 2 can be held back or made to fail: the shadow).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { events, trafficPolicies, type TrafficPolicies } from '@infermesh/bus';
import {
  inferenceService, workerService,
  type InferBatchRequest__Output, type InferBatchResponse, type ModelInferRequest, type ModelInferResponse__Output, type PredictionRecord__Output,
} from '@infermesh/contracts';
import { createGrpcServer, type GrpcServer } from '@infermesh/grpc';
import { logger, modelStatus, startRouter, unary, type RouterUnderTest } from './router.fixture.js';

const inferCodec = inferenceService().ModelInfer as unknown as grpc.MethodDefinition<ModelInferRequest, ModelInferResponse__Output>;

type Reply = NonNullable<InferBatchResponse['responses']>[number];
/** How the stand-in answers one request of a version: now, or with a promise (held back). */
let reply: (version: string, request: ModelInferRequest, sampleOutputs: boolean) => Reply | Promise<Reply>;
const labelsOf: Record<string, string> = { '1': 'setosa', '2': 'setosa' };
const answerWith = (version: string, request: ModelInferRequest): Reply => ({
  response: { modelName: request.modelName, modelVersion: version, id: request.id }, statusCode: 0, predictedLabels: [labelsOf[version]],
});

async function versionedWorker(): Promise<{ address: string; server: GrpcServer }> {
  const server = createGrpcServer({ name: 'versioned-stand-in', logger, maxMessageBytes: 4 * 1024 * 1024 });
  server.addService('infermesh.v1.Worker', workerService(), {
    InferBatches: {
      bidi: (call: grpc.ServerDuplexStream<InferBatchRequest__Output, InferBatchResponse>) =>
        new Promise<void>((resolve) => {
          call.on('data', (batch: InferBatchRequest__Output) => {
            void Promise.all(batch.requests.map((item) => reply(batch.modelVersion, inferCodec.requestDeserialize(item.request), item.sampleOutputs))).then((responses) => {
              if (!call.cancelled) call.write({ batchId: batch.batchId, responses });
            });
          });
          call.on('end', () => resolve());
          call.on('cancelled', () => resolve());
        }),
    },
  });
  const port = await server.listen('127.0.0.1', 0);
  server.setServing(true);
  return { address: `127.0.0.1:${port}`, server };
}

let mesh: RouterUnderTest;
let worker: { address: string; server: GrpcServer };
let store: TrafficPolicies;
let client: grpc.Client;

beforeAll(async () => {
  mesh = await startRouter();
  worker = await versionedWorker();
  const models = ['1', '2'].map((version) => modelStatus('iris', { version, maxBatchSize: 8 }));
  mesh.router.table.update({ workerId: 'versioned', address: worker.address, device: 'cpu', models, queueDepth: 0, inFlight: 0, sentAtMs: '0', draining: false, executionProvider: 'cpu', rssBytes: '0' });
  mesh.router.table.markFilled();
  store = await trafficPolicies(mesh.reader);
  client = mesh.inferenceClient();
}, 30_000);

afterAll(async () => {
  await mesh?.stop();
  worker?.server.server.forceShutdown();
});

beforeEach(() => {
  reply = answerWith;
  labelsOf['2'] = 'setosa';
});

let sequence = 0;
const infer = (id: string, modelVersion = '') =>
  unary<ModelInferRequest, ModelInferResponse__Output>(client, 'ModelInfer', { modelName: 'iris', modelVersion, id, inputs: [{ name: 'features', datatype: 'FP32', shape: ['1', '4'] }], rawInputContents: [Buffer.alloc(16)] });

/** Puts a policy and waits until the router answers by it (the watch applied it). */
async function setPolicy(weights: Record<string, number>, shadows: string[], appliedWhen: () => Promise<boolean>): Promise<void> {
  await store.put({ model: 'iris', weights: Object.entries(weights).map(([version, weight]) => ({ version, weight })), shadowVersions: shadows, setBy: 'test', setAtMs: String(Date.now()) });
  await vi.waitFor(async () => expect(await appliedWhen()).toBe(true), { timeout: 10_000, interval: 20 });
}

async function versionsOf(requests: number, prefix: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < requests; i++) {
    const version = (await infer(`${prefix}-${i}`)).modelVersion;
    counts[version] = (counts[version] ?? 0) + 1;
  }
  return counts;
}

async function records(where: (r: PredictionRecord__Output) => boolean, count: number): Promise<PredictionRecord__Output[]> {
  return vi.waitFor(
    async () => {
      const found = (await mesh.stored('PREDICTIONS', (data) => events.predictionBatch.decode(data))).flatMap((b) => b.records).filter(where);
      if (found.length < count) throw new Error(`${found.length} of ${count} records yet`);
      return found;
    },
    { timeout: 10_000, interval: 50 },
  );
}

describe('traffic policy at the router', () => {
  it('sends unversioned requests to versions by the weights, and applies a changed policy as it is put', async () => {
    // Without a policy the newest version (2) answers both; at 50/50, one each.
    await setPolicy({ '1': 50, '2': 50 }, [], async () => (await versionsOf(2, `p${sequence++}`))['1'] === 1);
    await setPolicy({ '1': 90, '2': 10 }, [], async () => (await versionsOf(20, `p${sequence++}`))['2'] === 2);
    expect(await versionsOf(100, 'split')).toEqual({ '1': 90, '2': 10 });
    await setPolicy({ '2': 100 }, [], async () => (await versionsOf(5, `p${sequence++}`))['2'] === 5);
  });

  it('keeps the version a request names, whatever the weights', async () => {
    await setPolicy({ '2': 100 }, [], async () => (await infer(`probe-${sequence++}`)).modelVersion === '2');
    expect((await infer('named', '1')).modelVersion).toBe('1');
  });

  it('answers the client while its shadow is held back, and records the shadow once it answers', async () => {
    await setPolicy({ '1': 100 }, [], async () => (await infer(`probe-${sequence++}`)).modelVersion === '1');
    const heldShadows: (() => void)[] = [];
    reply = (version, request) => (version === '2' ? new Promise<Reply>((resolve) => heldShadows.push(() => resolve(answerWith(version, request)))) : answerWith(version, request));
    await setPolicy({ '1': 100 }, ['2'], async () => {
      await infer(`probe-${sequence++}`);
      return heldShadows.length > 0;
    });
    const answered = await infer('while-held');
    expect(answered.modelVersion).toBe('1');
    await vi.waitFor(() => expect(heldShadows.length).toBeGreaterThanOrEqual(2));
    for (const release of heldShadows) release();
    const [shadow] = await records((r) => r.requestId === 'while-held' && r.shadowOfVersion !== '', 1);
    expect(shadow).toMatchObject({ model: 'iris', version: '2', shadowOfVersion: '1', statusCode: 0, shadowCompared: true, shadowAgreed: true });
  });

  it('answers the client with its own version when the shadow fails, and records the failure with agreement unknown', async () => {
    reply = (version, request) => (version === '2' ? { statusCode: 13, errorMessage: 'shadow broke' } : answerWith(version, request));
    await setPolicy({ '1': 100 }, ['2'], async () => (await infer(`probe-${sequence++}`)).modelVersion === '1');
    const answered = await infer('shadow-fails');
    expect([answered.modelVersion, answered.id]).toEqual(['1', 'shadow-fails']);
    const [shadow] = await records((r) => r.requestId === 'shadow-fails' && r.shadowOfVersion !== '', 1);
    expect(shadow).toMatchObject({ version: '2', statusCode: 13, shadowCompared: false, shadowAgreed: false });
  });

  it('records a shadow that predicts other labels as disagreeing, and the client\'s record as an ordinary one', async () => {
    labelsOf['2'] = 'virginica';
    await setPolicy({ '1': 100 }, ['2'], async () => (await infer(`probe-${sequence++}`)).modelVersion === '1');
    await infer('disagreed');
    const both = await records((r) => r.requestId === 'disagreed', 2);
    expect(both.find((r) => r.shadowOfVersion === '')).toMatchObject({ version: '1', predictedLabels: ['setosa'] });
    expect(both.find((r) => r.shadowOfVersion === '1')).toMatchObject({ version: '2', predictedLabels: ['virginica'], shadowCompared: true, shadowAgreed: false });
  });

  it('compares the output samples a model without labels answers with, when it asked for them on both requests', async () => {
    // Like a worker: a sample only when asked; version 2 is off by 1e-4, within the tolerance, or by 0.1 on "far" requests.
    reply = (version, request, sampleOutputs) => ({
      response: { modelName: request.modelName, modelVersion: version, id: request.id }, statusCode: 0,
      outputSample: sampleOutputs ? [version === '1' ? 0.5 : 0.5 + (request.id?.startsWith('far') ? 0.1 : 1e-4)] : [],
    });
    await setPolicy({ '1': 100 }, ['2'], async () => (await infer(`probe-${sequence++}`)).modelVersion === '1');
    await infer('near');
    await infer('far');
    const [near] = await records((r) => r.requestId === 'near' && r.shadowOfVersion === '1', 1);
    const [far] = await records((r) => r.requestId === 'far' && r.shadowOfVersion === '1', 1);
    expect(near).toMatchObject({ predictedLabels: [], shadowCompared: true, shadowAgreed: true });
    expect(far).toMatchObject({ shadowCompared: true, shadowAgreed: false });
  });
});
