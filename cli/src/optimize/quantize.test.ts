/** Weight-only int8 quantization of real ONNX models, checked by running them in onnxruntime-node. */
import { buildLinearSoftmaxModel, buildMatMulChainModel, mulberry32 } from '@infermesh/testing';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { decodeModel, encodeModel, onnx, type TensorProto } from './onnx-model.js';
import { quantizeSymmetric, quantizeWeightsInt8 } from './quantize.js';

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT8 = onnx.TensorProto.DataType.INT8;

function randomInput(shape: number[], seed = 7): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() * 2 - 1);
}

async function run(model: Uint8Array, input: Float32Array, shape: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model);
  try {
    const outputs = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, shape) });
    return outputs[session.outputNames[0]].data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((max, v, i) => Math.max(max, Math.abs(v - b[i])), 0);
}

/** The largest error of NCHW outputs relative to the largest magnitude of its channel. */
function worstChannelError(expected: Float32Array, actual: Float32Array, channels: number, plane: number): number {
  let worst = 0;
  for (let start = 0; start < expected.length; start += plane) {
    const slice = (a: Float32Array) => a.subarray(start, start + plane);
    const magnitude = slice(expected).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    worst = Math.max(worst, maxAbsDifference(slice(expected), slice(actual)) / magnitude);
  }
  expect(expected.length % (channels * plane)).toBe(0);
  return worst;
}

/** Random weights, so quantization error is visible (the chain builder's are near-identity). */
function chainWithRandomWeights(width: number, layers: number, opset = 13): Uint8Array {
  const model = decodeModel(buildMatMulChainModel({ width, layers }));
  const random = mulberry32(11);
  for (const tensor of model.graph!.initializer!) {
    const values = Float32Array.from({ length: width * width }, () => (random() * 2 - 1) / Math.sqrt(width));
    tensor.rawData = new Uint8Array(values.buffer);
  }
  model.opsetImport = [{ domain: '', version: opset }];
  return encodeModel(model);
}

/** The same model with each initializer moved into a Constant node, as older exporters write them. */
function withConstantNodes(bytes: Uint8Array): Uint8Array {
  const model = decodeModel(bytes);
  const graph = model.graph!;
  const constants = graph.initializer!.map((t) => ({
    opType: 'Constant', name: `const_${t.name}`, input: [], output: [String(t.name)],
    attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t }],
  }));
  graph.initializer = [];
  graph.node = [...constants, ...graph.node!];
  return encodeModel(model);
}

/** x [N, 4, 8, 8] → Conv (16 output channels, 3x3, padded) → [N, 16, 8, 8], channels scaled 1 to 1000 apart. */
function convModel(opset: number): Uint8Array {
  const random = mulberry32(5);
  const w = new Float32Array(16 * 4 * 3 * 3);
  for (let i = 0; i < w.length; i++) w[i] = (random() * 2 - 1) * 10 ** (Math.floor(i / 36) % 4 - 2);
  const weight: TensorProto = { name: 'W', dims: [16, 4, 3, 3], dataType: FLOAT, rawData: new Uint8Array(w.buffer) };
  const bias: TensorProto = { name: 'B', dims: [16], dataType: FLOAT, floatData: Array.from({ length: 16 }, (_, i) => i * 1e-4) };
  const info = (name: string, channels: number) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: channels }, { dimValue: 8 }, { dimValue: 8 }] } } } });
  const ints = (name: string, values: number[]) => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: values });
  return encodeModel(onnx.ModelProto.create({
    irVersion: 8, opsetImport: [{ domain: '', version: opset }], producerName: 'quantize.test',
    graph: {
      name: 'conv', input: [info('x', 4)], output: [info('y', 16)], initializer: [weight, bias],
      node: [{ opType: 'Conv', name: 'conv', input: ['x', 'W', 'B'], output: ['y'], attribute: [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1])] }],
    },
  }));
}

describe('quantizeSymmetric', () => {
  it('maps the largest magnitude of each channel to ±127 with zero point 0, ties to even', () => {
    const { q, scales } = quantizeSymmetric(Float32Array.from([1, -0.5, 0, 254, -127, 0]), 2);
    expect(Array.from(scales)).toEqual([Math.fround(1 / 127), 2]);
    expect(Array.from(q)).toEqual([127, -64, 0, 127, -64, 0]);
  });

  it('keeps scale 1 for an all-zero channel', () => {
    expect(Array.from(quantizeSymmetric(new Float32Array(4), 1).scales)).toEqual([1]);
  });
});

describe('quantizeWeightsInt8', () => {
  it('stores large MatMul weights as INT8 behind a DequantizeLinear (opset 13)', () => {
    const result = quantizeWeightsInt8(chainWithRandomWeights(64, 2));
    expect(result.quantized.map((w) => [w.name, w.scheme, w.dequantization])).toEqual([['w0', 'per-tensor', 'DequantizeLinear'], ['w1', 'per-tensor', 'DequantizeLinear']]);
    const graph = decodeModel(result.bytes).graph!;
    expect(graph.initializer!.filter((t) => t.dataType === FLOAT && (t.dims ?? []).length > 0)).toEqual([]);
    expect(graph.initializer!.filter((t) => t.dataType === INT8).map((t) => t.name)).toEqual(['w0_int8', 'w1_int8']);
    expect(graph.node!.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.output![0])).toEqual(['w0', 'w1']);
  });

  it('makes the file about four times smaller', () => {
    const original = chainWithRandomWeights(64, 2);
    expect(quantizeWeightsInt8(original).bytes.length).toBeLessThan(original.length * 0.3);
  });

  it('computes the same outputs within int8 rounding, and the saved model loads in onnxruntime', async () => {
    const original = chainWithRandomWeights(64, 2);
    const input = randomInput([8, 64]);
    const expected = await run(original, input, [8, 64]);
    const actual = await run(quantizeWeightsInt8(original).bytes, input, [8, 64]);
    expect(maxAbsDifference(expected, actual)).toBeLessThan(0.02);
    expect(maxAbsDifference(expected, actual)).toBeGreaterThan(0); // it really was quantized
  });

  it('leaves weights under the size threshold, and biases, in FP32', () => {
    const small = buildLinearSoftmaxModel({ weights: [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]], bias: [0.1, 0.2, 0.3] });
    const result = quantizeWeightsInt8(small);
    expect(result.quantized).toEqual([]);
    expect(result.skipped).toEqual([{ name: 'W', reason: '12 elements, under 1024' }]);
    expect(decodeModel(result.bytes).graph!.initializer!.map((t) => [t.name, t.dataType])).toEqual([['W', FLOAT], ['B', FLOAT]]);
  });

  it('quantizes Conv weights per output channel, keeping channels of very different scales accurate', async () => {
    const original = convModel(13);
    const result = quantizeWeightsInt8(original, { minElements: 64 });
    expect(result.quantized).toMatchObject([{ name: 'W', scheme: 'per-channel', dequantization: 'DequantizeLinear', usedBy: ['Conv'] }]);
    const dq = decodeModel(result.bytes).graph!.node!.find((n) => n.opType === 'DequantizeLinear')!;
    expect(dq.attribute!.map((a) => [a.name, Number(a.i)])).toEqual([['axis', 0]]);
    const input = randomInput([2, 4, 8, 8]);
    const expected = await run(original, input, [2, 4, 8, 8]);
    const actual = await run(result.bytes, input, [2, 4, 8, 8]);
    // Relative to each channel's magnitude: one scale for the tensor would zero the smallest channels.
    expect(worstChannelError(expected, actual, 16, 64)).toBeLessThan(0.02);
  });

  it('uses one scale per tensor at opset 10-12, where DequantizeLinear has no axis', () => {
    expect(quantizeWeightsInt8(convModel(11), { minElements: 64 }).quantized).toMatchObject([{ scheme: 'per-tensor', dequantization: 'DequantizeLinear' }]);
  });

  it('dequantizes with Cast and Mul below opset 10, keeping the opset, and the model still runs', async () => {
    const original = chainWithRandomWeights(64, 2, 9);
    const result = quantizeWeightsInt8(original);
    expect(result.quantized.map((w) => w.dequantization)).toEqual(['Cast+Mul', 'Cast+Mul']);
    const model = decodeModel(result.bytes);
    expect(model.opsetImport.map((o) => Number(o.version))).toEqual([9]);
    expect(model.graph!.node!.some((n) => n.opType === 'DequantizeLinear')).toBe(false);
    const input = randomInput([4, 64]);
    expect(maxAbsDifference(await run(original, input, [4, 64]), await run(result.bytes, input, [4, 64]))).toBeLessThan(0.02);
  });

  it('broadcasts per-channel scales over a Conv weight with Cast and Mul below opset 10', async () => {
    const original = convModel(9);
    const result = quantizeWeightsInt8(original, { minElements: 64 });
    expect(result.quantized).toMatchObject([{ scheme: 'per-channel', dequantization: 'Cast+Mul' }]);
    const scale = decodeModel(result.bytes).graph!.initializer!.find((t) => t.name === 'W_scale')!;
    expect(scale.dims!.map(Number)).toEqual([16, 1, 1, 1]);
    const input = randomInput([1, 4, 8, 8]);
    const expected = await run(original, input, [1, 4, 8, 8]);
    const actual = await run(result.bytes, input, [1, 4, 8, 8]);
    expect(worstChannelError(expected, actual, 16, 64)).toBeLessThan(0.02);
  });

  it('quantizes weights held in Constant nodes, removing those nodes', async () => {
    const original = withConstantNodes(chainWithRandomWeights(64, 2));
    const result = quantizeWeightsInt8(original);
    expect(result.quantized.map((w) => w.name)).toEqual(['w0', 'w1']);
    expect(decodeModel(result.bytes).graph!.node!.some((n) => n.opType === 'Constant')).toBe(false);
    const input = randomInput([2, 64]);
    expect(maxAbsDifference(await run(original, input, [2, 64]), await run(result.bytes, input, [2, 64]))).toBeLessThan(0.02);
  });

  it('keeps the model inputs and outputs', () => {
    const original = decodeModel(chainWithRandomWeights(64, 1));
    const quantized = decodeModel(quantizeWeightsInt8(encodeModel(original)).bytes);
    expect(quantized.graph!.input).toEqual(original.graph!.input);
    expect(quantized.graph!.output).toEqual(original.graph!.output);
  });
});
