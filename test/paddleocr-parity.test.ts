/**
 * The mesh's text-direction preprocessing against PaddleOCR's own, on many generated text
 * lines: the tensor the model sees in the mesh (the preprocessor's pixels, normalized by the
 * graph prelude the worker prepends) and the tensor of an independent implementation of
 * PaddleOCR's resize_norm_img (test/helpers/paddleocr-reference.ts) differ by at most one
 * pixel step, and the model gives every line the same class both ways.
 *
 * Stated tolerance: |mesh - reference| ≤ 1/127.5 (one uint8 step after (x/255 - 0.5)/0.5).
 * Inside the image the two differ only where the reference's plain float bilinear and
 * OpenCV's fixed-point arithmetic round to neighbouring bytes (the mesh's resize is
 * OpenCV's, bit for bit); in the padding the mesh is 1/255 off, since padding travels as
 * pixel 128 where PaddleOCR writes 0 after normalization.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { parse } from 'yaml';
import { renderTextImage } from '@infermesh/models';
import { imagesToPixels } from '@infermesh/preprocessor';
import { imagePipeline, imagePipelineMessage, imagePreludeModel, modelConfigSchema, type ModelConfig } from '@infermesh/worker';
import { ROOT } from '@infermesh/testing';
import { CLS_HEIGHT, CLS_WIDTH, clsResizedWidth, paddleClsResizeNormImg } from './helpers/paddleocr-reference.js';

const STEP = 1 / 127.5;
const PLANE = CLS_HEIGHT * CLS_WIDTH;

const PHRASES = [
  'Hello World 2026', 'Inference mesh', 'Batch size 32', 'ONNX Runtime', 'Quick brown fox jumps over the lazy dog',
  'upside down', 'Model repository config.yaml', 'Ok', 'Text direction classifier', 'Jaeger traces', 'A', 'gRPC 8001',
  'Pack my box with five dozen liquor jugs', 'infermesh', 'The end',
];
/** Font scales: lines from 18 to 117 pixels high, shorter and longer than the model's 48. */
const SCALES = [2, 3, 5, 9, 13];

interface Line {
  name: string;
  png: Buffer;
  upsideDown: boolean;
}

let config: ModelConfig;
let model: ort.InferenceSession;
let prelude: ort.InferenceSession;
const lines: Line[] = [];

beforeAll(async () => {
  config = modelConfigSchema.parse(parse(await readFile(join(ROOT, 'models/text-direction/config.yaml'), 'utf8')));
  const spec = imagePipeline(config)!;
  model = await ort.InferenceSession.create(await readFile(join(ROOT, 'models/text-direction/1/model.onnx')));
  prelude = await ort.InferenceSession.create(imagePreludeModel({
    input: spec.output, height: spec.height, width: spec.width, layout: spec.layout, channelOrder: spec.channel_order,
    datatype: spec.datatype, scale: spec.scale, mean: spec.mean, std: spec.std,
  }));
  for (const [p, phrase] of PHRASES.entries()) {
    for (const scale of SCALES) {
      const upsideDown = (p + scale) % 2 === 1;
      lines.push({ name: `'${phrase}' at scale ${scale}${upsideDown ? ', upside down' : ''}`, png: await renderTextImage(phrase, { scale, rotate180: upsideDown }), upsideDown });
    }
  }
}, 120_000);

/** What the model sees in the mesh: the preprocessor's pixels through the prelude the worker prepends. */
async function meshTensor(png: Buffer): Promise<Float32Array> {
  const spec = imagePipeline(config)!;
  const pixels = await imagesToPixels(imagePipelineMessage(spec) as Parameters<typeof imagesToPixels>[0], 'image', [png]);
  const out = await prelude.run({ [spec.output]: new ort.Tensor('uint8', new Uint8Array(pixels), [1, spec.height, spec.width, 3]) });
  return out.preprocessed.data as Float32Array;
}

/** What PaddleOCR's predict_cls feeds the model: cv2.imread's BGR pixels through resize_norm_img. */
async function referenceTensor(png: Buffer): Promise<{ tensor: Float32Array; resizedWidth: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const bgr = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i += 3) {
    bgr[i] = data[i + 2];
    bgr[i + 1] = data[i + 1];
    bgr[i + 2] = data[i];
  }
  return { tensor: paddleClsResizeNormImg(bgr, info.width, info.height), resizedWidth: clsResizedWidth(info.width, info.height) };
}

async function classOf(tensor: Float32Array): Promise<{ label: number; scores: number[] }> {
  const out = await model.run({ x: new ort.Tensor('float32', tensor, [1, 3, CLS_HEIGHT, CLS_WIDTH]) });
  const scores = Array.from(out['softmax_0.tmp_0'].data as Float32Array);
  return { label: scores[1] > scores[0] ? 1 : 0, scores };
}

describe('text-direction preprocessing matches PaddleOCR\'s resize_norm_img', () => {
  it('covers many lines: several texts, lengths and sizes, upright and upside down', () => {
    expect(lines.length).toBe(PHRASES.length * SCALES.length);
    expect(lines.filter((l) => l.upsideDown).length).toBeGreaterThan(20);
  });

  it('gives every line a tensor within one pixel step of the reference, exact up to rounding inside the image', async () => {
    let worstImage = 0;
    let worstPadding = 0;
    let differing = 0;
    let values = 0;
    for (const line of lines) {
      const mesh = await meshTensor(line.png);
      const { tensor: reference, resizedWidth } = await referenceTensor(line.png);
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < CLS_HEIGHT; y++) {
          for (let x = 0; x < CLS_WIDTH; x++) {
            const at = c * PLANE + y * CLS_WIDTH + x;
            const diff = Math.abs(mesh[at] - reference[at]);
            if (x < resizedWidth) {
              worstImage = Math.max(worstImage, diff);
              values++;
              if (diff > 1e-6) differing++;
            } else {
              worstPadding = Math.max(worstPadding, diff);
            }
          }
        }
      }
    }
    expect(worstImage).toBeLessThanOrEqual(STEP + 1e-6);
    expect(worstPadding).toBeLessThanOrEqual(STEP / 2 + 1e-6);
    // Neighbouring-byte rounding is the exception, not the rule.
    expect(differing / values).toBeLessThan(0.2);
  });

  it('gives every line the same class as the reference preprocessing', async () => {
    const disagreements: string[] = [];
    let meshRight = 0;
    let referenceRight = 0;
    for (const line of lines) {
      const mesh = await classOf(await meshTensor(line.png));
      const reference = await classOf((await referenceTensor(line.png)).tensor);
      if (mesh.label !== reference.label) disagreements.push(line.name);
      if (mesh.label === Number(line.upsideDown)) meshRight++;
      if (reference.label === Number(line.upsideDown)) referenceRight++;
      expect(Math.abs(mesh.scores[1] - reference.scores[1]), line.name).toBeLessThan(0.05);
    }
    expect(disagreements).toEqual([]);
    expect(meshRight).toBe(referenceRight);
  });
});
