/**
 * Proves the shipped text-direction model works end to end on images we can generate anywhere:
 * bitmap-font text lines, preprocessed exactly as models/text-direction/config.yaml says, run
 * through the real PaddleOCR classifier with onnxruntime-node.
 */
import { readFile } from 'node:fs/promises';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { TEXT_DIRECTION_SAMPLES, modelConfigFile, renderTextImage, textDirectionSource } from './index.js';

interface ImagePreprocess {
  input: string; output: string; width: number; height: number; resize: string;
  mean: number[]; std: number[]; scale: number; layout: string; datatype: string;
  channel_order: 'RGB' | 'BGR'; pad_value: number;
}
interface TextDirectionConfig {
  max_batch_size: number;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[]; labels: string[] }[];
  preprocess: { image: ImagePreprocess };
}

const config = parse(await readFile(modelConfigFile('text-direction'), 'utf8')) as TextDirectionConfig;
const pre = config.preprocess.image;
const OUTPUT = config.outputs[0].name;

/** A reference implementation of the config's image preprocessing (PaddleOCR's resize_norm_img). */
async function preprocess(png: Buffer): Promise<Float32Array> {
  expect(pre).toMatchObject({ resize: 'height-pad-right', layout: 'NCHW', datatype: 'FP32' });
  const { width: w, height: h } = await sharp(png).metadata();
  const resizedWidth = Math.min(pre.width, Math.ceil((pre.height * w) / h));
  const rgb = await sharp(png).removeAlpha().resize(resizedWidth, pre.height, { fit: 'fill' }).raw().toBuffer();
  const plane = pre.height * pre.width;
  const out = new Float32Array(3 * plane).fill(pre.pad_value); // right padding, after normalization
  for (let c = 0; c < 3; c++) {
    const source = pre.channel_order === 'BGR' ? 2 - c : c;
    for (let y = 0; y < pre.height; y++) {
      for (let x = 0; x < resizedWidth; x++) {
        const value = rgb[(y * resizedWidth + x) * 3 + source];
        out[c * plane + y * pre.width + x] = (value * pre.scale - pre.mean[c]) / pre.std[c];
      }
    }
  }
  return out;
}

let session: ort.InferenceSession;
beforeAll(async () => { session = await ort.InferenceSession.create(textDirectionSource()); });
afterAll(async () => { await session.release(); });

/** Class probabilities per image, run as one batch like the worker's dynamic batching would. */
async function classify(images: Buffer[]): Promise<[number, number][]> {
  const tensors = await Promise.all(images.map(preprocess));
  const batch = new Float32Array(tensors.length * tensors[0].length);
  tensors.forEach((t, i) => batch.set(t, i * t.length));
  const x = new ort.Tensor('float32', batch, [images.length, 3, pre.height, pre.width]);
  const probs = (await session.run({ [config.inputs[0].name]: x }))[OUTPUT].data as Float32Array;
  return images.map((_, i) => [probs[2 * i], probs[2 * i + 1]]);
}

describe('text-direction model', () => {
  it('matches config.yaml: input x [N,3,H,W] FP32, output softmax_0.tmp_0 [N,2]', () => {
    expect(session.inputNames).toEqual(config.inputs.map((i) => i.name));
    expect(session.outputNames).toEqual(config.outputs.map((o) => o.name));
    const input = session.inputMetadata[0];
    const output = session.outputMetadata[0];
    expect(input.isTensor && input.type).toBe('float32');
    expect(input.isTensor && input.shape.length).toBe(1 + config.inputs[0].shape.length);
    expect(input.isTensor && input.shape[1]).toBe(3);
    expect(output.isTensor && output.shape[1]).toBe(2);
    expect(config.outputs[0].labels).toEqual(['upright', 'rotated_180']);
  });

  // Descender-heavy lines (e.g. "jumpy dog") are genuinely ambiguous when flipped and are avoided.
  const phrases = ['Hello World 2026', 'The quick brown fox', 'Infermesh', 'gRPC inference mesh', 'Model repository', 'Batch size 32', 'Text direction', 'Upside down', 'ONNX Runtime'];

  it.each([3, 5, 8])('classifies upright as 0 and upside-down as 1 at scale %i', async (scale) => {
    const upright = await Promise.all(phrases.map((p) => renderTextImage(p, { scale })));
    const rotated = await Promise.all(phrases.map((p) => renderTextImage(p, { scale, rotate180: true })));
    const probs = await classify([...upright, ...rotated]);
    const report = phrases.map((p, i) => `${p}: upright ${probs[i][0].toFixed(3)}, rotated ${probs[phrases.length + i][1].toFixed(3)}`);
    console.log(`scale ${scale}\n  ${report.join('\n  ')}`);
    phrases.forEach((phrase, i) => {
      expect(probs[i][0], `${phrase} upright`).toBeGreaterThan(0.9);
      expect(probs[phrases.length + i][1], `${phrase} rotated`).toBeGreaterThan(0.9);
    });
  });

  it('classifies the committed samples', async () => {
    const [upright, upsideDown] = await classify([
      await readFile(TEXT_DIRECTION_SAMPLES.upright),
      await readFile(TEXT_DIRECTION_SAMPLES.upsideDown),
    ]);
    console.log(`samples: upright.png [${upright.map((p) => p.toPrecision(6)).join(', ')}], upside-down.png [${upsideDown.map((p) => p.toPrecision(6)).join(', ')}]`);
    expect(upright[0]).toBeGreaterThan(0.99);
    expect(upsideDown[1]).toBeGreaterThan(0.99);
  });
});

describe('renderTextImage', () => {
  it('is deterministic and regenerates the committed samples', async () => {
    expect(await renderTextImage('Hello World 2026')).toEqual(await readFile(TEXT_DIRECTION_SAMPLES.upright));
    expect(await renderTextImage('Hello World 2026', { rotate180: true })).toEqual(await readFile(TEXT_DIRECTION_SAMPLES.upsideDown));
  });

  it('sizes the image from the text, scale and margin', async () => {
    // 3 glyphs × 5 + 2 gaps × 2 tracking + 2 × 2 margin = 23 columns; 9 rows + 2 × 2 margin = 13.
    const meta = await sharp(await renderTextImage('abc', { scale: 2 })).metadata();
    expect([meta.width, meta.height, meta.channels, meta.format]).toEqual([46, 26, 3, 'png']);
  });

  it('rejects characters the font lacks and bad options', async () => {
    await expect(renderTextImage('naïve €')).rejects.toThrow(/"ï", "€"/);
    await expect(renderTextImage('')).rejects.toThrow(/empty/);
    await expect(renderTextImage('a', { scale: 0 })).rejects.toThrow(/scale/);
  });
});
