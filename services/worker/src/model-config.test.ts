/** The config.yaml schema: defaults, the pipeline/input rule, full shapes, the pipeline as it travels, served and client inputs. */
import { describe, expect, it } from 'vitest';
import { clientInputs, fullShape, imagePipeline, imagePipelineMessage, modelConfigSchema, servedInputs } from './model-config.js';

const minimal = {
  name: 'iris',
  inputs: [{ name: 'features', datatype: 'FP32', shape: [4] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [3] }],
};

const withImage = (image: object) => modelConfigSchema.parse({ ...minimal, inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 2, 2] }], preprocess: { image: { input: 'image', output: 'x', width: 2, height: 2, ...image } } });
const withTabular = (features: object[]) => modelConfigSchema.parse({ ...minimal, preprocess: { tabular: { input: 'rows', output: 'features', features } } });

describe('modelConfigSchema defaults', () => {
  it('fills the model-level defaults', () => {
    const config = modelConfigSchema.parse(minimal);
    expect(config.platform).toBe('onnxruntime_onnx');
    expect(config.max_batch_size).toBe(0);
    expect(config.instance_group).toEqual({ count: 1 });
    expect(config.execution_providers).toEqual(['cpu']);
    expect(config.dynamic_batching).toBeUndefined();
    expect(config.preprocess).toBeUndefined();
  });

  it('fills the dynamic batching defaults when the section is present', () => {
    const config = modelConfigSchema.parse({ ...minimal, dynamic_batching: {} });
    expect(config.dynamic_batching).toEqual({ preferred_batch_size: [], max_queue_delay_microseconds: 0, max_queue_size: 1024 });
  });

  it('fills the image pipeline defaults', () => {
    const config = withImage({});
    expect(config.preprocess).toEqual({
      image: {
        input: 'image', output: 'x', width: 2, height: 2, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1],
        scale: 1 / 255, layout: 'NCHW', datatype: 'FP32', channel_order: 'RGB', pad_value: 0,
      },
    });
  });

  it('fills the tabular pipeline defaults', () => {
    const config = withTabular([{ name: 'a' }]);
    expect(config.preprocess).toEqual({ tabular: { input: 'rows', output: 'features', datatype: 'FP32', features: [{ name: 'a', mean: 0, std: 1 }] } });
  });
});

describe('modelConfigSchema refusals', () => {
  it('refuses a pipeline whose output is not one of the model inputs', () => {
    const parsed = modelConfigSchema.safeParse({ ...minimal, preprocess: { tabular: { input: 'rows', output: 'nope', features: [{ name: 'a' }] } } });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues).toEqual([expect.objectContaining({ path: ['preprocess'], message: "pipeline output 'nope' is not one of the model's inputs" })]);
  });

  it('refuses an unknown datatype', () => {
    const parsed = modelConfigSchema.safeParse({ ...minimal, inputs: [{ name: 'features', datatype: 'FLOAT', shape: [4] }] });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0].path).toEqual(['inputs', 0, 'datatype']);
  });

  it('refuses a model name with characters other than letters, digits, "-" and "_"', () => {
    expect(modelConfigSchema.safeParse({ ...minimal, name: 'a/b' }).success).toBe(false);
  });

  it('refuses a model without inputs', () => {
    expect(modelConfigSchema.safeParse({ ...minimal, inputs: [] }).success).toBe(false);
  });
});

describe('fullShape', () => {
  it('puts a variable batch dimension first when max_batch_size > 0', () => {
    const config = modelConfigSchema.parse({ ...minimal, max_batch_size: 8 });
    expect(fullShape(config, config.inputs[0])).toEqual([-1, 4]);
  });

  it('keeps the configured shape when the model does not batch', () => {
    const config = modelConfigSchema.parse({ ...minimal, inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 4] }] });
    expect(fullShape(config, config.inputs[0])).toEqual([2, 4]);
  });
});

describe('the image pipeline as it travels to the preprocessor', () => {
  it('is absent for a model without preprocessing', () => {
    expect(imagePipeline(modelConfigSchema.parse(minimal))).toBeUndefined();
  });

  it('is the wire form, in camelCase', () => {
    const config = withImage({ resize: 'pad', mean: [0.5, 0.4, 0.3], std: [0.2, 0.2, 0.2], scale: 1, layout: 'NHWC', datatype: 'UINT8', channel_order: 'BGR', pad_value: 114 });
    expect(imagePipelineMessage(imagePipeline(config)!)).toEqual({
      input: 'image', output: 'x', width: 2, height: 2, resize: 'pad', mean: [0.5, 0.4, 0.3], std: [0.2, 0.2, 0.2],
      scale: 1, layout: 'NHWC', datatype: 'UINT8', channelOrder: 'BGR', padValue: 114,
    });
  });
});

describe('served and client inputs', () => {
  it('serve an image pipeline\'s tensor as UINT8 pixels [height, width, 3], whatever the model takes', () => {
    expect(servedInputs(withImage({ layout: 'NCHW' }))).toEqual([{ name: 'x', datatype: 'UINT8', shape: [2, 2, 3] }]);
  });

  it('serve a tabular pipeline\'s tensor as the model declares it (raw units; scaling is in the graph)', () => {
    expect(servedInputs(withTabular([{ name: 'a' }]))).toEqual([{ name: 'features', datatype: 'FP32', shape: [4] }]);
  });

  it('show a client the pipeline\'s raw input, BYTES [-1], in place of the model tensor', () => {
    expect(clientInputs(withImage({}))).toEqual([{ name: 'image', datatype: 'BYTES', shape: ['-1'] }]);
    expect(clientInputs(withTabular([{ name: 'a' }]))).toEqual([{ name: 'rows', datatype: 'BYTES', shape: ['-1'] }]);
  });

  it('show a client the model tensor, with its batch dimension, when there is no pipeline', () => {
    expect(clientInputs(modelConfigSchema.parse({ ...minimal, max_batch_size: 8 }))).toEqual([{ name: 'features', datatype: 'FP32', shape: ['-1', '4'] }]);
  });
});

describe('UINT8 image pipelines', () => {
  it('pad with a whole number from 0 to 255', () => {
    expect(withImage({ datatype: 'UINT8', resize: 'pad', pad_value: 114 }).preprocess).toBeDefined();
    expect(() => withImage({ datatype: 'UINT8', pad_value: 300 })).toThrow(/pad_value.*0 to 255/s);
    expect(() => withImage({ datatype: 'UINT8', pad_value: 0.5 })).toThrow(/0 to 255/);
  });
});
