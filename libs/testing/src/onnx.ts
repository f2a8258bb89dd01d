/**
 * Builders of small, real ONNX models for tests and for models the repository trains itself.
 *
 * The models are assembled as ONNX protobufs (opset 13, IR version 8) with onnx-proto, so tests
 * exercise onnxruntime exactly as production does instead of mocking it, without binary fixtures
 * checked into the repository.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
// onnx-proto is CommonJS and assigns `module.exports` wholesale, which Node's ESM loader cannot
// split into named exports: take the namespace off the default export, and the types separately.
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { stringify } from 'yaml';

const { onnx } = onnxProto;

/** KServe v2 / Triton tensor datatypes that map onto ONNX element types. */
export type OnnxDatatype =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64' | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'FP32' | 'FP64' | 'BYTES';

/** A dimension: a fixed size, or -1 / a name for a symbolic (dynamic) dimension. */
export type OnnxDim = number | string;

const ELEM_TYPE: Record<OnnxDatatype, OnnxTypes.TensorProto.DataType> = {
  FP32: onnx.TensorProto.DataType.FLOAT,
  UINT8: onnx.TensorProto.DataType.UINT8,
  INT8: onnx.TensorProto.DataType.INT8,
  UINT16: onnx.TensorProto.DataType.UINT16,
  INT16: onnx.TensorProto.DataType.INT16,
  INT32: onnx.TensorProto.DataType.INT32,
  INT64: onnx.TensorProto.DataType.INT64,
  BYTES: onnx.TensorProto.DataType.STRING,
  BOOL: onnx.TensorProto.DataType.BOOL,
  FP16: onnx.TensorProto.DataType.FLOAT16,
  FP64: onnx.TensorProto.DataType.DOUBLE,
  UINT32: onnx.TensorProto.DataType.UINT32,
  UINT64: onnx.TensorProto.DataType.UINT64,
};

/** The ONNX element type (TensorProto.DataType) of a KServe datatype. */
export function onnxElementType(datatype: OnnxDatatype): number {
  return ELEM_TYPE[datatype];
}

const OPSET = 13;
const IR_VERSION = 8;
const PRODUCER = 'infermesh-testing';

function valueInfo(name: string, datatype: OnnxDatatype, shape: readonly OnnxDim[]): OnnxTypes.IValueInfoProto {
  let symbolic = 0;
  const dim = shape.map((d): OnnxTypes.TensorShapeProto.IDimension => {
    if (typeof d === 'string') return { dimParam: d };
    if (d === -1) return { dimParam: symbolic++ === 0 ? 'N' : `d${symbolic - 1}` };
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    return { dimValue: d };
  });
  return { name, type: { tensorType: { elemType: ELEM_TYPE[datatype], shape: { dim } } } };
}

function floatTensor(name: string, dims: readonly number[], values: readonly number[]): OnnxTypes.ITensorProto {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (values.length !== expected) throw new Error(`initializer ${name}: ${values.length} values for dims [${dims.join(', ')}]`);
  for (const v of values) if (!Number.isFinite(v)) throw new Error(`initializer ${name}: non-finite value ${v}`);
  return { name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, floatData: [...values] };
}

function intAttribute(name: string, value: number): OnnxTypes.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}

function encodeModel(graph: OnnxTypes.IGraphProto, docString?: string): Uint8Array {
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: PRODUCER,
    producerVersion: '1',
    ...(docString === undefined ? {} : { docString }),
    graph,
  };
  const error = onnx.ModelProto.verify(model);
  if (error) throw new Error(`invalid ModelProto: ${error}`);
  // protobufjs hands back a Node Buffer that may be a view into a shared pool; copy it into a
  // plain, exactly-sized Uint8Array so `.buffer` is safe and equality checks compare bytes only.
  return new Uint8Array(onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish());
}

export interface AddModelOptions {
  inputName?: string;
  outputName?: string;
  /** Size of the second dimension; the first is the dynamic batch `N`. */
  features?: number;
  addend?: number;
}

/** FP32 `[N, features]` → `y = x + addend`. */
export function buildAddModel(options: AddModelOptions = {}): Uint8Array {
  const { inputName = 'x', outputName = 'y', features = 4, addend = 1 } = options;
  return encodeModel({
    name: 'add',
    input: [valueInfo(inputName, 'FP32', ['N', features])],
    output: [valueInfo(outputName, 'FP32', ['N', features])],
    initializer: [floatTensor('addend', [], [addend])],
    node: [{ opType: 'Add', name: 'add', input: [inputName, 'addend'], output: [outputName] }],
  }, `y = x + ${addend}`);
}

export interface LinearSoftmaxModelOptions {
  inputName?: string;
  /** Name of the softmax output; `probabilitiesName` is accepted as an alias. Default `probabilities`. */
  outputName?: string;
  probabilitiesName?: string;
  /**
   * One row per class, one column per feature (`weights[class][feature]`, the scikit-learn
   * `coef_` layout). Stored transposed as the `[F, C]` MatMul operand.
   */
  weights: readonly (readonly number[])[];
  /** One per class. */
  bias: readonly number[];
  /** When set, an ArgMax output `[N]` INT64 with the most probable class index is added. */
  labelName?: string;
  docString?: string;
}

/** FP32 `[N, F]` → MatMul + Add → Softmax(axis 1) → `[N, C]`, optionally ArgMax → INT64 `[N]`. */
export function buildLinearSoftmaxModel(options: LinearSoftmaxModelOptions): Uint8Array {
  const { inputName = 'x', weights, bias, labelName, docString } = options;
  if (options.outputName !== undefined && options.probabilitiesName !== undefined && options.outputName !== options.probabilitiesName) {
    throw new Error(`outputName '${options.outputName}' and probabilitiesName '${options.probabilitiesName}' disagree`);
  }
  const probabilitiesName = options.probabilitiesName ?? options.outputName ?? 'probabilities';
  const classes = weights.length;
  const features = weights[0]?.length ?? 0;
  if (classes === 0 || features === 0) throw new Error('weights must be a non-empty [classes][features] matrix');
  if (weights.some((row) => row.length !== features)) throw new Error('weights rows differ in length');
  if (bias.length !== classes) throw new Error(`bias has ${bias.length} values for ${classes} classes`);

  const transposed: number[] = [];
  for (let f = 0; f < features; f++) for (let c = 0; c < classes; c++) transposed.push(weights[c][f]);

  const output = [valueInfo(probabilitiesName, 'FP32', ['N', classes])];
  const node: OnnxTypes.INodeProto[] = [
    { opType: 'MatMul', name: 'matmul', input: [inputName, 'W'], output: ['xw'] },
    { opType: 'Add', name: 'bias', input: ['xw', 'B'], output: ['logits'] },
    { opType: 'Softmax', name: 'softmax', input: ['logits'], output: [probabilitiesName], attribute: [intAttribute('axis', 1)] },
  ];
  if (labelName !== undefined) {
    output.push(valueInfo(labelName, 'INT64', ['N']));
    node.push({
      opType: 'ArgMax', name: 'argmax', input: [probabilitiesName], output: [labelName],
      attribute: [intAttribute('axis', 1), intAttribute('keepdims', 0)],
    });
  }
  return encodeModel({
    name: 'linear_softmax',
    input: [valueInfo(inputName, 'FP32', ['N', features])],
    output,
    initializer: [floatTensor('W', [features, classes], transposed), floatTensor('B', [classes], bias)],
    node,
  }, docString);
}

export interface IdentityModelOptions {
  datatype: OnnxDatatype;
  /** Full shape including any batch dimension; -1 or a string makes a dimension dynamic. */
  shape: readonly OnnxDim[];
  inputName?: string;
  outputName?: string;
}

/** `output = input` for any datatype: for tensor encode/decode round trips through a worker. */
export function buildIdentityModel(options: IdentityModelOptions): Uint8Array {
  const { datatype, shape, inputName = 'x', outputName = 'y' } = options;
  return encodeModel({
    name: 'identity',
    input: [valueInfo(inputName, datatype, shape)],
    output: [valueInfo(outputName, datatype, shape)],
    node: [{ opType: 'Identity', name: 'identity', input: [inputName], output: [outputName] }],
  });
}

export interface RepositoryModel {
  name: string;
  version: number | string;
  onnx: Uint8Array;
  /** Written as `config.yaml`; `name` is filled in when missing. Versions of one model share it (the last wins). */
  config: object;
}

/**
 * Lays models out Triton-style: `dir/<name>/config.yaml` and `dir/<name>/<version>/model.onnx`.
 * Returns `dir` for chaining into a service's configuration.
 */
export async function writeModelRepository(dir: string, models: readonly RepositoryModel[]): Promise<string> {
  for (const model of models) {
    const configName: unknown = (model.config as { name?: unknown }).name;
    if (configName !== undefined && configName !== model.name) {
      throw new Error(`model '${model.name}': config name '${String(configName)}' differs from the directory name`);
    }
    const versionDir = join(dir, model.name, String(model.version));
    await mkdir(versionDir, { recursive: true });
    await writeFile(join(versionDir, 'model.onnx'), model.onnx);
    await writeFile(join(dir, model.name, 'config.yaml'), stringify({ name: model.name, ...model.config }));
  }
  return dir;
}

export interface MatMulChainModelOptions {
  inputName?: string;
  outputName?: string;
  /** Features in and out; each layer is a width x width MatMul followed by Tanh. */
  width?: number;
  layers?: number;
}

/**
 * FP32 `[N, width]` → `layers` × (MatMul, Tanh) → `[N, width]`: a model whose compute time
 * grows with the batch, for tests of queueing, cancellation and back-pressure.
 */
export function buildMatMulChainModel(options: MatMulChainModelOptions = {}): Uint8Array {
  const { inputName = 'x', outputName = 'y', width = 256, layers = 4 } = options;
  const initializer: OnnxTypes.ITensorProto[] = [];
  const node: OnnxTypes.INodeProto[] = [];
  let previous = inputName;
  for (let layer = 0; layer < layers; layer++) {
    const weights = new Float32Array(width * width);
    // Deterministic, well-conditioned weights: a scaled identity plus a small ripple.
    for (let i = 0; i < width; i++) for (let j = 0; j < width; j++) weights[i * width + j] = (i === j ? 0.9 : 0) + 0.001 * Math.sin(i * 31 + j * 17 + layer);
    initializer.push({ name: `w${layer}`, dims: [width, width], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(weights.buffer) });
    const product = `mm${layer}`;
    const activated = layer === layers - 1 ? outputName : `t${layer}`;
    node.push({ opType: 'MatMul', name: `matmul${layer}`, input: [previous, `w${layer}`], output: [product] });
    node.push({ opType: 'Tanh', name: `tanh${layer}`, input: [product], output: [activated] });
    previous = activated;
  }
  return encodeModel({
    name: 'matmul-chain',
    input: [valueInfo(inputName, 'FP32', ['N', width])],
    output: [valueInfo(outputName, 'FP32', ['N', width])],
    initializer,
    node,
  }, `${layers} x (MatMul ${width}x${width}, Tanh)`);
}
