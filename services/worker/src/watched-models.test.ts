/**
 * Models loaded with what they are watched with, on real onnxruntime: a profile that cannot be
 * used leaves its model serving without drift (and says why); an image model's drift bins come
 * from the preprocessor's statistics (a stand-in preprocessor here: its own tests cover how
 * statistics are measured).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { buildIdentityModel, buildLinearSoftmaxModel, writeModelRepository } from '@infermesh/testing';
import type { Logger } from '@infermesh/log';
import { inferenceService, type ImageStatistics__Output, type ModelInferRequest, type ModelInferRequest__Output, type PreprocessItem, type PreprocessResult__Output } from '@infermesh/contracts';
import { ModelRegistry } from './model-registry.js';
import { RequestRunner } from './request-runner.js';
import type { PreprocessorClient } from './preprocessor-client.js';

/** What the registry warned about. */
const warnings: { reason: string; message: string }[] = [];
const silent = () => {};
const logger = {
  warn: (fields: { reason: string }, message: string) => warnings.push({ reason: fields.reason, message }),
  info: silent, error: silent, debug: silent, trace: silent,
  child: () => logger,
} as unknown as Logger;

const classifier = (labels: string[]) => ({
  onnx: buildLinearSoftmaxModel({ inputName: 'x', outputName: 'p', weights: [[1, 0], [0, 1]], bias: [0, 0] }),
  config: { max_batch_size: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }], outputs: [{ name: 'p', datatype: 'FP32', shape: [2], labels }], preprocess: { tabular: { input: 'row', output: 'x', features: [{ name: 'a' }, { name: 'b' }] } } },
});

/** An image model whose graph passes the normalized pixels through: 4 x 2 frames. */
const LINES = {
  onnx: buildIdentityModel({ datatype: 'FP32', shape: [-1, 3, 2, 4] }),
  config: { max_batch_size: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 2, 4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [3, 2, 4] }], preprocess: { image: { input: 'image', output: 'x', width: 4, height: 2 } } },
};
const LINES_PROFILE = {
  format: 1, kind: 'image', rows: 300, source: 'test lines', created: '2026-11-27',
  features: [{ name: 'image.aspect_ratio', edges: [1, 3], expected: [0.2, 0.5, 0.3] }, { name: 'image.brightness', edges: [100], expected: [0.5, 0.5] }],
};

let repository: string;
let registry: ModelRegistry;

beforeAll(async () => {
  repository = await mkdtemp(join(tmpdir(), 'infermesh-watched-'));
  await writeModelRepository(repository, [
    { name: 'mislabelled', version: 1, ...classifier(['one', 'two', 'three']) },
    { name: 'bad-profile', version: 1, ...classifier(['one', 'two']) },
    { name: 'lines', version: 1, ...LINES },
  ]);
  await writeFile(join(repository, 'bad-profile', 'profile.json'), JSON.stringify({ ...LINES_PROFILE, kind: 'tabular', features: [{ name: 'a', edges: [2, 1], expected: [0.5, 0.25, 0.25] }] }));
  await writeFile(join(repository, 'lines', '1', 'profile.json'), JSON.stringify(LINES_PROFILE));
  registry = new ModelRegistry({ repository, models: [], logger, intraOpThreads: 1 });
  await registry.loadAll();
});

afterAll(async () => {
  await registry?.release();
  if (repository) await rm(repository, { recursive: true, force: true });
});

describe('loading a model with its profile and labels', () => {
  it('serves a model whose profile cannot be used without drift, and warns naming the file and the problem', () => {
    const model = registry.resolve('bad-profile', '1');
    expect(model.drift).toBeUndefined();
    expect(model.classifier?.labels).toEqual(['one', 'two']);
    const warning = warnings.find((w) => w.reason.includes('bad-profile'));
    expect(warning?.message).toBe('drift profile not used: the model is served without drift');
    expect(warning?.reason).toBe(`${join(repository, 'bad-profile', 'profile.json')} is not a valid profile: features.0.edges: edges must be strictly ascending`);
  });

  it('serves a model whose labels do not match its classes without predicted labels, and warns', () => {
    expect(registry.resolve('mislabelled', '1').classifier).toBeUndefined();
    expect(warnings).toContainEqual({ reason: "output 'p' has 2 classes and 3 labels", message: 'class labels not used: the model is served without predicted labels' });
  });

  it('loads a valid profile from the version folder', () => {
    const model = registry.resolve('lines', '1');
    expect(model.drift?.reference.features?.map((f) => f.name)).toEqual(['image.aspect_ratio', 'image.brightness']);
  });
});

describe('an image model\'s drift bins', () => {
  /** Answers every item with blank frames and the statistics queued for it, in call order. */
  function stubPreprocessor(statistics: ImageStatistics__Output[][]): PreprocessorClient {
    return {
      preprocess: async (_model, _pipeline, items: PreprocessItem[]) =>
        items.map((): PreprocessResult__Output => {
          const images = statistics.shift()!;
          return { pixels: Buffer.alloc(images.length * 4 * 2 * 3), count: images.length, error: '', statistics: images };
        }),
      close: () => {},
    };
  }

  /** A request as the worker receives it: encoded and decoded by the real codec. */
  const codec = inferenceService().ModelInfer as unknown as { requestSerialize(r: ModelInferRequest): Buffer; requestDeserialize(b: Buffer): ModelInferRequest__Output };
  const received = (request: ModelInferRequest) => codec.requestDeserialize(codec.requestSerialize(request));
  const imageRequest = (count: number) => received({
    id: 'img', modelName: 'lines',
    inputs: [{ name: 'image', datatype: 'BYTES', shape: [String(count)], contents: { bytesContents: Array.from({ length: count }, () => Buffer.from('png')) } }],
  });
  const run = (runner: RequestRunner, request: ModelInferRequest__Output) =>
    runner.run(registry.resolve('lines', '1'), [{ request, queuedNs: 0, deadlineMs: Infinity, parent: ROOT_CONTEXT }]);

  it('are the preprocessor\'s statistics of each image, binned in profile order', async () => {
    const runner = new RequestRunner({
      workerId: 'w', maxMessageBytes: 4 * 1024 * 1024,
      preprocessor: stubPreprocessor([[{ width: 192, height: 48, brightness: 150, contrast: 9 }, { width: 10, height: 10, brightness: 50, contrast: 0 }]]),
    });
    const [outcome] = await run(runner, imageRequest(2));
    expect(outcome.error).toBeUndefined();
    // Ratio 4 → bin 2, brightness 150 → 1; ratio 1 → 1, brightness 50 → 0.
    expect(Array.from(outcome.driftBins!)).toEqual([2, 1, 1, 0]);
    expect(outcome.profileId).toBe(registry.resolve('lines', '1').drift!.profileId);
  });

  it('are absent when a client sends the pixel tensor itself: the images as sent are unknown', async () => {
    const runner = new RequestRunner({ workerId: 'w', maxMessageBytes: 4 * 1024 * 1024, preprocessor: stubPreprocessor([]) });
    const pixels = received({ modelName: 'lines', inputs: [{ name: 'x', datatype: 'UINT8', shape: ['1', '2', '4', '3'] }], rawInputContents: [Buffer.alloc(24)] });
    const [outcome] = await run(runner, pixels);
    expect(outcome.error).toBeUndefined();
    expect(outcome.driftBins).toBeUndefined();
    expect(outcome.profileId).toBe('');
  });
});
