/** Reading and writing ONNX models with onnx-proto, and the tensor values the quantizer needs. */
// onnx-proto is CommonJS and assigns `module.exports` wholesale, which Node's ESM loader cannot
// split into named exports: take the namespace off the default export, and the types separately.
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

export const { onnx } = onnxProto;
export type ModelProto = OnnxTypes.ModelProto;
export type TensorProto = OnnxTypes.ITensorProto;
export type NodeProto = OnnxTypes.INodeProto;

/** A model file larger than this is refused before it is decoded (protobuf's own limit is 2 GiB). */
export const MAX_MODEL_BYTES = 1024 * 1024 * 1024;

export class OnnxModelError extends Error {
  override name = 'OnnxModelError';
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  if (bytes.length > MAX_MODEL_BYTES) throw new OnnxModelError(`the model is ${bytes.length} bytes, over the ${MAX_MODEL_BYTES}-byte limit`);
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new OnnxModelError(`not an ONNX model: ${(error as Error).message}`);
  }
}

export function encodeModel(model: ModelProto): Uint8Array {
  const error = onnx.ModelProto.verify(model);
  if (error) throw new OnnxModelError(`invalid ModelProto: ${error}`);
  // protobufjs may hand back a view into a shared pool: copy it into an exactly-sized array.
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

/** The version of the default ONNX operator set (domain '' or 'ai.onnx') the model imports. */
export function defaultOpset(model: ModelProto): number {
  const entry = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!entry) throw new OnnxModelError('the model imports no default ONNX operator set');
  return Number(entry.version);
}

export function elementCount(tensor: TensorProto): number {
  return (tensor.dims ?? []).reduce<number>((n, d) => n * Number(d), 1);
}

/**
 * The values of an FP32 tensor, from `rawData` (little-endian bytes, what exporters write) or
 * `floatData`; undefined for any other element type or a tensor stored outside the file.
 */
export function floatValues(tensor: TensorProto): Float32Array | undefined {
  if (tensor.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
  if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) return undefined;
  const count = elementCount(tensor);
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    if (raw.length !== count * 4) throw new OnnxModelError(`tensor '${tensor.name}': ${raw.length} raw bytes for ${count} floats`);
    // Copy: the raw bytes may sit at an offset that is not a multiple of 4 in the decoded buffer.
    const values = new Float32Array(count);
    new Uint8Array(values.buffer).set(raw);
    return values;
  }
  const data = tensor.floatData ?? [];
  if (data.length !== count) throw new OnnxModelError(`tensor '${tensor.name}': ${data.length} values for ${count} elements`);
  return Float32Array.from(data);
}
