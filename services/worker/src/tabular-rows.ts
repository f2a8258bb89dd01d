/**
 * Rows (one JSON object each) → the model's feature tensor: the config's feature order,
 * numbers as given, categories one-hot. Runs in the worker, where the tensor is needed: a
 * row is too cheap to parse to pay a hop to the preprocessor (docs/architecture.md).
 * Standardization, (x - mean) / std, is not done here but in the model graph
 * (graph-prelude.ts), so a client that sends the feature tensor in raw units gets the same
 * answer as one that sends rows.
 */
import { TensorError, type Tensor } from '@infermesh/tensor';
import type { TabularPipelineConfig } from './model-config.js';

/** The largest finite FP32: a row value beyond it would reach the model as ±Infinity. */
const FP32_MAX = 3.4028234663852886e38;

/**
 * A row is a flat object of feature values (depth 1, 2 with an array value, never valid
 * here); deeper nesting is refused by a scan of its bytes before it is parsed, so no
 * parser, serializer or error path ever walks it recursively.
 */
export const MAX_ROW_DEPTH = 8;
/** A row of a few dozen features is a few hundred bytes; 64 KiB leaves room for long category names. */
export const MAX_ROW_BYTES = 64 * 1024;

export function featureWidth(spec: TabularPipelineConfig): number {
  return spec.features.reduce((sum, f) => sum + (f.categories?.length ? f.categories.length : 1), 0);
}

/** A short, bounded description of a JSON value for an error message (never the whole value). */
function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `"${value.slice(0, 40)}…"` : JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

/** Whether JSON text nests objects and arrays deeper than `most`: one pass over the bytes, no recursion. */
export function nestsDeeperThan(bytes: Uint8Array, most: number): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (const byte of bytes) {
    if (inString) {
      if (escaped) escaped = false;
      else if (byte === 0x5c) escaped = true; // backslash
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x7b || byte === 0x5b) {
      if (++depth > most) return true;
    } else if (byte === 0x7d || byte === 0x5d) depth--;
  }
  return false;
}

function parseRow(name: string, index: number, bytes: Buffer): Record<string, unknown> {
  if (bytes.length > MAX_ROW_BYTES) throw new TensorError(`input '${name}': row ${index} is ${bytes.length} bytes, over the limit of ${MAX_ROW_BYTES}`);
  if (nestsDeeperThan(bytes, MAX_ROW_DEPTH)) throw new TensorError(`input '${name}': row ${index} nests objects or arrays deeper than ${MAX_ROW_DEPTH} levels; a row is one flat JSON object of feature values`);
  let row: unknown;
  try {
    row = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new TensorError(`input '${name}': row ${index} is not valid JSON (${(error as Error).message.slice(0, 200)})`);
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new TensorError(`input '${name}': row ${index} must be a JSON object of feature values`);
  return row as Record<string, unknown>;
}

export function rowsToTensor(spec: TabularPipelineConfig, input: Tensor): Tensor {
  if (input.datatype !== 'BYTES') throw new TensorError(`input '${input.name}': datatype ${input.datatype}, expected BYTES (one JSON object per row)`);
  const elements = input.data as Buffer[];
  if (elements.length === 0) throw new TensorError(`input '${input.name}': no rows`);
  const width = featureWidth(spec);
  const fp64 = spec.datatype === 'FP64';
  const out = fp64 ? new Float64Array(elements.length * width) : new Float32Array(elements.length * width);
  elements.forEach((bytes, r) => {
    const row = parseRow(input.name, r, bytes);
    let column = r * width;
    for (const feature of spec.features) {
      const value = row[feature.name];
      if (value === undefined || value === null) throw new TensorError(`input '${input.name}': row ${r} has no value for feature '${feature.name}'`);
      const categories = feature.categories ?? [];
      if (categories.length > 0) {
        const index = categories.indexOf(String(value));
        if (index === -1) throw new TensorError(`input '${input.name}': row ${r} feature '${feature.name}' is ${describe(value)}, expected one of ${categories.join(', ')}`);
        out[column + index] = 1;
        column += categories.length;
      } else {
        const number = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
        if (!Number.isFinite(number)) throw new TensorError(`input '${input.name}': row ${r} feature '${feature.name}' is ${describe(value)}, expected a number`);
        if (!fp64 && Math.abs(number) > FP32_MAX) throw new TensorError(`input '${input.name}': row ${r} feature '${feature.name}' is ${number}, beyond what FP32 holds (±3.4e38)`);
        out[column++] = number;
      }
    }
  });
  return { name: spec.output, datatype: fp64 ? 'FP64' : 'FP32', shape: [elements.length, width], data: out };
}

/** The feature a column of the feature tensor holds (a categorical feature spans one column per category). */
function featureAt(spec: TabularPipelineConfig, column: number): string {
  let start = 0;
  for (const feature of spec.features) {
    const width = feature.categories?.length ? feature.categories.length : 1;
    if (column < start + width) return feature.name;
    start += width;
  }
  return `column ${column}`;
}

/**
 * Refuses a feature tensor sent as it is (instead of rows) that holds NaN or ±Infinity:
 * the model would answer NaN with status OK. Names the first such row and feature.
 */
export function checkFeatureTensor(spec: TabularPipelineConfig, tensor: Tensor): void {
  if (!(tensor.data instanceof Float32Array || tensor.data instanceof Float64Array)) return;
  const width = featureWidth(spec);
  const at = tensor.data.findIndex((value) => !Number.isFinite(value));
  if (at < 0 || width === 0) return;
  throw new TensorError(`input '${tensor.name}': row ${Math.floor(at / width)} feature '${featureAt(spec, at % width)}' is ${tensor.data[at]}; features must be finite numbers`);
}
