/**
 * Compute of the OCR step models on this machine, in process (no gRPC, no preprocessor call):
 * ocr-detection on generated pages and ocr-recognition on rendered lines, each at batch 1 and
 * 4, as the worker runs them (the graph with its prelude, UINT8 pixels padded to the batch's
 * largest), and the post-processing (DB boxes, CTC decoding) apart. Prints one JSON line per
 * measurement: median milliseconds per run and per item.
 *   npm run build -w @infermesh/bench && node bench/dist/ocr-models.js [runs]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus } from 'node:os';
import * as ort from 'onnxruntime-node';
import { parse } from 'yaml';
import { MODEL_REPOSITORY_DIR, renderOcrPages, renderTextImage } from '@infermesh/models';
import { preprocessImages } from '@infermesh/preprocessor';
import {
  cropFrames, imagePipeline, imagePipelineMessage, loadPostprocessor, modelConfigSchema, padPixel, paddedFrame, preparedModel, resizedSize, stackPadded, variableDims,
  type ModelConfig,
} from '@infermesh/worker';
import type { Tensor } from '@infermesh/tensor';
import type { ImagePipeline__Output } from '@infermesh/contracts';

const runs = Number(process.argv[2] ?? 7);

async function load(name: string) {
  const config: ModelConfig = modelConfigSchema.parse(parse(await readFile(join(MODEL_REPOSITORY_DIR, name, 'config.yaml'), 'utf8')));
  const bytes = preparedModel(config, await readFile(join(MODEL_REPOSITORY_DIR, name, '1', 'model.onnx')));
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const postprocessor = (await loadPostprocessor(config, join(MODEL_REPOSITORY_DIR, name, '1'), session))!;
  return { config, session, postprocessor };
}

/** Each image as the worker holds it after preprocessing: cut to its resized size. */
async function itemsOf(config: ModelConfig, images: Buffer[]): Promise<{ tensor: Tensor; geometry: { height: number; width: number; sourceHeight: number; sourceWidth: number } }[]> {
  const spec = imagePipeline(config)!;
  const dims = variableDims(config, spec)!;
  return Promise.all(images.map(async (png) => {
    // Every field is set, so the message is also what the preprocessor receives.
    const { pixels, statistics } = await preprocessImages(imagePipelineMessage(spec) as ImagePipeline__Output, 'image', [png]);
    const size = resizedSize(spec, statistics[0].width, statistics[0].height);
    const frame = paddedFrame({ ...spec, min_width: undefined }, dims, [size]);
    const data = cropFrames(pixels, 1, spec, frame.height, frame.width);
    return { tensor: { name: spec.output, datatype: 'UINT8' as const, shape: [1, frame.height, frame.width, 3], data }, geometry: { ...size, sourceHeight: statistics[0].height, sourceWidth: statistics[0].width } };
  }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(name: string, model: Awaited<ReturnType<typeof load>>, items: Awaited<ReturnType<typeof itemsOf>>, batch: number): Promise<void> {
  const spec = imagePipeline(model.config)!;
  const parts = items.slice(0, batch);
  const frame = paddedFrame(spec, variableDims(model.config, spec)!, parts.map((p) => ({ height: p.tensor.shape[1], width: p.tensor.shape[2] })));
  const pixels = stackPadded(parts.map((p) => p.tensor), frame.height, frame.width, padPixel(spec));
  const feeds = { [spec.output]: new ort.Tensor('uint8', pixels, [batch, frame.height, frame.width, 3]) };
  await model.session.run(feeds); // warm up
  const compute: number[] = [];
  const post: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const out = await model.session.run(feeds, [model.postprocessor.rawOutput]);
    const computed = performance.now();
    const raw = out[model.postprocessor.rawOutput];
    model.postprocessor.apply({ name: model.postprocessor.rawOutput, datatype: 'FP32', shape: [...raw.dims], data: raw.data as Float32Array }, { frame, items: parts.map((p) => p.geometry) });
    post.push(performance.now() - computed);
    compute.push(computed - started);
  }
  const ms = median(compute);
  console.log(JSON.stringify({ model: name, batch, tensor: [batch, frame.height, frame.width, 3], compute_ms: +ms.toFixed(1), compute_ms_per_item: +(ms / batch).toFixed(1), postprocess_ms: +median(post).toFixed(2), runs }));
}

console.log(JSON.stringify({ cpus: cpus().length, cpu: cpus()[0]?.model, onnxruntime: ort.env.versions?.common }));
const detection = await load('ocr-detection');
const pages = await renderOcrPages({ count: 4, seed: 5, rotation: () => 'none' });
console.log(JSON.stringify({ pages: pages.map((p) => `${p.width}x${p.height}`) }));
const pageItems = await itemsOf(detection.config, pages.map((p) => p.png));
await measure('ocr-detection', detection, pageItems, 1);
await measure('ocr-detection', detection, pageItems, 4);
// A full frame, as a scanned page shrunk to 960 x 960 would be: each page's lines repeated down it.
const fullItems = pageItems.map((item) => {
  const [, h, w] = item.tensor.shape;
  const data = new Uint8Array(960 * 960 * 3).fill(255);
  const source = item.tensor.data as Uint8Array;
  for (let y = 0; y < 960; y++) data.set(source.subarray((y % h) * w * 3, ((y % h) + 1) * w * 3), y * 960 * 3);
  return { tensor: { ...item.tensor, shape: [1, 960, 960, 3], data }, geometry: { height: 960, width: 960, sourceHeight: 960, sourceWidth: 960 } };
});
await measure('ocr-detection', detection, fullItems, 1);
await measure('ocr-detection', detection, fullItems, 4);
await detection.session.release();

const recognition = await load('ocr-recognition');
const lines = await Promise.all(['Hello World 2026', 'The quick brown fox', 'Batch size 32', 'ONNX Runtime'].map((text) => renderTextImage(text, { scale: 3 })));
const lineItems = await itemsOf(recognition.config, lines);
await measure('ocr-recognition', recognition, lineItems, 1);
await measure('ocr-recognition', recognition, lineItems, 4);
await recognition.session.release();
