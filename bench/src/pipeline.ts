/** The model's own preprocessing and onnxruntime session, exactly as the mesh configures them, in this process. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import * as ort from 'onnxruntime-node';
import { modelConfigSchema, pipelineSpec, type ModelConfig } from '@infermesh/worker';
import { runImagePipeline, runTabularPipeline } from '@infermesh/preprocessor';
import type { PipelineSpec__Output } from '@infermesh/contracts';
import type { Tensor } from '@infermesh/tensor';

export interface LocalModel {
  config: ModelConfig;
  session: ort.InferenceSession;
  /** Raw elements (encoded images or JSON rows) → model outputs. */
  infer(elements: Buffer[]): Promise<Record<string, ort.Tensor>>;
}

export async function loadLocalModel(repository: string, name: string, intraOpThreads?: number): Promise<LocalModel> {
  const config = modelConfigSchema.parse(parse(await readFile(join(repository, name, 'config.yaml'), 'utf8')));
  const session = await ort.InferenceSession.create(await readFile(join(repository, name, '1', 'model.onnx')), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    interOpNumThreads: 1,
    ...(intraOpThreads ? { intraOpNumThreads: intraOpThreads } : {}),
  });
  const spec = pipelineSpec(config) as PipelineSpec__Output;
  return {
    config,
    session,
    async infer(elements) {
      const raw: Tensor = { name: spec.image?.input ?? spec.tabular!.input, datatype: 'BYTES', shape: [elements.length], data: elements };
      const tensor = spec.image ? await runImagePipeline(spec.image, raw) : runTabularPipeline(spec.tabular!, raw);
      return session.run({ [tensor.name]: new ort.Tensor('float32', tensor.data as Float32Array, tensor.shape) });
    },
  };
}
