/** Rows (one JSON object each) → one model tensor: feature order, scaling, one-hot. */
import { TensorError, type Tensor } from '@infermesh/tensor';
import type { TabularPipeline__Output } from '@infermesh/contracts';

export function featureWidth(spec: TabularPipeline__Output): number {
  return spec.features.reduce((sum, f) => sum + (f.categories.length > 0 ? f.categories.length : 1), 0);
}

function parseRow(name: string, index: number, bytes: Buffer): Record<string, unknown> {
  let row: unknown;
  try {
    row = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new TensorError(`input '${name}': row ${index} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new TensorError(`input '${name}': row ${index} must be a JSON object of feature values`);
  return row as Record<string, unknown>;
}

export function runTabularPipeline(spec: TabularPipeline__Output, input: Tensor): Tensor {
  if (input.datatype !== 'BYTES') throw new TensorError(`input '${input.name}': datatype ${input.datatype}, expected BYTES (one JSON object per row)`);
  const rows = (input.data as Buffer[]).map((bytes, i) => parseRow(input.name, i, bytes));
  if (rows.length === 0) throw new TensorError(`input '${input.name}': no rows`);
  const width = featureWidth(spec);
  const out = spec.datatype === 'FP64' ? new Float64Array(rows.length * width) : new Float32Array(rows.length * width);
  rows.forEach((row, r) => {
    let column = r * width;
    for (const feature of spec.features) {
      const value = row[feature.name];
      if (value === undefined || value === null) throw new TensorError(`input '${input.name}': row ${r} has no value for feature '${feature.name}'`);
      if (feature.categories.length > 0) {
        const index = feature.categories.indexOf(String(value));
        if (index === -1) throw new TensorError(`input '${input.name}': row ${r} feature '${feature.name}' is '${String(value)}', expected one of ${feature.categories.join(', ')}`);
        out[column + index] = 1;
        column += feature.categories.length;
      } else {
        const number = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
        if (!Number.isFinite(number)) throw new TensorError(`input '${input.name}': row ${r} feature '${feature.name}' is ${JSON.stringify(value)}, expected a number`);
        out[column++] = (number - feature.mean) / (feature.std || 1);
      }
    }
  });
  return { name: spec.output, datatype: spec.datatype === 'FP64' ? 'FP64' : 'FP32', shape: [rows.length, width], data: out };
}
