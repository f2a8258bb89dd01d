/**
 * The inputs optimize runs both versions on, as the worker serves them: the model with its
 * pipeline's arithmetic prepended (the worker's `preparedModel`), fed UINT8 pixels resized by the
 * preprocessor's own code, or raw rows parsed by the worker's own row parser.
 *
 * Where they come from, in order: the model's labelled evaluation set in the repository
 * (`<model>/evaluation/labels.jsonl` + images, or `rows.jsonl`; models/README.md), so accuracy
 * can be compared too; else, for an image model, text lines drawn by @infermesh/models (no
 * labels); else random values for each FP32 input (no labels).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { renderTextImage } from '@infermesh/models';
import { imagesToPixels } from '@infermesh/preprocessor';
import type { ImagePipeline__Output } from '@infermesh/contracts';
import { imagePipeline, rowsToTensor, servedInputs, tabularPipeline, type ModelConfig } from '@infermesh/worker';
import { mulberry32 } from './random.js';

/** Items read from an evaluation set at most: enough to see disagreements, bounded time and memory. */
export const MAX_SAMPLES = 1000;
const MAX_IMAGE_BYTES = 16 * 1024 * 1024;
const MAX_LINE_BYTES = 64 * 1024;
/** Items generated when the model has no evaluation set. */
const GENERATED_SAMPLES = 64;

export interface SampleTensor {
  name: string;
  type: 'uint8' | 'float32';
  /** One item's shape (no batch dimension). */
  itemShape: number[];
  /** Every item, one after another. */
  data: Uint8Array | Float32Array;
}

export interface SampleSet {
  /** Where the items come from, for the report. */
  source: string;
  count: number;
  inputs: SampleTensor[];
  /** The true class index of each item, where known. */
  labels: (number | undefined)[];
}

export class SampleSetError extends Error {
  override name = 'SampleSetError';
}

/** The classes of the model's classifier output: the first output with labels. */
export function classesOf(config: ModelConfig): { output: string; labels: string[] } | undefined {
  const output = config.outputs.find((o) => o.labels && o.labels.length > 0);
  return output ? { output: output.name, labels: output.labels ?? [] } : undefined;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/** The JSON lines of a small file, bounded in count and line length. */
async function jsonLines(file: string, limit: number): Promise<{ text: string; value: Record<string, unknown> }[]> {
  const lines = (await readFile(file, 'utf8')).split(/\r?\n/).filter((l) => l.trim());
  return lines.slice(0, limit).map((text, n) => {
    if (text.length > MAX_LINE_BYTES) throw new SampleSetError(`${basename(file)} line ${n + 1}: over ${MAX_LINE_BYTES} bytes`);
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SampleSetError(`${basename(file)} line ${n + 1}: not a JSON object`);
    return { text, value: value as Record<string, unknown> };
  });
}

function labelIndex(config: ModelConfig, label: unknown): number | undefined {
  const index = typeof label === 'string' ? (classesOf(config)?.labels.indexOf(label) ?? -1) : -1;
  return index >= 0 ? index : undefined;
}

/** Random FP32 values for every served input that is not a pipeline's (refused when not FP32 with a fixed shape). */
function randomInputs(config: ModelConfig, count: number, skip: string, seed: number): SampleTensor[] {
  const random = mulberry32(seed);
  return servedInputs(config).filter((input) => input.name !== skip).map((input) => {
    if (input.datatype !== 'FP32' || input.shape.some((d) => d < 0)) {
      throw new SampleSetError(`input '${input.name}' (${input.datatype} [${input.shape.join(', ')}]) cannot be filled with random values: only FP32 inputs with fixed shapes`);
    }
    const size = input.shape.reduce((a, b) => a * b, 1);
    // Roughly standardized values: what a tabular prelude or a normalized image produces.
    const data = Float32Array.from({ length: count * size }, () => random() * 2 - 1);
    return { name: input.name, type: 'float32' as const, itemShape: [...input.shape], data };
  });
}

const GENERATED_LINES = ['The quick brown fox', 'jumps over the lazy dog', 'Pack my box with', 'five dozen liquor jugs', 'Sphinx of black quartz', 'judge my vow', 'How vexingly quick', 'daft zebras jump'];

async function imageSamples(config: ModelConfig, repository: string, limit: number): Promise<SampleSet> {
  const pipeline = imagePipeline(config);
  if (!pipeline) throw new SampleSetError('not an image model');
  const dir = join(repository, config.name, 'evaluation');
  const labelsFile = join(dir, 'labels.jsonl');
  let images: Buffer[];
  let labels: (number | undefined)[];
  let source: string;
  if (await isFile(labelsFile)) {
    const lines = await jsonLines(labelsFile, limit);
    images = await Promise.all(lines.map(async ({ value }, n) => {
      const file = value.file;
      if (typeof file !== 'string' || file !== basename(file)) throw new SampleSetError(`labels.jsonl line ${n + 1}: "file" must name an image in ${dir}`);
      const path = join(dir, file);
      if ((await stat(path)).size > MAX_IMAGE_BYTES) throw new SampleSetError(`${file}: over ${MAX_IMAGE_BYTES} bytes`);
      return readFile(path);
    }));
    labels = lines.map(({ value }) => labelIndex(config, value.label));
    source = `${config.name}/evaluation (${images.length} labelled images)`;
  } else {
    images = await Promise.all(Array.from({ length: GENERATED_SAMPLES }, (_, n) => renderTextImage(GENERATED_LINES[n % GENERATED_LINES.length], { rotate180: n % 2 === 1, scale: 3 + (n % 4) })));
    labels = images.map(() => undefined);
    source = `${images.length} generated text lines, half upside down (no labels)`;
  }
  const spec: ImagePipeline__Output = {
    input: pipeline.input, output: pipeline.output, width: pipeline.width, height: pipeline.height, resize: pipeline.resize,
    mean: pipeline.mean, std: pipeline.std, scale: pipeline.scale, layout: pipeline.layout, datatype: pipeline.datatype,
    channelOrder: pipeline.channel_order, padValue: pipeline.pad_value,
  };
  const pixels = await imagesToPixels(spec, pipeline.output, images);
  return {
    source, count: images.length, labels,
    inputs: [{ name: pipeline.output, type: 'uint8', itemShape: [pipeline.height, pipeline.width, 3], data: new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.length) }, ...randomInputs(config, images.length, pipeline.output, 1)],
  };
}

async function rowSamples(config: ModelConfig, repository: string, limit: number): Promise<SampleSet | undefined> {
  const pipeline = tabularPipeline(config);
  const rowsFile = join(repository, config.name, 'evaluation', 'rows.jsonl');
  if (!pipeline || !(await isFile(rowsFile))) return undefined;
  const lines = await jsonLines(rowsFile, limit);
  const tensor = rowsToTensor(pipeline, { name: pipeline.input, datatype: 'BYTES', shape: [lines.length], data: lines.map((l) => Buffer.from(l.text)) });
  if (!(tensor.data instanceof Float32Array)) throw new SampleSetError(`rows of '${config.name}' are ${tensor.datatype}: only FP32 features are compared`);
  return {
    source: `${config.name}/evaluation/rows.jsonl (${lines.length} labelled rows)`, count: lines.length,
    labels: lines.map((l) => labelIndex(config, l.value.label)),
    inputs: [{ name: pipeline.output, type: 'float32', itemShape: tensor.shape.slice(1), data: tensor.data }, ...randomInputs(config, lines.length, pipeline.output, 1)],
  };
}

/** The items to compare the versions of `config`'s model on (see the file comment for which). */
export async function sampleSet(config: ModelConfig, repository: string, limit = MAX_SAMPLES): Promise<SampleSet> {
  if (imagePipeline(config)) return imageSamples(config, repository, limit);
  const rows = await rowSamples(config, repository, limit);
  if (rows) return rows;
  return { source: `${GENERATED_SAMPLES} random inputs (no labels)`, count: GENERATED_SAMPLES, labels: [], inputs: randomInputs(config, GENERATED_SAMPLES, '', 1) };
}
