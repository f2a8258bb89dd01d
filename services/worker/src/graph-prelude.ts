/**
 * Prepends a model's input preprocessing to its ONNX graph, so onnxruntime does the arithmetic
 * and images cross process boundaries as UINT8 pixels (a quarter of the bytes of FP32) and
 * tabular rows in the units clients know.
 *
 * The model is decoded with onnx-proto to read and check it, but written back at the protobuf
 * wire level: records the prelude does not touch are copied byte for byte. onnx-proto describes
 * ONNX 1.10 (IR 8); re-encoding a whole model through it would silently drop fields that later
 * versions added (NodeProto.overload, metadata_props, ...).
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { GRAPH, MODEL_GRAPH, concat, message, splitRecords } from './onnx-wire.js';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

/**
 * The lowest default-domain opset the prepended nodes are valid in: Mul, Add, Sub and Div
 * broadcast numpy-style from opset 7 (Cast takes its integer `to` from 6; Gather, Transpose and
 * Identity are unchanged since 1).
 */
export const PRELUDE_MIN_OPSET = 7;

/** A model, or a preprocessing spec, that a prelude cannot be prepended to; the message says why. */
export class GraphPreludeError extends Error {
  override readonly name = 'GraphPreludeError';
  /** The model input the prelude was meant to feed. */
  readonly input: string;
  constructor(input: string, problem: string, options?: ErrorOptions) {
    super(`model input '${input}': ${problem}`, options);
    this.input = input;
  }
}

/** Normalizes RGB pixels, UINT8 [N, height, width, 3], into the model input named `input`. */
export interface ImagePrelude {
  input: string;
  /** null: any size (the graph's input leaves it variable; variable-size.ts pads batches). */
  height: number | null;
  width: number | null;
  layout: 'NCHW' | 'NHWC';
  /** The model's channel order; BGR reverses the incoming RGB channels. */
  channelOrder: 'RGB' | 'BGR';
  /** The model input's type: UINT8 models get the pixels reordered, never scaled. */
  datatype: 'FP32' | 'UINT8';
  /** Channel c of the model input is (pixel * scale - mean[c]) / std[c], c in the model's order. */
  scale: number;
  mean: readonly number[];
  std: readonly number[];
}

/** Standardizes rows, [N, F] in raw units, into the model input named `input`: (x - mean) / std. */
export interface FeaturePrelude {
  input: string;
  mean: readonly number[];
  std: readonly number[];
  datatype: 'FP32' | 'FP64';
}

type FreshName = (hint: string) => string;

interface PreludeNodes {
  node: OnnxTypes.INodeProto[];
  initializer: OnnxTypes.ITensorProto[];
}

/** What one kind of prelude needs of the model input and how it computes it. */
interface PreludePlan {
  /** The element type the model input must have, and the datatype that asked for it. */
  elemType: number;
  datatype: string;
  /** The model input's shape; null where any size (the batch) will do. */
  dims: readonly (number | null)[];
  /** The prelude's own input: the model's batch dimension, then the rest of its shape. */
  inputType(batch: OnnxTypes.TensorShapeProto.IDimension): OnnxTypes.ITypeProto;
  nodes(source: string, target: string, fresh: FreshName): PreludeNodes;
}

/**
 * Replaces model input `spec.input` with UINT8 RGB pixels [N, height, width, 3] (NHWC), feeding
 * the original graph through Transpose to planes, Gather (BGR only), Cast + Mul + Add (FP32 only)
 * and Transpose back (NHWC only); a UINT8 NHWC RGB model gets the pixels through an Identity.
 */
export function prependImagePrelude(model: Uint8Array, spec: ImagePrelude): Uint8Array {
  return prepend(model, spec.input, imagePlan(spec));
}

/** Replaces model input `spec.input` with raw rows of the same type and [N, F], standardized by Sub + Div. */
export function prependFeaturePrelude(model: Uint8Array, spec: FeaturePrelude): Uint8Array {
  return prepend(model, spec.input, featurePlan(spec));
}

/** The image prelude alone: input `spec.input` (pixels) → `output`, the tensor the model would get. */
export function imagePreludeModel(spec: ImagePrelude, output = 'preprocessed'): Uint8Array {
  return standaloneModel(spec.input, output, imagePlan(spec));
}

/** The feature prelude alone: input `spec.input` (raw rows) → `output`, the standardized rows. */
export function featurePreludeModel(spec: FeaturePrelude, output = 'standardized'): Uint8Array {
  return standaloneModel(spec.input, output, featurePlan(spec));
}

function imagePlan(spec: ImagePrelude): PreludePlan {
  const { input, height, width, layout } = spec;
  for (const [what, size] of [['height', height], ['width', width]] as const) {
    if (size !== null && (!Number.isSafeInteger(size) || size <= 0)) throw new GraphPreludeError(input, `image ${what} ${size} is not a positive integer`);
  }
  checkLength(input, 'mean', spec.mean, 3, 'one per channel');
  checkLength(input, 'std', spec.std, 3, 'one per channel');
  const fp32 = spec.datatype === 'FP32';
  // A UINT8 model takes the pixels as they are: scale, mean and std do not apply to it.
  if (fp32) checkAffine(input, spec.mean, spec.std, spec.scale);
  return {
    elemType: fp32 ? DataType.FLOAT : DataType.UINT8,
    datatype: spec.datatype,
    dims: layout === 'NCHW' ? [null, 3, height, width] : [null, height, width, 3],
    inputType: (batch) => tensorType(DataType.UINT8, [batch, size(height, 'height'), size(width, 'width'), { dimValue: 3 }]),
    nodes(source, target, fresh) {
      const bgr = spec.channelOrder === 'BGR';
      if (layout === 'NHWC' && !fp32 && !bgr) return chain(source, target, [], fresh);
      // The channel work runs on planes, [N, 3, H, W]: onnxruntime gathers single bytes and
      // broadcasts over a last axis of 3 element by element, which measured 10-15 times slower
      // than these planar forms on 48 x 192 images; an NHWC model pays one more Transpose back.
      const steps: Step[] = [{ opType: 'Transpose', hint: 'planar', attribute: [intsAttribute('perm', [0, 3, 1, 2])] }];
      // Reorder while the channels are still bytes: Cast quadruples what Gather would move.
      if (bgr) steps.push({ opType: 'Gather', hint: 'bgr', constants: [tensor(fresh('bgr_indices'), DataType.INT64, [3], [2, 1, 0])], attribute: [intAttribute('axis', 1)] });
      if (fp32) {
        // (p * scale - mean) / std == p * a + b, folded here so each pixel costs one Mul and one Add.
        const a = spec.std.map((s) => spec.scale / s);
        const b = spec.std.map((s, c) => -spec.mean[c] / s);
        steps.push(
          { opType: 'Cast', hint: 'float', attribute: [intAttribute('to', DataType.FLOAT)] },
          { opType: 'Mul', hint: 'scaled', constants: [tensor(fresh('scale'), DataType.FLOAT, [3, 1, 1], a)] },
          { opType: 'Add', hint: 'normalized', constants: [tensor(fresh('offset'), DataType.FLOAT, [3, 1, 1], b)] },
        );
      }
      if (layout === 'NHWC') steps.push({ opType: 'Transpose', hint: 'nhwc', attribute: [intsAttribute('perm', [0, 2, 3, 1])] });
      return chain(source, target, steps, fresh);
    },
  };
}

/** A fixed dimension, or a named variable one. */
function size(value: number | null, name: string): OnnxTypes.TensorShapeProto.IDimension {
  return value === null ? { dimParam: name } : { dimValue: value };
}

function featurePlan(spec: FeaturePrelude): PreludePlan {
  const { input, mean, std } = spec;
  if (mean.length === 0) throw new GraphPreludeError(input, 'mean is empty; one value per feature expected');
  checkLength(input, 'std', std, mean.length, 'one per feature, as many as mean');
  checkAffine(input, mean, std, 1);
  const elemType = spec.datatype === 'FP64' ? DataType.DOUBLE : DataType.FLOAT;
  return {
    elemType,
    datatype: spec.datatype,
    dims: [null, mean.length],
    inputType: (batch) => tensorType(elemType, [batch, { dimValue: mean.length }]),
    // Sub then Div rather than a folded Mul + Add: no cancellation between two large terms.
    nodes: (source, target, fresh) => chain(source, target, [
      { opType: 'Sub', hint: 'centered', constants: [tensor(fresh('mean'), elemType, [mean.length], mean)] },
      { opType: 'Div', hint: 'standardized', constants: [tensor(fresh('std'), elemType, [std.length], std)] },
    ], fresh),
  };
}

function checkLength(input: string, what: string, values: readonly number[], expected: number, why: string): void {
  if (values.length !== expected) throw new GraphPreludeError(input, `${what} has ${values.length} values; ${expected} expected (${why})`);
}

function checkAffine(input: string, mean: readonly number[], std: readonly number[], scale: number): void {
  if (!Number.isFinite(scale) || scale === 0) throw new GraphPreludeError(input, `scale ${scale} is not a finite, non-zero number`);
  if (!mean.every(Number.isFinite)) throw new GraphPreludeError(input, `mean [${mean.join(', ')}] holds a non-finite value`);
  if (!std.every((s) => Number.isFinite(s) && s !== 0)) throw new GraphPreludeError(input, `std [${std.join(', ')}] holds zero or a non-finite value`);
}

interface Step {
  opType: string;
  /** Names the step's output (unless it is the last) and its node. */
  hint: string;
  /** Second inputs, as initializers. */
  constants?: OnnxTypes.ITensorProto[];
  attribute?: OnnxTypes.IAttributeProto[];
}

/** Threads `source` through the steps into `target`, in topological order. */
function chain(source: string, target: string, steps: readonly Step[], fresh: FreshName): PreludeNodes {
  const all = steps.length > 0 ? steps : [{ opType: 'Identity', hint: 'identity' }];
  const node: OnnxTypes.INodeProto[] = [];
  const initializer: OnnxTypes.ITensorProto[] = [];
  let value = source;
  all.forEach((step, i) => {
    const output = i === all.length - 1 ? target : fresh(step.hint);
    const constants = step.constants ?? [];
    node.push({ name: fresh(`${step.hint}_node`), opType: step.opType, input: [value, ...constants.map((c) => c.name ?? '')], output: [output], attribute: step.attribute ?? [] });
    initializer.push(...constants);
    value = output;
  });
  return { node, initializer };
}

function prepend(bytes: Uint8Array, input: string, plan: PreludePlan): Uint8Array {
  let model: OnnxTypes.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new GraphPreludeError(input, `the model is not an ONNX protobuf (${(error as Error).message})`, { cause: error });
  }
  // decode builds class instances, whose repeated fields are never null (the interface allows it).
  const graph = model.graph as OnnxTypes.GraphProto | null;
  if (!graph) throw new GraphPreludeError(input, 'the model has no graph');
  const constants = new Set(graph.initializer.map((t) => t.name));
  const declared = graph.input.find((v) => v.name === input);
  if (!declared) {
    const fed = graph.input.filter((v) => !constants.has(v.name)).map((v) => `'${v.name}'`);
    throw new GraphPreludeError(input, `not an input of the model's graph (its inputs: ${fed.join(', ') || 'none'})`);
  }
  if (constants.has(input)) throw new GraphPreludeError(input, 'has an initializer, so it is a constant with a default, not an input the prelude can feed');
  if (graph.output.some((v) => v.name === input)) throw new GraphPreludeError(input, 'is also a graph output, which would then return the raw pixels or rows');
  checkOpset(input, model);
  checkType(input, declared, plan);

  const taken = new Set<string>();
  collectNames(graph, taken);
  const fresh: FreshName = (hint) => {
    let name = `prelude.${input}.${hint}`;
    for (let i = 1; taken.has(name); i++) name = `prelude.${input}.${hint}_${i}`;
    taken.add(name);
    return name;
  };
  const source = fresh('source');
  const prelude = plan.nodes(input, source, fresh);
  const batch = declared.type?.tensorType?.shape?.dim?.[0];
  const batchSize = batch ? fixedSize(batch) : null;
  const replacement: OnnxTypes.IValueInfoProto = {
    name: input,
    type: plan.inputType(batchSize !== null ? { dimValue: batchSize } : { dimParam: batch?.dimParam || 'N' }),
    ...(declared.docString ? { docString: declared.docString } : {}),
  };

  // Walk the graph's records in order, each repeated field's records matching the decoded array's entries.
  const seen = { node: 0, input: 0, valueInfo: 0, annotation: 0 };
  const records: Uint8Array[] = prelude.node.map((n) => message(GRAPH.node, onnx.NodeProto.encode(n).finish()));
  for (const record of splitRecords(graphPayload(input, bytes))) {
    if (record.field === GRAPH.node) {
      const node = graph.node[seen.node++];
      records.push(renameInNode(node, input, source) ? message(GRAPH.node, onnx.NodeProto.encode(node).finish()) : record.bytes);
    } else if (record.field === GRAPH.input) {
      const isTarget = graph.input[seen.input++].name === input;
      records.push(isTarget ? message(GRAPH.input, onnx.ValueInfoProto.encode(replacement).finish()) : record.bytes);
    } else if (record.field === GRAPH.valueInfo) {
      const info = graph.valueInfo[seen.valueInfo++];
      records.push(info.name === input ? message(GRAPH.valueInfo, onnx.ValueInfoProto.encode({ ...info, name: source }).finish()) : record.bytes);
    } else if (record.field === GRAPH.quantizationAnnotation) {
      const annotation = graph.quantizationAnnotation[seen.annotation++];
      records.push(annotation.tensorName === input
        ? message(GRAPH.quantizationAnnotation, onnx.TensorAnnotation.encode({ ...annotation, tensorName: source }).finish())
        : record.bytes);
    } else {
      records.push(record.bytes);
    }
  }
  for (const t of prelude.initializer) records.push(message(GRAPH.initializer, onnx.TensorProto.encode(t).finish()));
  // The model's declared type of its input now describes the prelude's output, for shape inference.
  if (!graph.valueInfo.some((v) => v.name === input)) records.push(message(GRAPH.valueInfo, onnx.ValueInfoProto.encode({ name: source, type: declared.type }).finish()));
  // IR 3 requires every initializer to be listed among the graph inputs as well.
  if (toNumber(model.irVersion) < 4) {
    for (const t of prelude.initializer) {
      records.push(message(GRAPH.input, onnx.ValueInfoProto.encode({ name: t.name, type: tensorType(t.dataType ?? 0, (t.dims ?? []).map((d) => ({ dimValue: d }))) }).finish()));
    }
  }
  const graphBytes = concat(records);
  return concat(splitRecords(bytes).map((r) => (r.field === MODEL_GRAPH ? message(MODEL_GRAPH, graphBytes) : r.bytes)));
}

function checkOpset(input: string, model: OnnxTypes.ModelProto): void {
  const opset = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!opset) throw new GraphPreludeError(input, `the model imports no default-domain (ai.onnx) opset; the prelude needs opset ${PRELUDE_MIN_OPSET} or later`);
  const version = toNumber(opset.version);
  if (version < PRELUDE_MIN_OPSET) {
    throw new GraphPreludeError(input, `the model's default-domain opset is ${version}; the prelude needs ${PRELUDE_MIN_OPSET} or later (Mul and Add broadcasting)`);
  }
}

function checkType(input: string, declared: OnnxTypes.IValueInfoProto, plan: PreludePlan): void {
  const tensor = declared.type?.tensorType;
  if (!tensor) throw new GraphPreludeError(input, 'not a tensor');
  const elemType = tensor.elemType ?? 0;
  if (elemType !== plan.elemType) {
    throw new GraphPreludeError(input, `element type ${elemTypeName(elemType)}, but a ${plan.datatype} prelude feeds ${elemTypeName(plan.elemType)}`);
  }
  const dims = tensor.shape?.dim;
  if (!dims) return; // rank unknown: onnxruntime checks the prelude's output at run time
  const wanted = `[${plan.dims.map((d) => d ?? 'N').join(', ')}]`;
  const contradicts = dims.length !== plan.dims.length
    || dims.some((dim, i) => plan.dims[i] !== null && fixedSize(dim) !== null && fixedSize(dim) !== plan.dims[i]);
  if (contradicts) {
    const shape = dims.map((d) => fixedSize(d) ?? (d.dimParam || '?'));
    throw new GraphPreludeError(input, `declared shape [${shape.join(', ')}] contradicts the prelude's ${wanted}`);
  }
}

/** Every name the graph and its subgraphs use, so the prelude's own names collide with none. */
function collectNames(graph: OnnxTypes.IGraphProto, names: Set<string>): void {
  const add = (name: string | null | undefined) => { if (name) names.add(name); };
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) add(v.name);
  for (const t of graph.initializer ?? []) add(t.name);
  for (const t of graph.sparseInitializer ?? []) add(t.values?.name);
  for (const node of graph.node ?? []) {
    add(node.name);
    for (const name of [...(node.input ?? []), ...(node.output ?? [])]) add(name);
    for (const sub of subgraphs(node)) collectNames(sub, names);
  }
}

function subgraphs(node: OnnxTypes.INodeProto): OnnxTypes.IGraphProto[] {
  return (node.attribute ?? []).flatMap((a) => [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]);
}

/** Renames uses of `from` in the node and in the subgraphs it holds (If, Loop, Scan bodies); true if any. */
function renameInNode(node: OnnxTypes.INodeProto, from: string, to: string): boolean {
  let renamed = false;
  node.input = (node.input ?? []).map((name) => {
    if (name !== from) return name;
    renamed = true;
    return to;
  });
  for (const sub of subgraphs(node)) renamed = renameInSubgraph(sub, from, to) || renamed;
  return renamed;
}

function renameInSubgraph(graph: OnnxTypes.IGraphProto, from: string, to: string): boolean {
  // A subgraph that defines the name itself refers to its own value, not the outer input.
  const defines = [...(graph.input ?? []), ...(graph.initializer ?? [])].some((v) => v.name === from)
    || (graph.node ?? []).some((n) => (n.output ?? []).includes(from));
  if (defines) return false;
  let renamed = false;
  for (const node of graph.node ?? []) renamed = renameInNode(node, from, to) || renamed;
  // A body may return the outer value directly, and describe it in its value_info.
  for (const v of [...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    if (v.name === from) {
      v.name = to;
      renamed = true;
    }
  }
  return renamed;
}

function standaloneModel(input: string, output: string, plan: PreludePlan): Uint8Array {
  if (output === input) throw new GraphPreludeError(input, 'the prelude model needs an output name of its own');
  const taken = new Set([input, output]);
  const fresh: FreshName = (hint) => {
    let name = `${input}.${hint}`;
    for (let i = 1; taken.has(name); i++) name = `${input}.${hint}_${i}`;
    taken.add(name);
    return name;
  };
  const { node, initializer } = plan.nodes(input, output, fresh);
  const model: OnnxTypes.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'infermesh-graph-prelude',
    graph: {
      name: 'prelude',
      input: [{ name: input, type: plan.inputType({ dimParam: 'N' }) }],
      output: [{ name: output, type: tensorType(plan.elemType, plan.dims.map((d, i) => (d === null ? { dimParam: i === 0 ? 'N' : `d${i}` } : { dimValue: d }))) }],
      node,
      initializer,
    },
  };
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

function tensorType(elemType: number, dim: OnnxTypes.TensorShapeProto.IDimension[]): OnnxTypes.ITypeProto {
  return { tensorType: { elemType, shape: { dim } } };
}

function tensor(name: string, dataType: number, dims: readonly number[], values: readonly number[]): OnnxTypes.ITensorProto {
  const data = dataType === DataType.FLOAT ? { floatData: [...values] }
    : dataType === DataType.DOUBLE ? { doubleData: [...values] }
      : { int64Data: [...values] };
  return { name, dims: [...dims], dataType, ...data };
}

function intAttribute(name: string, i: number): OnnxTypes.IAttributeProto {
  return { name, type: AttributeType.INT, i };
}

function intsAttribute(name: string, ints: number[]): OnnxTypes.IAttributeProto {
  return { name, type: AttributeType.INTS, ints };
}

function elemTypeName(elemType: number): string {
  return DataType[elemType] ?? String(elemType);
}

/** A dimension's fixed size; null when it is symbolic or left out. */
function fixedSize(dim: OnnxTypes.TensorShapeProto.IDimension): number | null {
  // dimValue and dimParam are a oneof, so an absent dimValue decodes as null, not 0.
  return dim.dimValue == null ? null : toNumber(dim.dimValue);
}

/** int64 fields decode as Long when the long package is present, as plain numbers otherwise. */
function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  return value == null ? 0 : typeof value === 'number' ? value : value.toNumber();
}

function graphPayload(input: string, model: Uint8Array): Uint8Array {
  const graphs = splitRecords(model).filter((r) => r.field === MODEL_GRAPH);
  // protobuf would merge several records into one graph; no writer of ONNX models emits that.
  if (graphs.length !== 1 || !graphs[0].payload) throw new GraphPreludeError(input, `the model holds ${graphs.length} graph records; one expected`);
  return graphs[0].payload;
}
