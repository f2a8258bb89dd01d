import { TensorError } from './errors.js';

export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

/** Shapes arrive as int64 strings (the loader's `longs: String`); check and convert them. */
export function parseShape(name: string, shape: readonly (string | number)[]): number[] {
  return shape.map((dim) => {
    const value = Number(dim);
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new TensorError(`input '${name}': shape ${formatShape(shape)} has an invalid dimension '${String(dim).slice(0, 32)}'`);
    }
    return value;
  });
}

/**
 * Whether `actual` fits the declared `expected` shape, where -1 is any size.
 */
export function shapeMatches(actual: readonly number[], expected: readonly number[]): boolean {
  return actual.length === expected.length && expected.every((dim, i) => dim === -1 || dim === actual[i]);
}

/** Dimensions written out in a message; a longer shape (clients choose shapes) is summarized. */
const SHOWN_DIMS = 8;

export function formatShape(shape: readonly (number | string)[]): string {
  if (shape.length <= SHOWN_DIMS) return `[${shape.join(', ')}]`;
  return `[${shape.slice(0, SHOWN_DIMS).join(', ')}, … ${shape.length} dimensions]`;
}
