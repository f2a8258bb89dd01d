/** The inputs every benchmark sends: real text-line images and iris rows. */
import { renderTextImage } from '@infermesh/models';

export type ModelName = 'text-direction' | 'iris';

const PHRASES = ['Hello World 2026', 'Inference mesh', 'Model repository', 'Batch size 32', 'Text direction', 'ONNX Runtime', 'Quick brown fox', 'Upside down'];

/** 16 PNG text lines, half of them upside down. */
export async function textImages(): Promise<Buffer[]> {
  return Promise.all(PHRASES.flatMap((phrase) => [renderTextImage(phrase), renderTextImage(phrase, { rotate180: true })]));
}

const ROWS = [
  { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
  { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 },
  { sepal_length: 5.9, sepal_width: 3.0, petal_length: 4.2, petal_width: 1.5 },
  { sepal_length: 4.9, sepal_width: 3.1, petal_length: 1.5, petal_width: 0.1 },
];

export function irisRows(): Buffer[] {
  return ROWS.map((row) => Buffer.from(JSON.stringify(row)));
}

export async function workload(model: ModelName): Promise<Buffer[]> {
  return model === 'text-direction' ? textImages() : irisRows();
}
