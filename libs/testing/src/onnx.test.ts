import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildAddModel, buildIdentityModel, buildLinearSoftmaxModel, writeModelRepository } from './index.js';

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes);
}

describe('buildAddModel', () => {
  it('adds the addend over a dynamic batch', async () => {
    const s = await session(buildAddModel({ features: 3, addend: 2.5 }));
    expect(s.inputNames).toEqual(['x']);
    expect(s.outputNames).toEqual(['y']);
    const meta = s.inputMetadata[0];
    expect(meta.isTensor && meta.shape).toEqual(['N', 3]);
    const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, -1, 0, 1]), [2, 3]);
    const { y } = await s.run({ x });
    expect(y.dims).toEqual([2, 3]);
    expect(Array.from(y.data as Float32Array)).toEqual([3.5, 4.5, 5.5, 1.5, 2.5, 3.5]);
  });

  it('honours custom names and defaults', async () => {
    const s = await session(buildAddModel({ inputName: 'in', outputName: 'out' }));
    const { out } = await s.run({ in: new ort.Tensor('float32', new Float32Array(4), [1, 4]) });
    expect(Array.from(out.data as Float32Array)).toEqual([1, 1, 1, 1]);
  });
});

describe('buildLinearSoftmaxModel', () => {
  const weights = [[1, 0], [0, 1], [-1, -1]]; // [classes][features]
  const bias = [0, 0.5, 0];

  it('computes softmax(xWᵀ + b) and the argmax label', async () => {
    const s = await session(buildLinearSoftmaxModel({ inputName: 'features', weights, bias, labelName: 'label' }));
    expect(s.outputNames).toEqual(['probabilities', 'label']);
    const rows = [[2, 0], [0, 2], [-3, -3]];
    const features = new ort.Tensor('float32', Float32Array.from(rows.flat()), [3, 2]);
    const { probabilities, label } = await s.run({ features });
    expect(probabilities.dims).toEqual([3, 3]);
    expect(label.type).toBe('int64');
    expect(label.dims).toEqual([3]);
    const p = probabilities.data as Float32Array;
    rows.forEach((row, n) => {
      const logits = weights.map((w, c) => w[0] * row[0] + w[1] * row[1] + bias[c]);
      const z = logits.map((l) => Math.exp(l - Math.max(...logits)));
      const sum = z.reduce((a, b) => a + b, 0);
      z.forEach((v, c) => expect(p[n * 3 + c]).toBeCloseTo(v / sum, 6));
    });
    expect(Array.from(label.data as BigInt64Array)).toEqual([0n, 1n, 2n]);
  });

  it('accepts probabilitiesName and omits the label by default', async () => {
    const s = await session(buildLinearSoftmaxModel({ weights, bias, probabilitiesName: 'p' }));
    expect(s.outputNames).toEqual(['p']);
  });

  it('rejects mismatched shapes', () => {
    expect(() => buildLinearSoftmaxModel({ weights, bias: [0] })).toThrow(/bias/);
    expect(() => buildLinearSoftmaxModel({ weights: [[1, 2], [3]], bias: [0, 0] })).toThrow(/rows/);
  });
});

describe('buildIdentityModel', () => {
  it.each([
    ['FP32', new ort.Tensor('float32', Float32Array.from([1.5, -2, 3.25, 0]), [2, 2])],
    ['FP64', new ort.Tensor('float64', Float64Array.from([Math.PI, -1]), [2, 1])],
    ['INT32', new ort.Tensor('int32', Int32Array.from([1, -2, 3]), [1, 3])],
    ['INT64', new ort.Tensor('int64', BigInt64Array.from([1n, -(2n ** 40n), 3n]), [3, 1])],
    ['UINT8', new ort.Tensor('uint8', Uint8Array.from([0, 128, 255]), [1, 3])],
    ['BOOL', new ort.Tensor('bool', Uint8Array.from([1, 0]), [2, 1])],
    ['BYTES', new ort.Tensor('string', ['hello', '', 'wörld'], [3, 1])],
  ] as const)('round-trips %s', async (datatype, input) => {
    const s = await session(buildIdentityModel({ datatype, shape: [-1, input.dims[1]] }));
    const { y } = await s.run({ x: input });
    expect(y.type).toBe(input.type);
    expect(y.dims).toEqual(input.dims);
    expect(Array.from(y.data as ArrayLike<unknown>)).toEqual(Array.from(input.data as ArrayLike<unknown>));
  });

  it('names dynamic dimensions N, d1, ...', async () => {
    const s = await session(buildIdentityModel({ datatype: 'FP32', shape: [-1, -1, 2, 'W'], inputName: 'a', outputName: 'b' }));
    const meta = s.inputMetadata[0];
    expect(meta.isTensor && meta.shape).toEqual(['N', 'd1', 2, 'W']);
  });
});

describe('writeModelRepository', () => {
  const dirs: string[] = [];
  afterAll(async () => { await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))); });

  it('writes config.yaml and <version>/model.onnx', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'infermesh-repo-'));
    dirs.push(dir);
    const onnx = buildAddModel();
    const config = { platform: 'onnxruntime_onnx', max_batch_size: 8, inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }] };
    await expect(writeModelRepository(dir, [{ name: 'add', version: 1, onnx, config }])).resolves.toBe(dir);
    expect(parse(await readFile(join(dir, 'add', 'config.yaml'), 'utf8'))).toEqual({ name: 'add', ...config });
    const bytes = await readFile(join(dir, 'add', '1', 'model.onnx'));
    expect(new Uint8Array(bytes)).toEqual(onnx);
    await expect(session(bytes)).resolves.toBeDefined();
  });

  it('rejects a config whose name disagrees with the directory', async () => {
    await expect(writeModelRepository(tmpdir(), [{ name: 'a', version: 1, onnx: buildAddModel(), config: { name: 'b' } }]))
      .rejects.toThrow(/differs/);
  });
});
