/**
 * Pipeline configs (platform: pipeline) and placement: checked at load with messages naming
 * the field, loaded without ONNX, announced in heartbeats like a model with their steps.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createLogger } from '@infermesh/log';
import { modelConfigSchema } from './model-config.js';
import { readModelConfig } from './repository.js';
import { ModelRegistry } from './model-registry.js';
import { heartbeatOf } from './heartbeat.js';
import { pipelineStepsMessage } from './pipeline-config.js';

const logger = createLogger('test', { level: 'silent' });
const OCR_CONFIG = join(import.meta.dirname, '../../../models/ocr/config.yaml');

async function ocrConfig(): Promise<Record<string, unknown>> {
  return parse(await readFile(OCR_CONFIG, 'utf8')) as Record<string, unknown>;
}

function issues(document: unknown): string[] {
  const parsed = modelConfigSchema.safeParse(document);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('pipeline config', () => {
  it('accepts the repository\'s ocr pipeline with its four steps', async () => {
    const config = modelConfigSchema.parse(await ocrConfig());
    expect(config.platform).toBe('pipeline');
    expect(config.pipeline?.steps.map((s) => s.name)).toEqual(['detect', 'crop', 'direction', 'recognize']);
  });

  it('refuses platform pipeline without steps, naming the field', async () => {
    const { pipeline: _, ...rest } = await ocrConfig();
    expect(issues(rest)).toEqual(["pipeline: platform 'pipeline' needs a pipeline section with its steps"]);
  });

  it('refuses an unknown glue, naming the step', async () => {
    const config = await ocrConfig();
    (config.pipeline as { steps: Record<string, string>[] }).steps[1] = { name: 'crop', glue: 'ocr-cut' };
    expect(issues(config).join('\n')).toMatch(/^pipeline\.steps\.1/m);
  });

  it('refuses a step with both model and glue', async () => {
    const config = await ocrConfig();
    (config.pipeline as { steps: Record<string, string>[] }).steps[0] = { name: 'detect', model: 'ocr-detection', glue: 'ocr-crop' };
    expect(issues(config).join('\n')).toMatch(/pipeline\.steps\.0/);
  });

  it('refuses steps in an order the router cannot run, naming the step', async () => {
    const config = await ocrConfig();
    const steps = (config.pipeline as { steps: unknown[] }).steps;
    steps.splice(0, 2, steps[1], steps[0]);
    expect(issues(config)).toEqual(["pipeline.steps.0: the 'ocr-crop' glue comes second, after the detection model's step"]);
  });

  it('refuses a step name used twice', async () => {
    const config = await ocrConfig();
    (config.pipeline as { steps: Record<string, string>[] }).steps[3].name = 'direction';
    expect(issues(config)).toEqual(["pipeline.steps.3.name: step name 'direction' is used twice"]);
  });

  it('refuses a pipeline section on an ONNX model', async () => {
    const config = { ...(await ocrConfig()), platform: 'onnxruntime_onnx' };
    expect(issues(config)).toEqual(['platform: a config with a pipeline section says platform: pipeline']);
  });

  it('refuses inputs or outputs on a step of the OCR flow, whose glue defines its tensors', async () => {
    const config = await ocrConfig();
    (config.pipeline as { steps: Record<string, unknown>[] }).steps[2].inputs = { x: 'image' };
    expect(issues(config)).toEqual(["pipeline.steps.2: the 'ocr-crop' glue defines what the OCR flow's steps take and give: its steps have no inputs or outputs"]);
  });

  it('checks placement: device kinds cpu and gpu, fallback true by default', async () => {
    const config = modelConfigSchema.parse({ ...(await ocrConfig()), placement: { devices: ['gpu'] } });
    expect(config.placement).toEqual({ devices: ['gpu'], fallback: true });
    expect(issues({ ...(await ocrConfig()), placement: { devices: ['tpu'] } }).join('\n')).toMatch(/^placement\.devices\.0/);
  });
});

/** A dataflow: iris's probabilities, scaled by a second model, beside iris's label. */
function dataflow(): Record<string, unknown> {
  return {
    name: 'iris-scaled',
    platform: 'pipeline',
    inputs: [{ name: 'features', datatype: 'FP32', shape: [4] }],
    outputs: [{ name: 'label', datatype: 'INT64', shape: [] }, { name: 'scaled', datatype: 'FP32', shape: [3] }],
    pipeline: {
      steps: [
        { name: 'classify', model: 'iris', inputs: { features: 'features' }, outputs: { probabilities: 'probabilities', label: 'label' } },
        { name: 'scale', model: 'scaler', inputs: { x: 'probabilities' }, outputs: { y: 'scaled' } },
      ],
    },
  };
}

function stepsOf(config: Record<string, unknown>): Record<string, unknown>[] {
  return (config.pipeline as { steps: Record<string, unknown>[] }).steps;
}

describe('dataflow pipeline config', () => {
  it('accepts steps that take the pipeline\'s inputs and earlier steps\' outputs', () => {
    const config = modelConfigSchema.parse(dataflow());
    expect(config.pipeline?.steps.map((s) => s.name)).toEqual(['classify', 'scale']);
  });

  it('refuses a model step without inputs or outputs when the pipeline has no glue', () => {
    const config = dataflow();
    delete stepsOf(config)[1].outputs;
    expect(issues(config)).toEqual([expect.stringMatching(/^pipeline\.steps\.1: a step of a pipeline without glue says which pipeline tensor each of its model's inputs takes \('inputs'\)/)]);
  });

  it('refuses a tensor that no earlier step gives, naming the step\'s input and the tensors that exist there', () => {
    const config = dataflow();
    const steps = stepsOf(config);
    steps.reverse();
    expect(issues(config)).toContain("pipeline.steps.0.inputs.x: 'probabilities' is neither an input of the pipeline nor given by an earlier step (tensors before step 'scale': features)");
  });

  it('refuses a tensor given twice, or a step output named as a pipeline input', () => {
    const twice = dataflow();
    stepsOf(twice)[1].outputs = { y: 'label' };
    expect(issues(twice)).toContain("pipeline.steps.1.outputs.y: tensor 'label' is already given by step 'classify'");
    const shadow = dataflow();
    stepsOf(shadow)[1].outputs = { y: 'features' };
    expect(issues(shadow)).toContain("pipeline.steps.1.outputs.y: tensor 'features' is already an input of the pipeline");
  });

  it('refuses a declared output that no step gives, and a declared input that no step takes', () => {
    const config = dataflow();
    (config.outputs as { name: string }[])[1].name = 'calibrated';
    (config.inputs as unknown[]).push({ name: 'unused', datatype: 'FP32', shape: [1] });
    expect(issues(config)).toEqual([
      "outputs.1.name: output 'calibrated' is given by no step (step outputs: probabilities, label, scaled)",
      "inputs.1.name: input 'unused' is taken by no step",
    ]);
  });

  it('refuses a pipeline that is a step of itself, and maps of no tensors', () => {
    const self = dataflow();
    stepsOf(self)[1].model = 'iris-scaled';
    expect(issues(self)).toEqual(['pipeline.steps.1.model: a pipeline cannot be a step of itself']);
    const empty = dataflow();
    stepsOf(empty)[0].inputs = {};
    expect(issues(empty).join('\n')).toMatch(/^pipeline\.steps\.0\.inputs: names at least one tensor/m);
  });

  it('refuses max_batch_size on a pipeline, which batches nothing itself', () => {
    expect(issues({ ...dataflow(), max_batch_size: 8 })).toEqual(["max_batch_size: a pipeline batches nothing itself (its steps' models do): give its tensors' whole shapes, the first dimension -1, and no max_batch_size"]);
  });

  it('announces each step\'s maps in the heartbeat message', () => {
    const config = modelConfigSchema.parse(dataflow());
    expect(pipelineStepsMessage(config.pipeline)).toEqual([
      { name: 'classify', model: 'iris', glue: '', inputs: { features: 'features' }, outputs: { probabilities: 'probabilities', label: 'label' } },
      { name: 'scale', model: 'scaler', glue: '', inputs: { x: 'probabilities' }, outputs: { y: 'scaled' } },
    ]);
  });
});

describe('a pipeline in the repository', () => {
  let repository: string;
  let registry: ModelRegistry;

  beforeEach(async () => {
    repository = await mkdtemp(join(tmpdir(), 'infermesh-pipeline-'));
    await mkdir(join(repository, 'ocr', '1'), { recursive: true });
    await writeFile(join(repository, 'ocr', 'config.yaml'), stringify({ ...(await ocrConfig()), placement: { devices: ['gpu'], fallback: false } }));
    registry = new ModelRegistry({ repository, models: [], logger });
  });

  afterEach(async () => {
    await registry.release();
    await rm(repository, { recursive: true, force: true });
  });

  it('loads with an empty version folder and is announced with platform pipeline, its tensors and steps', async () => {
    await registry.loadAll();
    expect(registry.versionsOf('ocr')).toEqual(['1']);
    const heartbeat = heartbeatOf({ registry, state: { workerId: 'w', draining: false } as never, address: 'a:1', device: 'cpu' });
    const [ocr] = heartbeat.models!;
    expect(ocr).toMatchObject({ name: 'ocr', version: '1', ready: true, state: 'READY', platform: 'pipeline', placement: { devices: ['gpu'], fallback: false } });
    expect(ocr.inputs).toEqual([{ name: 'image', datatype: 'BYTES', shape: ['-1'] }]);
    expect(ocr.outputs!.map((o) => o.name)).toEqual(['text', 'boxes', 'scores', 'image_index']);
    expect(ocr.pipelineSteps).toEqual([
      { name: 'detect', model: 'ocr-detection', glue: '' },
      { name: 'crop', model: '', glue: 'ocr-crop' },
      { name: 'direction', model: 'text-direction', glue: '' },
      { name: 'recognize', model: 'ocr-recognition', glue: '' },
    ]);
  });

  it('unloads and loads again like a model', async () => {
    await registry.loadAll();
    expect((await registry.unload('ocr')).readyVersions).toEqual([]);
    expect(registry.list().find((e) => e.name === 'ocr')).toMatchObject({ state: 'UNAVAILABLE', reason: 'unloaded' });
    expect((await registry.load('ocr')).readyVersions).toEqual(['1']);
  });

  it('refuses inference at the worker, saying the router executes it', async () => {
    await registry.loadAll();
    expect(() => registry.resolve('ocr', '')).toThrow(/is a pipeline: routers execute it/);
  });

  it('a config that fails validation names the file and the field', async () => {
    await writeFile(join(repository, 'ocr', 'config.yaml'), stringify({ ...(await ocrConfig()), pipeline: { steps: [{ name: 'detect', model: 'ocr-detection' }] } }));
    await expect(readModelConfig(join(repository, 'ocr'))).rejects.toThrow(/config\.yaml is invalid: pipeline\.steps\.0: a step of a pipeline without glue says/);
  });
});
