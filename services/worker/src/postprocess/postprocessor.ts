/**
 * A model's output post-processing (config.yaml `postprocess`): the worker answers with what
 * it makes of the graph's raw outputs, per request, after the batch is split. Its outputs
 * replace the graph's in ModelMetadata and heartbeats; a request may ask only for them.
 *
 * - `db`: a DB text detector's probability map → `boxes` FP32 [K, 4, 2], `scores` FP32 [K],
 *   `image_index` INT32 [K] for the K boxes of all of the request's images (ragged: K is the
 *   request's, not a batch dimension), in the pixels of each image as sent.
 * - `ctc`: a CTC recognizer's class probabilities → `text` BYTES [N], `score` FP32 [N].
 */
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { Tensor } from '@infermesh/tensor';
import type { ModelConfig } from '../model-config.js';
import { ctcDecode, readDictionary } from './ctc.js';
import { dbBoxes } from './db.js';
import type { ImageGeometry } from './geometry.js';
import type { CtcOptions, DbOptions } from './schema.js';

/** An output as clients see it: its whole shape, -1 where it varies. */
export interface PostprocessedOutput {
  name: string;
  datatype: 'FP32' | 'INT32' | 'BYTES';
  shape: number[];
}

/** What one request's items were run as: the frame (the batch tensor's height and width) and each item's place in it. */
export interface RunGeometry {
  frame: { height: number; width: number };
  items: readonly ImageGeometry[];
}

export interface OutputPostprocessor {
  /** The outputs the model answers with. */
  readonly outputs: readonly PostprocessedOutput[];
  /** The raw graph output it reads. */
  readonly rawOutput: string;
  /** One request's outputs from its rows of the raw output ([items, ...]). */
  apply(raw: Tensor, geometry: RunGeometry): Tensor[];
}

/** The model's postprocessor, or undefined when its config declares none; a dictionary that cannot be used fails the load. */
export async function loadPostprocessor(config: ModelConfig, versionDir: string, session?: Pick<ort.InferenceSession, 'outputMetadata' | 'outputNames'>): Promise<OutputPostprocessor | undefined> {
  const postprocess = config.postprocess;
  if (!postprocess) return undefined;
  const options = 'db' in postprocess ? postprocess.db : postprocess.ctc;
  const rawOutput = options.output ?? config.outputs[0].name;
  if (!config.outputs.some((o) => o.name === rawOutput)) {
    throw new Error(`postprocess output '${rawOutput}' is not one of the model's outputs (${config.outputs.map((o) => o.name).join(', ')})`);
  }
  if ('db' in postprocess) return new DbPostprocessor(rawOutput, postprocess.db);
  const characters = await readDictionary(join(versionDir, postprocess.ctc.dictionary), postprocess.ctc).catch((error: Error) => {
    throw new Error(`postprocess ctc: dictionary '${postprocess.ctc.dictionary}' cannot be read: ${error.message}`, { cause: error });
  });
  const meta = session?.outputMetadata[session.outputNames.indexOf(rawOutput)];
  const classes = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  if (typeof classes === 'number' && classes !== characters.length + 1) {
    throw new Error(`postprocess ctc: output '${rawOutput}' has ${classes} classes, the dictionary ${characters.length} characters (+ the blank makes ${characters.length + 1})`);
  }
  return new CtcPostprocessor(rawOutput, postprocess.ctc, characters);
}

class DbPostprocessor implements OutputPostprocessor {
  readonly outputs: readonly PostprocessedOutput[] = [
    { name: 'boxes', datatype: 'FP32', shape: [-1, 4, 2] },
    { name: 'scores', datatype: 'FP32', shape: [-1] },
    { name: 'image_index', datatype: 'INT32', shape: [-1] },
  ];

  constructor(readonly rawOutput: string, private readonly options: DbOptions) {}

  apply(raw: Tensor, geometry: RunGeometry): Tensor[] {
    // [items, 1, H, W] (PaddleOCR's DB head), or [items, H, W].
    const { shape } = raw;
    if (raw.datatype !== 'FP32' || (shape.length !== 4 && shape.length !== 3) || (shape.length === 4 && shape[1] !== 1)) {
      throw new Error(`postprocess db: output '${raw.name}' is ${raw.datatype} [${shape.join(', ')}]; a probability map FP32 [N, 1, H, W] expected`);
    }
    const height = shape[shape.length - 2];
    const width = shape[shape.length - 1];
    if (geometry.items.length !== shape[0]) {
      throw new Error(`postprocess db: ${shape[0]} probability maps for ${geometry.items.length} images; the model's image input must be variable in size (-1) for db`);
    }
    const data = raw.data as Float32Array;
    const boxes: number[] = [];
    const scores: number[] = [];
    const index: number[] = [];
    geometry.items.forEach((item, n) => {
      const map = { data: data.subarray(n * height * width, (n + 1) * height * width), height, width };
      const found = dbBoxes(map, geometry.frame, item, this.options);
      found.boxes.forEach((box, k) => {
        for (const p of box) boxes.push(p.x, p.y);
        scores.push(found.scores[k]);
        index.push(n);
      });
    });
    const k = scores.length;
    return [
      { name: 'boxes', datatype: 'FP32', shape: [k, 4, 2], data: Float32Array.from(boxes) },
      { name: 'scores', datatype: 'FP32', shape: [k], data: Float32Array.from(scores) },
      { name: 'image_index', datatype: 'INT32', shape: [k], data: Int32Array.from(index) },
    ];
  }
}

class CtcPostprocessor implements OutputPostprocessor {
  readonly outputs: readonly PostprocessedOutput[] = [
    { name: 'text', datatype: 'BYTES', shape: [-1] },
    { name: 'score', datatype: 'FP32', shape: [-1] },
  ];

  constructor(readonly rawOutput: string, private readonly options: CtcOptions, private readonly characters: readonly string[]) {}

  apply(raw: Tensor): Tensor[] {
    const { shape } = raw;
    if (raw.datatype !== 'FP32' || shape.length !== 3) {
      throw new Error(`postprocess ctc: output '${raw.name}' is ${raw.datatype} [${shape.join(', ')}]; probabilities FP32 [N, T, C] expected`);
    }
    const [items, steps, classes] = shape;
    if (classes !== this.characters.length + 1) {
      throw new Error(`postprocess ctc: output '${raw.name}' has ${classes} classes, the dictionary '${this.options.dictionary}' ${this.characters.length} characters`);
    }
    const data = raw.data as Float32Array;
    const text: Buffer[] = [];
    const score = new Float32Array(items);
    for (let n = 0; n < items; n++) {
      const line = ctcDecode(data.subarray(n * steps * classes, (n + 1) * steps * classes), steps, classes, this.characters);
      text.push(Buffer.from(line.text, 'utf8'));
      score[n] = line.score;
    }
    return [
      { name: 'text', datatype: 'BYTES', shape: [items], data: text },
      { name: 'score', datatype: 'FP32', shape: [items], data: score },
    ];
  }
}
