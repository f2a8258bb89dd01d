/**
 * Served models loaded by a ModelRegistry from a temporary repository, on real onnxruntime:
 * request validation, inference, failed versions and version resolution.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAddModel, buildIdentityModel, thrownBy, writeModelRepository } from '@infermesh/testing';
import { createLogger } from '@infermesh/log';
import { ServiceError, Status } from '@infermesh/grpc';
import { TensorError, type Tensor } from '@infermesh/tensor';
import { ModelRegistry } from './model-registry.js';

const logger = createLogger('test', { level: 'silent' });

const addConfig = {
  max_batch_size: 4,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [4] }],
};

let repository: string;
let registry: ModelRegistry;

beforeAll(async () => {
  repository = await mkdtemp(join(tmpdir(), 'infermesh-served-model-'));
  await writeModelRepository(repository, [
    { name: 'add', version: 1, onnx: buildAddModel({ addend: 1 }), config: addConfig },
    { name: 'add', version: 2, onnx: buildAddModel({ addend: 2 }), config: addConfig },
    // The config says 'x' and 'y'; this version's graph calls them 'a' and 'b'.
    { name: 'add', version: 3, onnx: buildAddModel({ inputName: 'a', outputName: 'b' }), config: addConfig },
    {
      name: 'fixed',
      version: 1,
      onnx: buildIdentityModel({ datatype: 'FP32', shape: [2, 2] }),
      config: { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2] }] },
    },
    {
      // A line model of variable width (as ocr-recognition): the graph is the identity, so each answer is its job's padded pixels, normalized.
      name: 'lines',
      version: 1,
      onnx: buildIdentityModel({ datatype: 'FP32', shape: [-1, 3, 48, -1] }),
      config: {
        max_batch_size: 8,
        inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 48, -1] }],
        outputs: [{ name: 'y', datatype: 'FP32', shape: [3, 48, -1] }],
        dynamic_batching: { max_queue_delay_microseconds: 200000 },
        preprocess: { image: { input: 'image', output: 'x', width: 1536, height: 48, resize: 'height-pad-right', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], scale: 1 / 255, layout: 'NCHW', datatype: 'FP32', channel_order: 'BGR', pad_value: 0, min_width: 320 } },
      },
    },
    {
      name: 'broken',
      version: 1,
      onnx: buildAddModel(),
      config: { ...addConfig, inputs: [{ name: 'pixels', datatype: 'FP32', shape: [4] }] },
    },
  ]);
  registry = new ModelRegistry({ repository, models: [], logger, intraOpThreads: 1 });
  await registry.loadAll();
});

afterAll(async () => {
  await registry?.release();
  if (repository) await rm(repository, { recursive: true, force: true });
});

function fp32(name: string, shape: number[], values?: number[]): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  return { name, datatype: 'FP32', shape, data: new Float32Array(values ?? Array.from({ length: count }, (_, i) => i)) };
}

const refusal = (run: () => unknown) => thrownBy(run, TensorError);

function notFound(run: () => unknown): ServiceError {
  const error = thrownBy(run, ServiceError);
  expect(error.code).toBe(Status.NOT_FOUND);
  return error;
}

describe('validate', () => {
  const model = () => registry.resolve('add', '1');

  it('returns the batch size of a valid request', () => {
    expect(model().validate([fp32('x', [3, 4])], [])).toBe(3);
  });

  it('counts one item for a model that does not batch', () => {
    expect(registry.resolve('fixed', '').validate([fp32('x', [2, 2])], [])).toBe(1);
  });

  it('refuses an input the model does not have', () => {
    const error = refusal(() => model().validate([fp32('x', [1, 4]), fp32('z', [1, 4])], []));
    expect(error.message).toContain("unexpected input 'z'");
  });

  it('refuses a request missing an input', () => {
    const error = refusal(() => model().validate([], []));
    expect(error.message).toContain("missing input 'x'");
  });

  it('refuses an input of the wrong datatype, naming both datatypes', () => {
    const input: Tensor = { name: 'x', datatype: 'FP64', shape: [1, 4], data: new Float64Array(4) };
    const error = refusal(() => model().validate([input], []));
    expect(error.message).toContain("input 'x': datatype FP64");
    expect(error.message).toContain('expects FP32');
  });

  it('refuses an input of the wrong shape, naming the expected full shape', () => {
    const error = refusal(() => model().validate([fp32('x', [1, 5])], []));
    expect(error.message).toContain("input 'x': shape [1, 5]");
    expect(error.message).toContain('expects [-1, 4]');
  });

  it('refuses a shape that omits the batch dimension of a batching model', () => {
    refusal(() => model().validate([fp32('x', [4])], []));
  });

  it('refuses a different fixed shape for a model that does not batch', () => {
    const error = refusal(() => registry.resolve('fixed', '').validate([fp32('x', [3, 2])], []));
    expect(error.message).toContain('expects [2, 2]');
  });

  it('refuses a batch larger than max_batch_size', () => {
    const error = refusal(() => model().validate([fp32('x', [5, 4])], []));
    expect(error.message).toContain('batch size 5');
    expect(error.message).toContain('accepts 1 to 4');
  });

  it('refuses an empty batch', () => {
    const error = refusal(() => model().validate([fp32('x', [0, 4])], []));
    expect(error.message).toContain('batch size 0');
  });

  it('refuses a requested output the model does not have', () => {
    const error = refusal(() => model().validate([fp32('x', [1, 4])], ['y', 'z']));
    expect(error.message).toContain("requested output 'z'");
  });
});

describe('infer', () => {
  it('returns the model outputs computed by onnxruntime', async () => {
    const result = await registry.resolve('add', '1').infer([fp32('x', [2, 4])], []);
    expect(result.outputs).toHaveLength(1);
    expect(result.outputs[0].name).toBe('y');
    expect(result.outputs[0].datatype).toBe('FP32');
    expect(result.outputs[0].shape).toEqual([2, 4]);
    expect(Array.from(result.outputs[0].data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('reports the batch size it ran', async () => {
    const result = await registry.resolve('add', '1').infer([fp32('x', [3, 4])], [{ name: 'y', parameters: {} }]);
    expect(result.batchSize).toBe(3);
  });

  it('rejects an invalid request without running it', async () => {
    const model = registry.resolve('add', '1');
    await expect(model.infer([fp32('x', [1, 3])], [])).rejects.toThrow(TensorError);
  });
});

describe('a batch of lines of different widths', () => {
  const line = (width: number, value: number): Tensor => ({ name: 'x', datatype: 'UINT8', shape: [1, 48, width, 3], data: new Uint8Array(48 * width * 3).fill(value) });

  it('runs as groups of similar width, each padded to its own widest, answers in the jobs\' order, each run recorded with its size', async () => {
    const model = registry.resolve('lines', '1');
    // One batch (the batcher waits 200 ms for more), in 32-pixel buckets: 40 and 300 pixels share a run padded to 320 (min_width); 360 runs at 384, 700 at 704.
    const widths = [700, 40, 360, 300];
    const results = await Promise.all(widths.map((width, k) => model.infer([line(width, 10 * (k + 1))], [])));
    expect(results.map((r) => r.outputs[0].shape)).toEqual([[1, 3, 48, 704], [1, 3, 48, 320], [1, 3, 48, 384], [1, 3, 48, 320]]);
    results.forEach((result, k) => {
      // Each answer is its own job's pixels: (value / 255 - 0.5) / 0.5 at the top left.
      expect((result.outputs[0].data as Float32Array)[0]).toBeCloseTo((10 * (k + 1)) / 127.5 - 1, 5);
    });
    expect(Object.fromEntries(model.stats.batchSizes())).toEqual({ 1: 2, 2: 1 });
  });
});

describe('ModelRegistry', () => {
  it('marks a version whose config names a tensor the ONNX model lacks UNAVAILABLE, with the reason', () => {
    const entry = registry.list().find((e) => e.name === 'add' && e.version === '3');
    expect(entry?.state).toBe('UNAVAILABLE');
    expect(entry?.model).toBeUndefined();
    expect(entry?.reason).toContain('config names tensors the model does not have: x, y');
  });

  it('marks a model UNAVAILABLE when its config names an input the ONNX model lacks', () => {
    const entry = registry.list().find((e) => e.name === 'broken');
    expect(entry?.state).toBe('UNAVAILABLE');
    expect(entry?.reason).toContain('pixels');
  });

  it('keeps the other versions of a model with a failed version READY', () => {
    const states = registry.list().filter((e) => e.name === 'add').map((e) => [e.version, e.state]);
    expect(states).toEqual([['1', 'READY'], ['2', 'READY'], ['3', 'UNAVAILABLE']]);
  });

  it('answers NOT_FOUND with the load failure for a failed version', () => {
    const error = notFound(() => registry.resolve('add', '3'));
    expect(error.message).toContain("version '3' failed to load");
    expect(error.message).toContain('config names tensors the model does not have');
  });

  it('resolves no version to the newest ready version', async () => {
    const model = registry.resolve('add', '');
    expect(model.version).toBe('2');
    const result = await model.infer([fp32('x', [1, 4], [0, 0, 0, 0])], []);
    expect(Array.from(result.outputs[0].data as Float32Array)).toEqual([2, 2, 2, 2]);
  });

  it('resolves a requested version', () => {
    expect(registry.resolve('add', '1').version).toBe('1');
  });

  it('answers NOT_FOUND, listing the versions, for a version that does not exist', () => {
    const error = notFound(() => registry.resolve('add', '7'));
    expect(error.message).toContain('versions: 1, 2, 3');
  });

  it('answers NOT_FOUND for a model it does not serve', () => {
    notFound(() => registry.resolve('nope', ''));
  });

  it('answers NOT_FOUND for a model with no ready version', () => {
    const error = notFound(() => registry.resolve('broken', ''));
    expect(error.message).toContain('no ready version');
  });

  it('lists only the ready versions of a model', () => {
    expect(registry.versionsOf('add')).toEqual(['1', '2']);
  });
});
