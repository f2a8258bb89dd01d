/**
 * The `pipeline` and `placement` sections of a model's config.yaml.
 *
 * A pipeline (`platform: pipeline`) has no ONNX file: its steps name models the mesh serves
 * and glue functions, and the router executes it. The worker only checks the config, loads it
 * and announces it, so a pipeline is listed, versioned, loaded and described like a model.
 *
 * Two kinds of pipeline:
 * - a dataflow (as Triton's ensembles): every step is a model step that says which pipeline
 *   tensor each of its model's inputs takes (`inputs`) and which of its model's outputs the
 *   pipeline keeps under which tensor name (`outputs`); the pipeline's inputs and outputs are
 *   tensors by those names. Steps run as soon as the tensors they take exist.
 * - the OCR flow, which the `ocr-crop` glue defines (detect → crop → direction → recognize):
 *   its tensors are the glue's, so its steps have no maps.
 */
import { z } from 'zod';
import type { PipelineStep, Placement } from '@infermesh/contracts';

/** Glue functions the router knows (each a Preprocessor RPC). */
export const GLUES = ['ocr-crop'] as const;
export type Glue = (typeof GLUES)[number];

/** Steps of one pipeline at most: a config is the operator's, but what a heartbeat carries is bounded. */
export const MAX_PIPELINE_STEPS = 16;
/** Entries of one step's `inputs` or `outputs` at most. */
export const MAX_STEP_TENSORS = 64;

const stepName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, "-" and "_"').max(64);
const modelName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, "-" and "_"').max(128);
const tensorName = z.string().min(1).max(128);
/** Model tensor name → pipeline tensor name. */
const tensorMap = z
  .record(tensorName, tensorName)
  .refine((map) => Object.keys(map).length >= 1, 'names at least one tensor')
  .refine((map) => Object.keys(map).length <= MAX_STEP_TENSORS, `names at most ${MAX_STEP_TENSORS} tensors`);

const stepSchema = z.union([
  z.object({ name: stepName, model: modelName, inputs: tensorMap.optional(), outputs: tensorMap.optional() }).strict(),
  z.object({ name: stepName, glue: z.enum(GLUES) }).strict(),
]);

export const pipelineSchema = z
  .object({ steps: z.array(stepSchema).min(1).max(MAX_PIPELINE_STEPS) })
  .strict()
  .superRefine((pipeline, ctx) => {
    const seen = new Set<string>();
    pipeline.steps.forEach((step, i) => {
      if (seen.has(step.name)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'name'], message: `step name '${step.name}' is used twice` });
      seen.add(step.name);
    });
    const problem = pipeline.steps.some((s) => 'glue' in s) ? ocrShapeProblem(pipeline.steps) : dataflowShapeProblem(pipeline.steps);
    if (problem) ctx.addIssue({ code: 'custom', path: ['steps', ...problem.at], message: problem.message });
  });

export type PipelineConfig = z.infer<typeof pipelineSchema>;
export type PipelineStepConfig = PipelineConfig['steps'][number];

interface Problem {
  at: (string | number)[];
  message: string;
}

/**
 * The flows the router executes. The `ocr-crop` glue defines one: a detection model before
 * it, then an optional text-direction model, then a recognition model (PaddleOCR's det → cls →
 * rec). Anything else is refused at load, not at the first request.
 */
function ocrShapeProblem(steps: readonly PipelineStepConfig[]): Problem | undefined {
  const glue = steps.findIndex((s) => 'glue' in s);
  if (steps.filter((s) => 'glue' in s).length > 1) return { at: [glue], message: 'one glue step per pipeline (ocr-crop)' };
  if (glue !== 1) return { at: [glue], message: "the 'ocr-crop' glue comes second, after the detection model's step" };
  const after = steps.length - glue - 1;
  if (after < 1 || after > 2) {
    return { at: [steps.length - 1], message: "after 'ocr-crop' come a text-direction model's step (optional) and a recognition model's step" };
  }
  const mapped = steps.findIndex((s) => 'model' in s && (s.inputs || s.outputs));
  if (mapped >= 0) return { at: [mapped], message: "the 'ocr-crop' glue defines what the OCR flow's steps take and give: its steps have no inputs or outputs" };
  return undefined;
}

/** A pipeline without glue is a dataflow: each step says what its model takes and gives. */
function dataflowShapeProblem(steps: readonly PipelineStepConfig[]): Problem | undefined {
  const bare = steps.findIndex((s) => 'model' in s && (!s.inputs || !s.outputs));
  if (bare < 0) return undefined;
  return {
    at: [bare],
    message: "a step of a pipeline without glue says which pipeline tensor each of its model's inputs takes ('inputs') and which of its model's outputs the pipeline keeps ('outputs'); the one glue is ocr-crop",
  };
}

/**
 * A dataflow pipeline's tensors, checked against the pipeline's declared inputs and outputs:
 * every step takes tensors that exist before it (a pipeline input or an earlier step's), no
 * tensor is given twice, every declared output is given by a step and every declared input is
 * taken by one. `addIssue` receives each problem with its path from the config's root.
 */
export function dataflowProblems(
  config: { name: string; inputs: readonly { name: string }[]; outputs: readonly { name: string }[]; pipeline: PipelineConfig },
  addIssue: (path: (string | number)[], message: string) => void,
): void {
  const { steps } = config.pipeline;
  if (steps.some((s) => !('model' in s) || !s.inputs || !s.outputs)) return;
  /** Tensor → the step that gives it; null for the pipeline's inputs. */
  const given = new Map<string, string | null>(config.inputs.map((input) => [input.name, null]));
  const taken = new Set<string>();
  steps.forEach((step, i) => {
    if (!('model' in step) || !step.inputs || !step.outputs) return;
    if (step.model === config.name) addIssue(['pipeline', 'steps', i, 'model'], 'a pipeline cannot be a step of itself');
    for (const [input, source] of Object.entries(step.inputs)) {
      taken.add(source);
      if (!given.has(source)) {
        addIssue(['pipeline', 'steps', i, 'inputs', input], `'${source}' is neither an input of the pipeline nor given by an earlier step (tensors before step '${step.name}': ${[...given.keys()].join(', ')})`);
      }
    }
    for (const [output, tensor] of Object.entries(step.outputs)) {
      if (!given.has(tensor)) {
        given.set(tensor, step.name);
        continue;
      }
      const by = given.get(tensor);
      addIssue(['pipeline', 'steps', i, 'outputs', output], `tensor '${tensor}' is already ${by === null ? 'an input of the pipeline' : `given by step '${by}'`}`);
    }
  });
  const stepTensors = [...given].filter(([, by]) => by !== null).map(([tensor]) => tensor);
  config.outputs.forEach((output, j) => {
    if (!given.get(output.name)) addIssue(['outputs', j, 'name'], `output '${output.name}' is given by no step (step outputs: ${stepTensors.join(', ') || 'none'})`);
  });
  config.inputs.forEach((input, j) => {
    if (!taken.has(input.name)) addIssue(['inputs', j, 'name'], `input '${input.name}' is taken by no step`);
  });
}

export const placementSchema = z
  .object({
    devices: z.array(z.enum(['cpu', 'gpu'])).min(1).max(4),
    fallback: z.boolean().default(true),
  })
  .strict();

export type PlacementConfig = z.infer<typeof placementSchema>;

/** The steps as a heartbeat announces them. */
export function pipelineStepsMessage(pipeline: PipelineConfig | undefined): PipelineStep[] {
  return (pipeline?.steps ?? []).map((step) => {
    if (!('model' in step)) return { name: step.name, model: '', glue: step.glue };
    const maps = step.inputs && step.outputs ? { inputs: { ...step.inputs }, outputs: { ...step.outputs } } : {};
    return { name: step.name, model: step.model, glue: '', ...maps };
  });
}

export function placementMessage(placement: PlacementConfig | undefined): Placement | null {
  return placement ? { devices: [...placement.devices], fallback: placement.fallback } : null;
}
