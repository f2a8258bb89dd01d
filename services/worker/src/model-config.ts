/**
 * The schema of models/<name>/config.yaml (Triton conventions: tensor shapes exclude the
 * batch dimension when max_batch_size > 0; -1 is a variable dimension).
 */
import { z } from 'zod';
import { DATATYPES } from '@infermesh/tensor';
import type { ImagePipeline, ModelMetadataResponse_TensorMetadata } from '@infermesh/contracts';
import { postprocessSchema } from './postprocess/schema.js';
import { variableDims } from './variable-size.js';
import { dataflowProblems, pipelineSchema, placementSchema } from './pipeline-config.js';

const tensorSchema = z.object({
  name: z.string().min(1),
  datatype: z.enum(DATATYPES),
  shape: z.array(z.number().int().min(-1)),
  labels: z.array(z.string()).optional(),
});

const imagePipelineSchema = z.object({
  input: z.string().min(1),
  output: z.string().min(1),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  resize: z.enum(['stretch', 'pad', 'height-pad-right', 'limit-32']).default('stretch'),
  mean: z.array(z.number()).length(3).default([0, 0, 0]),
  std: z.array(z.number().positive()).length(3).default([1, 1, 1]),
  scale: z.number().positive().default(1 / 255),
  layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
  datatype: z.enum(['FP32', 'UINT8']).default('FP32'),
  channel_order: z.enum(['RGB', 'BGR']).default('RGB'),
  pad_value: z.number().default(0),
  /** A variable width (-1 in the model's input) is padded to at least this in a batch (variable-size.ts). */
  min_width: z.number().int().positive().optional(),
});

const tabularPipelineSchema = z.object({
  input: z.string().min(1),
  output: z.string().min(1),
  datatype: z.enum(['FP32', 'FP64']).default('FP32'),
  features: z
    .array(
      z.object({
        name: z.string().min(1),
        mean: z.number().default(0),
        std: z.number().positive().default(1),
        categories: z.array(z.string()).optional(),
      }),
    )
    .min(1),
});

/**
 * Triton's version_policy: which of the version directories are served. Without one every
 * version is served (what workers did before version policies, and what tests with several
 * versions rely on), not Triton's default of the latest one.
 */
const versionPolicySchema = z.union([
  z.object({ latest: z.object({ num_versions: z.number().int().positive().max(1024) }).strict() }).strict(),
  z.object({ all: z.object({}).strict() }).strict(),
  z.object({ specific: z.object({ versions: z.array(z.number().int().min(0)).min(1).max(1024) }).strict() }).strict(),
]);

export type VersionPolicy = z.infer<typeof versionPolicySchema>;

/** The versions of `available` (ascending numbers, as directory names) the policy serves, ascending. */
export function selectVersions(policy: VersionPolicy | undefined, available: readonly string[]): string[] {
  if (!policy || 'all' in policy) return [...available];
  if ('latest' in policy) return available.slice(Math.max(0, available.length - policy.latest.num_versions));
  const wanted = new Set(policy.specific.versions.map(String));
  return available.filter((v) => wanted.has(v));
}

export const modelConfigSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, "-" and "_"'),
    // 'pipeline': no ONNX file; `pipeline.steps` name the models and glue the router runs (pipeline-config.ts).
    platform: z.enum(['onnxruntime_onnx', 'pipeline']).default('onnxruntime_onnx'),
    description: z.string().optional(),
    version_policy: versionPolicySchema.optional(),
    max_batch_size: z.number().int().min(0).default(0),
    inputs: z.array(tensorSchema).min(1),
    outputs: z.array(tensorSchema).min(1),
    dynamic_batching: z
      .object({
        preferred_batch_size: z.array(z.number().int().positive()).default([]),
        max_queue_delay_microseconds: z.number().int().min(0).default(0),
        max_queue_size: z.number().int().positive().default(1024),
      })
      .optional(),
    instance_group: z.object({ count: z.number().int().positive().default(1) }).default({ count: 1 }),
    execution_providers: z.array(z.enum(['cuda', 'webgpu', 'cpu'])).default(['cpu']),
    preprocess: z
      .union([z.object({ image: imagePipelineSchema }), z.object({ tabular: tabularPipelineSchema })])
      .optional(),
    evaluation: z.record(z.string(), z.unknown()).optional(),
    /** What the worker makes of the raw outputs before answering (postprocess/postprocessor.ts). */
    postprocess: postprocessSchema.optional(),
    pipeline: pipelineSchema.optional(),
    placement: placementSchema.optional(),
  })
  .superRefine((config, ctx) => {
    if (config.platform === 'pipeline' && !config.pipeline) ctx.addIssue({ code: 'custom', path: ['pipeline'], message: "platform 'pipeline' needs a pipeline section with its steps" });
    if (config.platform !== 'pipeline' && config.pipeline) ctx.addIssue({ code: 'custom', path: ['platform'], message: "a config with a pipeline section says platform: pipeline" });
    if (config.platform === 'pipeline' && config.preprocess) ctx.addIssue({ code: 'custom', path: ['preprocess'], message: 'a pipeline has no preprocess section: its steps preprocess their own inputs' });
    if (config.platform === 'pipeline' && config.max_batch_size > 0) {
      ctx.addIssue({ code: 'custom', path: ['max_batch_size'], message: "a pipeline batches nothing itself (its steps' models do): give its tensors' whole shapes, the first dimension -1, and no max_batch_size" });
    }
    if (config.platform === 'pipeline' && config.pipeline) {
      dataflowProblems({ ...config, pipeline: config.pipeline }, (path, message) => ctx.addIssue({ code: 'custom', path, message }));
    }
    const image = config.preprocess && 'image' in config.preprocess ? config.preprocess.image : undefined;
    if (image?.datatype === 'UINT8' && (!Number.isInteger(image.pad_value) || image.pad_value < 0 || image.pad_value > 255)) {
      ctx.addIssue({ code: 'custom', path: ['preprocess', 'image', 'pad_value'], message: 'a UINT8 pipeline pads with a whole number from 0 to 255' });
    }
    const tabular = config.preprocess && 'tabular' in config.preprocess ? config.preprocess.tabular : undefined;
    const output = image?.output ?? tabular?.output;
    if (output && !config.inputs.some((input) => input.name === output)) {
      ctx.addIssue({ code: 'custom', path: ['preprocess'], message: `pipeline output '${output}' is not one of the model's inputs` });
    }
  });

export type ModelConfig = z.infer<typeof modelConfigSchema>;
export type TensorConfig = z.infer<typeof tensorSchema>;

export type ImagePipelineConfig = z.infer<typeof imagePipelineSchema>;
export type TabularPipelineConfig = z.infer<typeof tabularPipelineSchema>;

export function imagePipeline(config: ModelConfig): ImagePipelineConfig | undefined {
  return config.preprocess && 'image' in config.preprocess ? config.preprocess.image : undefined;
}

export function tabularPipeline(config: ModelConfig): TabularPipelineConfig | undefined {
  return config.preprocess && 'tabular' in config.preprocess ? config.preprocess.tabular : undefined;
}

/** The image pipeline as the worker sends it to the preprocessor with each call. */
export function imagePipelineMessage(p: ImagePipelineConfig): ImagePipeline {
  return {
    input: p.input, output: p.output, width: p.width, height: p.height, resize: p.resize,
    mean: p.mean, std: p.std, scale: p.scale, layout: p.layout, datatype: p.datatype,
    channelOrder: p.channel_order, padValue: p.pad_value,
  };
}

/**
 * The tensors the served model takes: the repository's model with its pipeline's arithmetic
 * prepended (graph-prelude.ts). An image pipeline's output becomes UINT8 pixels
 * [height, width, 3] (RGB, NHWC); a tabular pipeline's output keeps its type and shape but
 * takes raw values (cm for iris), the standardization being in the graph. A side the graph
 * leaves variable (-1) stays variable, up to the frame (variable-size.ts).
 */
export function servedInputs(config: ModelConfig): TensorConfig[] {
  const image = imagePipeline(config);
  const variable = variableDims(config, image);
  return config.inputs.map((input) =>
    image && input.name === image.output
      ? { name: input.name, datatype: 'UINT8' as const, shape: [variable?.height ? -1 : image.height, variable?.width ? -1 : image.width, 3] }
      : input,
  );
}

/**
 * The inputs a client sends (ModelMetadata): a pipeline's raw input, one element per item
 * (BYTES [-1]), in place of the model tensor it produces. The tensor itself is still
 * accepted (servedInputs) but is not what a generic client should be told to send.
 */
export function clientInputs(config: ModelConfig): ModelMetadataResponse_TensorMetadata[] {
  const pipeline = imagePipeline(config) ?? tabularPipeline(config);
  return config.inputs.map((input) =>
    pipeline && input.name === pipeline.output
      ? { name: pipeline.input, datatype: 'BYTES', shape: ['-1'] }
      : { name: input.name, datatype: input.datatype, shape: fullShape(config, input).map(String) },
  );
}

/** Full tensor shape as clients see it: the batch dimension (-1) first when the model batches. */
export function fullShape(config: ModelConfig, tensor: TensorConfig): number[] {
  return config.max_batch_size > 0 ? [-1, ...tensor.shape] : [...tensor.shape];
}
