/**
 * The graph prelude, specified against real onnxruntime: a wrapped model given UINT8 pixels (or
 * raw rows) must compute what the original model computed from the JavaScript preprocessing.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT, buildIdentityModel, mulberry32, type OnnxDatatype, type OnnxDim } from '@infermesh/testing';
import {
  GraphPreludeError, PRELUDE_MIN_OPSET, featurePreludeModel, imagePreludeModel, prependFeaturePrelude, prependImagePrelude,
  type FeaturePrelude, type ImagePrelude,
} from './graph-prelude.js';

const { onnx } = onnxProto;

// ImageNet's statistics: three different channels, so a channel mix-up cannot cancel out.
const IMAGENET = { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;
const HEIGHT = 4;
const WIDTH = 5;

/** A prelude of fixed height and width, as most tests use. */
type FixedImagePrelude = ImagePrelude & { height: number; width: number };

function imageSpec(overrides: Partial<FixedImagePrelude> = {}): FixedImagePrelude {
  return { input: 'x', height: HEIGHT, width: WIDTH, layout: 'NCHW', channelOrder: 'RGB', datatype: 'FP32', ...IMAGENET, ...overrides };
}

/** y = x, with x shaped as the spec's model input wants. */
function identityFor(spec: FixedImagePrelude, batch: OnnxDim = 'N'): Uint8Array {
  const { height: h, width: w } = spec;
  const shape = spec.layout === 'NCHW' ? [batch, 3, h, w] : [batch, h, w, 3];
  return buildIdentityModel({ datatype: spec.datatype, shape });
}

function randomPixels(count: number, seed: number): Uint8Array {
  const random = mulberry32(seed);
  return Uint8Array.from({ length: count }, () => Math.floor(random() * 256));
}

/** The preprocessor's JavaScript loop, the reference: RGB NHWC bytes in, the model's tensor out. */
function reference(spec: FixedImagePrelude, pixels: Uint8Array, batch: number): Float32Array | Uint8Array {
  const plane = spec.height * spec.width;
  const fp32 = spec.datatype === 'FP32';
  const out = fp32 ? new Float32Array(batch * 3 * plane) : new Uint8Array(batch * 3 * plane);
  const order = spec.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  for (let n = 0; n < batch; n++) {
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const value = pixels[(n * plane + p) * 3 + order[c]];
        const target = spec.layout === 'NCHW' ? (n * 3 + c) * plane + p : (n * plane + p) * 3 + c;
        out[target] = fp32 ? (value * spec.scale - spec.mean[c]) / spec.std[c] : value;
      }
    }
  }
  return out;
}

function pixelTensor(spec: FixedImagePrelude, pixels: Uint8Array, batch: number): ort.Tensor {
  return new ort.Tensor('uint8', pixels, [batch, spec.height, spec.width, 3]);
}

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Within `tolerance` everywhere; the failure names the worst element. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = { index: -1, error: 0 };
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    if (!(error <= worst.error)) worst = { index: i, error };
  }
  expect(worst.error, `element ${worst.index}: ${actual[worst.index]} vs ${expected[worst.index]}`).toBeLessThanOrEqual(tolerance);
}

function decode(model: Uint8Array): OnnxTypes.ModelProto {
  return onnx.ModelProto.decode(model);
}

/** The decoded top-level graph: decode builds class instances, whose repeated fields are arrays. */
function graphOf(model: Uint8Array | OnnxTypes.ModelProto): OnnxTypes.GraphProto {
  const { graph } = model instanceof Uint8Array ? decode(model) : model;
  if (!graph) throw new Error('the model has no graph');
  return graph as OnnxTypes.GraphProto;
}

function reencode(model: Uint8Array, edit: (m: OnnxTypes.ModelProto) => void): Uint8Array {
  const decoded = decode(model);
  edit(decoded);
  return onnx.ModelProto.encode(decoded).finish();
}

function dims(value: OnnxTypes.IValueInfoProto): (number | string)[] {
  return (value.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue != null ? Number(d.dimValue) : d.dimParam ?? '?'));
}

describe('prependImagePrelude', () => {
  it.each([
    ['NCHW', 'RGB'], ['NCHW', 'BGR'], ['NHWC', 'RGB'], ['NHWC', 'BGR'],
  ] as const)('feeds a FP32 %s %s model what the JavaScript normalization computed', async (layout, channelOrder) => {
    const spec = imageSpec({ layout, channelOrder });
    const pixels = randomPixels(2 * HEIGHT * WIDTH * 3, 7);
    const { y } = await run(prependImagePrelude(identityFor(spec), spec), { x: pixelTensor(spec, pixels, 2) });
    expect(y.dims).toEqual(layout === 'NCHW' ? [2, 3, HEIGHT, WIDTH] : [2, HEIGHT, WIDTH, 3]);
    // x * (scale / std) + (-mean / std) in float32 is within a few ulps of the double computation.
    expectClose(y.data as Float32Array, reference(spec, pixels, 2), 2e-6);
  });

  it.each([
    ['NCHW', 'BGR'], ['NHWC', 'BGR'], ['NHWC', 'RGB'],
  ] as const)('feeds a UINT8 %s %s model the pixels unscaled, only reordered', async (layout, channelOrder) => {
    const spec = imageSpec({ layout, channelOrder, datatype: 'UINT8' });
    const pixels = randomPixels(3 * HEIGHT * WIDTH * 3, 11);
    const { y } = await run(prependImagePrelude(identityFor(spec), spec), { x: pixelTensor(spec, pixels, 3) });
    expect(y.data).toEqual(reference(spec, pixels, 3));
  });

  it('replaces the input with UINT8 [N, height, width, 3] of the same name, keeping the batch dimension', () => {
    const [input] = graphOf(prependImagePrelude(identityFor(imageSpec(), 'batch'), imageSpec())).input;
    expect(input.name).toBe('x');
    expect(input.type?.tensorType?.elemType).toBe(onnx.TensorProto.DataType.UINT8);
    expect(dims(input)).toEqual(['batch', HEIGHT, WIDTH, 3]);
  });

  it.each([
    ['NCHW', 'BGR', 'FP32', ['Transpose', 'Gather', 'Cast', 'Mul', 'Add']],
    ['NHWC', 'RGB', 'FP32', ['Transpose', 'Cast', 'Mul', 'Add', 'Transpose']],
    ['NCHW', 'RGB', 'UINT8', ['Transpose']],
    ['NHWC', 'RGB', 'UINT8', ['Identity']],
  ] as const)('prepends for %s %s %s: %j, before the model nodes in order', (layout, channelOrder, datatype, prelude) => {
    const spec = imageSpec({ layout, channelOrder, datatype });
    const wrapped = graphOf(prependImagePrelude(identityFor(spec), spec));
    expect(wrapped.node.map((n) => n.opType)).toEqual([...prelude, 'Identity']);
  });

  it('keeps the opset, IR version, producer and outputs', () => {
    const original = decode(identityFor(imageSpec()));
    const wrapped = decode(prependImagePrelude(identityFor(imageSpec()), imageSpec()));
    expect(wrapped.irVersion).toEqual(original.irVersion);
    expect(wrapped.opsetImport).toEqual(original.opsetImport);
    expect(wrapped.producerName).toBe(original.producerName);
    expect(wrapped.graph?.output).toEqual(original.graph?.output);
  });

  it('copies fields it does not know byte for byte', async () => {
    // ModelProto field 99, length-delimited "abc": no ONNX version defines it, so it stands for
    // fields newer than onnx-proto's schema, which a decode and re-encode would drop.
    const unknown = Uint8Array.of(0x9a, 0x06, 3, 0x61, 0x62, 0x63);
    const model = identityFor(imageSpec());
    const wrapped = prependImagePrelude(Uint8Array.from([...model, ...unknown]), imageSpec());
    expect(Array.from(wrapped.subarray(-unknown.length))).toEqual(Array.from(unknown));
    await (await ort.InferenceSession.create(wrapped)).release();
  });

  it('accepts symbolic height and width', async () => {
    const spec = imageSpec();
    const model = buildIdentityModel({ datatype: 'FP32', shape: ['N', 3, 'height', 'width'] });
    const pixels = randomPixels(HEIGHT * WIDTH * 3, 3);
    const { y } = await run(prependImagePrelude(model, spec), { x: pixelTensor(spec, pixels, 1) });
    expectClose(y.data as Float32Array, reference(spec, pixels, 1), 2e-6);
  });

  it('renames the input where If branches read it from the outer scope', async () => {
    const spec = imageSpec();
    const pixels = randomPixels(HEIGHT * WIDTH * 3, 5);
    const wrapped = prependImagePrelude(buildDoubleIfModel(), spec);
    const normalized = reference(spec, pixels, 1);
    const feeds = (flag: boolean) => ({ x: pixelTensor(spec, pixels, 1), double: new ort.Tensor('bool', [flag], []) });
    expectClose((await run(wrapped, feeds(true))).y.data as Float32Array, normalized.map((v) => 2 * v), 4e-6);
    expectClose((await run(wrapped, feeds(false))).y.data as Float32Array, normalized, 2e-6);
  });

  it('lists its initializers among the graph inputs of an IR 3 model, as IR 3 requires, where callers do not see them', async () => {
    const spec = imageSpec({ channelOrder: 'BGR' });
    const model = reencode(identityFor(spec), (m) => {
      m.irVersion = 3;
      m.opsetImport = [{ domain: '', version: PRELUDE_MIN_OPSET }];
    });
    const wrapped = prependImagePrelude(model, spec);
    const graph = graphOf(wrapped);
    expect(graph.input.map((v) => v.name)).toEqual(['x', ...graph.initializer.map((t) => t.name)]);
    const session = await ort.InferenceSession.create(wrapped);
    expect(session.inputNames).toEqual(['x']);
    const pixels = randomPixels(HEIGHT * WIDTH * 3, 13);
    const { y } = await session.run({ x: pixelTensor(spec, pixels, 1) });
    await session.release();
    expectClose(y.data as Float32Array, reference(spec, pixels, 1), 2e-6);
  });

  it('renames a branch output that is the outer input itself, which ONNX allows though onnxruntime does not', () => {
    const branch = (graph: OnnxTypes.IGraphProto, name: string) => graph.node?.find((n) => n.opType === 'If')?.attribute?.find((a) => a.name === name)?.g;
    const model = reencode(buildDoubleIfModel(), (m) => {
      const elseBranch = branch(graphOf(m), 'else_branch');
      if (!elseBranch?.output) throw new Error('no else branch');
      elseBranch.node = [];
      elseBranch.output = [{ name: 'x', type: elseBranch.output[0].type }];
    });
    const wrapped = graphOf(prependImagePrelude(model, imageSpec()));
    const normalized = branch(wrapped, 'then_branch')?.node?.[0].input?.[0];
    expect(normalized).not.toBe('x');
    expect(branch(wrapped, 'else_branch')?.output?.[0].name).toBe(normalized);
  });
});

/** y = double ? x * 2 : x, both branches reading x from the outer scope. */
function buildDoubleIfModel(): Uint8Array {
  const { FLOAT, BOOL } = onnx.TensorProto.DataType;
  const graphType = onnx.AttributeProto.AttributeType.GRAPH;
  const floatOut = (name: string): OnnxTypes.IValueInfoProto => ({ name, type: { tensorType: { elemType: FLOAT } } });
  const model: OnnxTypes.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'double_if',
      input: [
        { name: 'x', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }, { dimValue: HEIGHT }, { dimValue: WIDTH }] } } } },
        { name: 'double', type: { tensorType: { elemType: BOOL, shape: { dim: [] } } } },
      ],
      output: [floatOut('y')],
      node: [{
        opType: 'If', name: 'if', input: ['double'], output: ['y'],
        attribute: [
          {
            name: 'then_branch', type: graphType, g: {
              name: 'then', output: [floatOut('doubled')],
              initializer: [{ name: 'two', dims: [], dataType: FLOAT, floatData: [2] }],
              node: [{ opType: 'Mul', name: 'mul', input: ['x', 'two'], output: ['doubled'] }],
            },
          },
          {
            name: 'else_branch', type: graphType, g: {
              name: 'else', output: [floatOut('same')],
              // onnxruntime wants a node between an outer value and a branch output.
              node: [{ opType: 'Identity', name: 'identity', input: ['x'], output: ['same'] }],
            },
          },
        ],
      }],
    },
  };
  return onnx.ModelProto.encode(model).finish();
}

describe('imagePreludeModel', () => {
  it('computes the model input alone, from pixels', async () => {
    const spec = imageSpec({ channelOrder: 'BGR' });
    const pixels = randomPixels(2 * HEIGHT * WIDTH * 3, 17);
    const { preprocessed } = await run(imagePreludeModel(spec), { x: pixelTensor(spec, pixels, 2) });
    expectClose(preprocessed.data as Float32Array, reference(spec, pixels, 2), 2e-6);
  });

  it('takes pixels of any height and width where they are null (variable), normalized the same', async () => {
    const spec = imageSpec({ channelOrder: 'BGR' });
    const model = imagePreludeModel({ ...spec, height: null, width: null });
    for (const [height, width] of [[HEIGHT, WIDTH], [3, 5]]) {
      const pixels = randomPixels(height * width * 3, 5);
      const { preprocessed } = await run(model, { x: new ort.Tensor('uint8', pixels, [1, height, width, 3]) });
      expect(preprocessed.dims).toEqual([1, 3, height, width]);
      expectClose(preprocessed.data as Float32Array, reference({ ...spec, height, width }, pixels, 1), 2e-6);
    }
  });
});

describe('prependFeaturePrelude', () => {
  const spec: FeaturePrelude = { input: 'x', mean: [5.8325, 3.0575, 3.7617, 1.2158], std: [0.8324, 0.4391, 1.7589, 0.7692], datatype: 'FP32' };
  const rows = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];
  const standardized = rows.map((v, i) => (v - spec.mean[i % 4]) / spec.std[i % 4]);

  it('standardizes FP32 rows in raw units: (x - mean) / std', async () => {
    const model = buildIdentityModel({ datatype: 'FP32', shape: ['N', 4] });
    const { y } = await run(prependFeaturePrelude(model, spec), { x: new ort.Tensor('float32', Float32Array.from(rows), [2, 4]) });
    expectClose(y.data as Float32Array, standardized, 1e-6);
  });

  it('standardizes FP64 rows in double precision', async () => {
    const model = buildIdentityModel({ datatype: 'FP64', shape: ['N', 4] });
    const { y } = await run(prependFeaturePrelude(model, { ...spec, datatype: 'FP64' }), { x: new ort.Tensor('float64', Float64Array.from(rows), [2, 4]) });
    expectClose(y.data as Float64Array, standardized, 1e-14);
  });

  it('has a standalone form that returns the standardized rows', async () => {
    const { standardized: out } = await run(featurePreludeModel(spec), { x: new ort.Tensor('float32', Float32Array.from(rows), [2, 4]) });
    expectClose(out.data as Float32Array, standardized, 1e-6);
  });
});

describe('prelude errors', () => {
  const fp32 = identityFor(imageSpec());

  it('rejects an input the graph does not have, naming the inputs it has', () => {
    expect(() => prependImagePrelude(fp32, imageSpec({ input: 'image' }))).toThrow(GraphPreludeError);
    expect(() => prependImagePrelude(fp32, imageSpec({ input: 'image' }))).toThrow(/model input 'image': not an input of the model's graph \(its inputs: 'x'\)/);
  });

  it('rejects a FP32 prelude for a UINT8 model input', () => {
    const uint8 = identityFor(imageSpec({ datatype: 'UINT8' }));
    expect(() => prependImagePrelude(uint8, imageSpec())).toThrow(/model input 'x': element type UINT8, but a FP32 prelude feeds FLOAT/);
  });

  it('rejects a UINT8 prelude for a FP32 model input', () => {
    expect(() => prependImagePrelude(fp32, imageSpec({ datatype: 'UINT8' }))).toThrow(/model input 'x': element type FLOAT, but a UINT8 prelude feeds UINT8/);
  });

  it('rejects a FP64 feature prelude for a FLOAT model input', () => {
    const model = buildIdentityModel({ datatype: 'FP32', shape: ['N', 2] });
    expect(() => prependFeaturePrelude(model, { input: 'x', mean: [0, 0], std: [1, 1], datatype: 'FP64' })).toThrow(/element type FLOAT, but a FP64 prelude feeds DOUBLE/);
  });

  it.each<[string, OnnxDatatype, OnnxDim[], Partial<FixedImagePrelude>]>([
    ['height and width swapped', 'FP32', ['N', 3, WIDTH, HEIGHT], {}],
    ['an NHWC prelude for an NCHW model', 'FP32', ['N', 3, HEIGHT, WIDTH], { layout: 'NHWC' }],
    ['a rank that is not 4', 'FP32', ['N', 3 * HEIGHT * WIDTH], {}],
  ])('rejects fixed dimensions that contradict the prelude: %s', (_, datatype, shape, overrides) => {
    const model = buildIdentityModel({ datatype, shape });
    expect(() => prependImagePrelude(model, imageSpec(overrides))).toThrow(/model input 'x': declared shape \[.*\] contradicts the prelude's \[N, .*\]/);
  });

  it('rejects a model whose default-domain opset predates Mul and Add broadcasting', () => {
    const old = reencode(fp32, (m) => { m.opsetImport = [{ domain: '', version: 6 }]; });
    expect(() => prependImagePrelude(old, imageSpec())).toThrow(new RegExp(`opset is 6; the prelude needs ${PRELUDE_MIN_OPSET} or later`));
  });

  it('rejects a mean or std without one value per channel', () => {
    expect(() => prependImagePrelude(fp32, imageSpec({ mean: [0.5, 0.5] }))).toThrow(/model input 'x': mean has 2 values; 3 expected/);
    expect(() => prependImagePrelude(fp32, imageSpec({ std: [1, 1, 1, 1] }))).toThrow(/model input 'x': std has 4 values; 3 expected/);
  });

  it('rejects a std of zero', () => {
    expect(() => prependImagePrelude(fp32, imageSpec({ std: [1, 0, 1] }))).toThrow(/std \[1, 0, 1\] holds zero/);
  });

  it('rejects feature statistics that disagree with each other or with the model', () => {
    const model = buildIdentityModel({ datatype: 'FP32', shape: ['N', 4] });
    expect(() => prependFeaturePrelude(model, { input: 'x', mean: [0, 0, 0, 0], std: [1, 1, 1], datatype: 'FP32' })).toThrow(/std has 3 values; 4 expected/);
    expect(() => prependFeaturePrelude(model, { input: 'x', mean: [0, 0, 0], std: [1, 1, 1], datatype: 'FP32' })).toThrow(/declared shape \[N, 4\] contradicts the prelude's \[N, 3\]/);
  });
});

interface RepositoryConfig {
  inputs: { name: string }[];
  outputs: { name: string }[];
  preprocess: {
    image?: { height: number; width: number; layout: 'NCHW' | 'NHWC'; channel_order: 'RGB' | 'BGR'; datatype: 'FP32'; scale: number; mean: number[]; std: number[] };
    tabular?: { output: string; features: { mean: number; std: number }[] };
  };
}

async function repositoryModel(name: string): Promise<{ model: Uint8Array; config: RepositoryConfig }> {
  const dir = join(ROOT, 'models', name);
  const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as RepositoryConfig;
  return { model: await readFile(join(dir, '1', 'model.onnx')), config };
}

describe('the repository models, wrapped', () => {
  it('text-direction gives the same probabilities from UINT8 pixels as from JavaScript-normalized FP32', async () => {
    const { model, config } = await repositoryModel('text-direction');
    const image = config.preprocess.image;
    if (!image) throw new Error('text-direction has no image preprocessing');
    const spec: FixedImagePrelude = {
      input: config.inputs[0].name, height: image.height, width: image.width, layout: image.layout,
      channelOrder: image.channel_order, datatype: image.datatype, scale: image.scale, mean: image.mean, std: image.std,
    };
    const samples = ['upright.png', 'upside-down.png'].map((file) => join(ROOT, 'models', 'text-direction', 'samples', file));
    const decoded = await Promise.all(samples.map((file) => sharp(file).removeAlpha().resize(spec.width, spec.height, { fit: 'fill' }).raw().toBuffer()));
    const pixels = Uint8Array.from(Buffer.concat(decoded));
    const output = config.outputs[0].name;

    const fromFloats = await run(model, { [spec.input]: new ort.Tensor('float32', reference(spec, pixels, 2) as Float32Array, [2, 3, spec.height, spec.width]) });
    const fromPixels = await run(prependImagePrelude(model, spec), { [spec.input]: pixelTensor(spec, pixels, 2) });
    expectClose(fromPixels[output].data as Float32Array, fromFloats[output].data as Float32Array, 1e-5);
  });

  it('iris gives the same probabilities from rows in cm as from JavaScript-standardized rows', async () => {
    const { model, config } = await repositoryModel('iris');
    const tabular = config.preprocess.tabular;
    if (!tabular) throw new Error('iris has no tabular preprocessing');
    const mean = tabular.features.map((f) => f.mean);
    const std = tabular.features.map((f) => f.std);
    const cm = [5.1, 3.5, 1.4, 0.2, 5.9, 3.0, 4.2, 1.5, 6.9, 3.1, 5.4, 2.1];
    const input = tabular.output;

    const standardized = Float32Array.from(cm, (v, i) => (v - mean[i % 4]) / std[i % 4]);
    const fromStandardized = await run(model, { [input]: new ort.Tensor('float32', standardized, [3, 4]) });
    const fromCm = await run(prependFeaturePrelude(model, { input, mean, std, datatype: 'FP32' }), { [input]: new ort.Tensor('float32', Float32Array.from(cm), [3, 4]) });
    expectClose(fromCm.probabilities.data as Float32Array, fromStandardized.probabilities.data as Float32Array, 1e-6);
    expect(Array.from(fromCm.label.data as BigInt64Array)).toEqual([0n, 1n, 2n]);
  });
});
