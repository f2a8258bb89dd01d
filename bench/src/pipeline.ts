/**
 * The model's own preprocessing and onnxruntime session, exactly as the mesh runs them, in
 * this process: the preprocessor's decode and resize to pixels (or the worker's row
 * parsing), and the model with its normalization prepended to the graph.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import * as ort from 'onnxruntime-node';
import { imagePipeline, imagePipelineMessage, modelConfigSchema, preparedModel, rowsToTensor, tabularPipeline, type ModelConfig } from '@infermesh/worker';
import { imagesToPixels } from '@infermesh/preprocessor';

export interface LocalModel {
  config: ModelConfig;
  session: ort.InferenceSession;
  /** Raw elements (encoded images or JSON rows) → model outputs. */
  infer(elements: Buffer[]): Promise<Record<string, ort.Tensor>>;
}

export async function loadLocalModel(repository: string, name: string, intraOpThreads?: number): Promise<LocalModel> {
  const config = modelConfigSchema.parse(parse(await readFile(join(repository, name, 'config.yaml'), 'utf8')));
  const onnx = preparedModel(config, await readFile(join(repository, name, '1', 'model.onnx')));
  const session = await ort.InferenceSession.create(onnx, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    interOpNumThreads: 1,
    ...(intraOpThreads ? { intraOpNumThreads: intraOpThreads } : {}),
  });
  const image = imagePipeline(config);
  const tabular = tabularPipeline(config);
  const message = image ? imagePipelineMessage(image) : undefined;
  return {
    config,
    session,
    async infer(elements) {
      if (image && message) {
        const pixels = await imagesToPixels({ ...message, input: image.input, output: image.output } as Parameters<typeof imagesToPixels>[0], image.input, elements);
        return session.run({ [image.output]: new ort.Tensor('uint8', new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength), [elements.length, image.height, image.width, 3]) });
      }
      const tensor = rowsToTensor(tabular!, { name: tabular!.input, datatype: 'BYTES', shape: [elements.length], data: elements });
      return session.run({ [tensor.name]: new ort.Tensor('float32', tensor.data as Float32Array, tensor.shape) });
    },
  };
}
