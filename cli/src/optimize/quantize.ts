/**
 * Weight-only int8 quantization in TypeScript: each large FP32 weight of a MatMul, Gemm or Conv
 * is stored as INT8 with a symmetric scale (zero point 0) and dequantized back to FP32 in the
 * graph just before its use, so the file shrinks about 4x while every operator still computes
 * in FP32 (no int8 kernels needed).
 *
 * How the weight is dequantized depends on the model's default opset, because changing the
 * opset would change the meaning of other operators in the model (Slice takes its starts and
 * ends as inputs from opset 10, Clip its bounds from 11, Softmax its axis from 13):
 *   - opset >= 13: DequantizeLinear, per output channel (axis 0) for Conv weights;
 *   - opset 10-12: DequantizeLinear, per tensor only (its axis attribute arrives in opset 13);
 *   - opset 7-9:   Cast(INT8 -> FLOAT) then Mul by the scale (DequantizeLinear does not exist
 *                  yet; with zero point 0 it is the same arithmetic), the scale broadcast per
 *                  output channel for Conv weights.
 */
import { decodeModel, defaultOpset, elementCount, encodeModel, floatValues, onnx, OnnxModelError, type NodeProto, type TensorProto } from './onnx-model.js';

/** Weights with fewer elements than this stay FP32: the scale and node cost more than they save. */
export const DEFAULT_MIN_ELEMENTS = 1024;

/** The input that holds the weight, per operator (domain '' unless named). */
const WEIGHT_INPUT: Record<string, { input: number; perChannel: boolean }> = {
  MatMul: { input: 1, perChannel: false },
  Gemm: { input: 1, perChannel: false },
  Conv: { input: 1, perChannel: true },
  // onnxruntime's Conv + activation fusion ('extended' graph optimization); same weight layout.
  'com.microsoft:FusedConv': { input: 1, perChannel: true },
};

export type Dequantization = 'DequantizeLinear' | 'Cast+Mul';

export interface QuantizedWeight {
  name: string;
  /** The operators that use it, e.g. ['Conv']. */
  usedBy: string[];
  dims: number[];
  elements: number;
  /** One scale for the tensor, or one per output channel (axis 0). */
  scheme: 'per-tensor' | 'per-channel';
  dequantization: Dequantization;
}

export interface SkippedWeight {
  name: string;
  reason: string;
}

export interface QuantizeResult {
  bytes: Uint8Array;
  opset: number;
  quantized: QuantizedWeight[];
  skipped: SkippedWeight[];
}

export interface QuantizeOptions {
  minElements?: number;
}

interface WeightSource {
  tensor: TensorProto;
  /** Where it lives: an initializer, or the `value` of a Constant node (older exporters). */
  constantNode?: NodeProto;
}

/** Rounds ties to the even neighbour, as ONNX QuantizeLinear does (Math.round sends -0.5 up). */
function roundHalfToEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Symmetric int8 of `values`, one scale per `channels` equal slices (1: the whole tensor). */
export function quantizeSymmetric(values: Float32Array, channels: number): { q: Int8Array; scales: Float32Array } {
  if (channels < 1 || values.length % channels !== 0) throw new RangeError(`${values.length} values do not split into ${channels} channels`);
  const per = values.length / channels;
  const q = new Int8Array(values.length);
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let max = 0;
    for (let i = c * per; i < (c + 1) * per; i++) max = Math.max(max, Math.abs(values[i]));
    // An all-zero channel keeps scale 1 (its values quantize to 0 either way; a 0 scale would not invert).
    const scale = max > 0 ? max / 127 : 1;
    scales[c] = scale;
    for (let i = c * per; i < (c + 1) * per; i++) q[i] = Math.max(-127, Math.min(127, roundHalfToEven(values[i] / scale)));
  }
  return { q, scales };
}

function opKey(node: NodeProto): string {
  return node.domain && node.domain !== 'ai.onnx' ? `${node.domain}:${node.opType}` : String(node.opType);
}

/** Quantizes the large FP32 weights of `modelBytes` (an ONNX model); returns the new model and what changed. */
export function quantizeWeightsInt8(modelBytes: Uint8Array, options: QuantizeOptions = {}): QuantizeResult {
  const minElements = options.minElements ?? DEFAULT_MIN_ELEMENTS;
  const model = decodeModel(modelBytes);
  const graph = model.graph;
  if (!graph) throw new OnnxModelError('the model has no graph');
  const nodes: NodeProto[] = graph.node ?? [];
  const initializers: TensorProto[] = graph.initializer ?? [];
  const opset = defaultOpset(model);
  if (opset < 7) throw new OnnxModelError(`opset ${opset} is too old to dequantize in the graph (Cast + Mul broadcasting needs opset 7)`);
  const dequantization: Dequantization = opset >= 10 ? 'DequantizeLinear' : 'Cast+Mul';

  // Which tensors are weights, and of which operators.
  const uses = new Map<string, string[]>();
  for (const node of nodes) {
    const spec = WEIGHT_INPUT[opKey(node)];
    const name = spec && node.input?.[spec.input];
    if (!name) continue;
    uses.set(name, [...(uses.get(name) ?? []), opKey(node)]);
  }

  const sources = new Map<string, WeightSource>();
  for (const tensor of initializers) if (tensor.name) sources.set(tensor.name, { tensor });
  for (const node of nodes) {
    if (node.opType !== 'Constant' || (node.domain && node.domain !== 'ai.onnx')) continue;
    const value = node.attribute?.find((a) => a.name === 'value' && a.t);
    const output = node.output?.[0];
    if (value?.t && output) sources.set(output, { tensor: value.t, constantNode: node });
  }
  // An initializer that is also a graph input is a default the caller may override: leave it.
  const graphInputs = new Set((graph.input ?? []).map((i) => String(i.name)));
  const taken = new Set<string>([...nodes.flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]), ...initializers.map((t) => String(t.name)), ...graphInputs]);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };

  const quantized: QuantizedWeight[] = [];
  const skipped: SkippedWeight[] = [];
  const removedInitializers = new Set<string>();
  const removedConstants = new Set<NodeProto>();
  const newInitializers: TensorProto[] = [];
  const newNodes: NodeProto[] = [];

  for (const [name, usedBy] of uses) {
    const source = sources.get(name);
    if (!source) continue; // computed at run time, not a stored weight
    const { tensor } = source;
    const elements = elementCount(tensor);
    if (graphInputs.has(name)) {
      skipped.push({ name, reason: 'also a graph input (an overridable initializer)' });
      continue;
    }
    const values = floatValues(tensor);
    if (!values) {
      skipped.push({ name, reason: tensor.dataType === onnx.TensorProto.DataType.FLOAT ? 'stored outside the model file' : 'not FP32' });
      continue;
    }
    if (elements < minElements) {
      skipped.push({ name, reason: `${elements} elements, under ${minElements}` });
      continue;
    }
    const dims = (tensor.dims ?? []).map(Number);
    // Per output channel only where every use is a convolution (axis 0 is its output channels)
    // and the opset can express it.
    const perChannel = usedBy.every((op) => WEIGHT_INPUT[op].perChannel) && dims.length >= 3 && dims[0] > 1 && (opset >= 13 || opset < 10);
    const channels = perChannel ? dims[0] : 1;
    const { q, scales } = quantizeSymmetric(values, channels);

    const qName = fresh(`${name}_int8`);
    const scaleName = fresh(`${name}_scale`);
    const scaleDims = !perChannel ? [] : dequantization === 'DequantizeLinear' ? [channels] : [channels, ...dims.slice(1).map(() => 1)];
    newInitializers.push(
      { name: qName, dims, dataType: onnx.TensorProto.DataType.INT8, rawData: new Uint8Array(q.buffer) },
      { name: scaleName, dims: scaleDims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: Array.from(scales) },
    );
    // The dequantized tensor keeps the weight's name, so every use reads it unchanged.
    if (dequantization === 'DequantizeLinear') {
      newNodes.push({
        opType: 'DequantizeLinear', name: fresh(`${name}_dequantize`), input: [qName, scaleName], output: [name],
        ...(perChannel ? { attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] } : {}),
      });
    } else {
      const castName = fresh(`${name}_fp32`);
      newNodes.push(
        { opType: 'Cast', name: fresh(`${name}_cast`), input: [qName], output: [castName], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: onnx.TensorProto.DataType.FLOAT }] },
        { opType: 'Mul', name: fresh(`${name}_rescale`), input: [castName, scaleName], output: [name] },
      );
    }
    if (source.constantNode) removedConstants.add(source.constantNode);
    else removedInitializers.add(name);
    quantized.push({ name, usedBy, dims, elements, scheme: perChannel ? 'per-channel' : 'per-tensor', dequantization });
  }

  graph.initializer = [...initializers.filter((t) => !removedInitializers.has(String(t.name))), ...newInitializers];
  // The new nodes read only initializers, so placing them first keeps the graph topologically sorted.
  graph.node = [...newNodes, ...nodes.filter((n) => !removedConstants.has(n))];
  return { bytes: encodeModel(model), opset, quantized, skipped };
}
