import { ARRAY_TYPE, type Datatype, type NumericArray } from './datatype.js';
import { TensorError } from './errors.js';
import { elementCount, formatShape } from './shape.js';

/** The typed `contents` field of InferTensorContents, as the loader decodes it. */
export interface TypedContents {
  boolContents?: boolean[];
  intContents?: number[];
  int64Contents?: (string | number)[];
  uintContents?: number[];
  uint64Contents?: (string | number)[];
  fp32Contents?: number[];
  fp64Contents?: number[];
  bytesContents?: Uint8Array[];
}

const FIELD: Record<Datatype, keyof TypedContents | undefined> = {
  BOOL: 'boolContents', UINT8: 'uintContents', UINT16: 'uintContents', UINT32: 'uintContents',
  UINT64: 'uint64Contents', INT8: 'intContents', INT16: 'intContents', INT32: 'intContents',
  INT64: 'int64Contents', FP16: undefined, FP32: 'fp32Contents', FP64: 'fp64Contents', BYTES: 'bytesContents',
};

export function contentsField(datatype: Datatype): keyof TypedContents | undefined {
  return FIELD[datatype];
}

/** Whether any typed contents field holds data. */
export function hasContents(contents: TypedContents | null | undefined): boolean {
  if (!contents) return false;
  return Object.values(contents).some((value) => Array.isArray(value) && value.length > 0);
}

/** Converts typed `contents` into the tensor's typed array (or BYTES elements). */
export function decodeContents(name: string, datatype: Datatype, shape: readonly number[], contents: TypedContents): NumericArray | Buffer[] {
  const field = FIELD[datatype];
  if (!field) throw new TensorError(`input '${name}': ${datatype} has no typed contents field; send it in raw_input_contents`);
  for (const [key, value] of Object.entries(contents)) {
    if (key !== field && Array.isArray(value) && value.length > 0) {
      throw new TensorError(`input '${name}': datatype ${datatype} expects contents.${toSnake(field)}, got contents.${toSnake(key)}`);
    }
  }
  const values = (contents[field] ?? []) as unknown[];
  const count = elementCount(shape);
  if (values.length !== count) {
    throw new TensorError(
      `input '${name}': contents.${toSnake(field)} has ${values.length} elements, shape ${formatShape(shape)} needs ${count}`,
    );
  }
  if (datatype === 'BYTES') return (values as Uint8Array[]).map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  const array = new ARRAY_TYPE[datatype](count);
  if (array instanceof BigInt64Array || array instanceof BigUint64Array) {
    for (let i = 0; i < count; i++) array[i] = BigInt(values[i] as string | number);
  } else if (datatype === 'BOOL') {
    for (let i = 0; i < count; i++) array[i] = values[i] ? 1 : 0;
  } else {
    (array as Exclude<NumericArray, BigInt64Array | BigUint64Array>).set(values as number[]);
  }
  return array;
}

function toSnake(name: string): string {
  return name.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
}
