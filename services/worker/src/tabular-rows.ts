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

function parseRow(name: string, index: number, bytes: Buffer): Record<string, unknown> {
  let row: unknown;
  try {
    row = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    // Also what a row nested too deeply to parse gets (a RangeError from the parser).
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
