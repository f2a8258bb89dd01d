/**
 * The `pipeline` and `placement` sections of a model's config.yaml.
 *
 * A pipeline (`platform: pipeline`) has no ONNX file: its steps name models the mesh serves
 * and glue functions, and the router executes it. The worker only checks the config, loads it
 * and announces it, so a pipeline is listed, versioned, loaded and described like a model.
 */
import { z } from 'zod';
import type { PipelineStep, Placement } from '@infermesh/contracts';

/** Glue functions the router knows (each a Preprocessor RPC). */
export const GLUES = ['ocr-crop'] as const;
export type Glue = (typeof GLUES)[number];

/** Steps of one pipeline at most: a config is the operator's, but what a heartbeat carries is bounded. */
export const MAX_PIPELINE_STEPS = 16;

const stepName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, "-" and "_"').max(64);
const modelName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, "-" and "_"').max(128);

const stepSchema = z.union([
  z.object({ name: stepName, model: modelName }).strict(),
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
    const problem = ocrShapeProblem(pipeline.steps);
    if (problem) ctx.addIssue({ code: 'custom', path: ['steps', problem.at], message: problem.message });
  });

export type PipelineConfig = z.infer<typeof pipelineSchema>;
export type PipelineStepConfig = PipelineConfig['steps'][number];

/**
 * The flows the router executes. The `ocr-crop` glue defines one: a detection model before
 * it, then an optional text-direction model, then a recognition model (PaddleOCR's det → cls →
 * rec). Anything else is refused at load, not at the first request.
 */
function ocrShapeProblem(steps: readonly PipelineStepConfig[]): { at: number; message: string } | undefined {
  const glue = steps.findIndex((s) => 'glue' in s);
  if (glue < 0) return { at: 0, message: 'a pipeline needs a glue step (glues: ocr-crop) that says how its models connect' };
  if (steps.filter((s) => 'glue' in s).length > 1) return { at: glue, message: 'one glue step per pipeline (ocr-crop)' };
  if (glue !== 1) return { at: glue, message: "the 'ocr-crop' glue comes second, after the detection model's step" };
  const after = steps.length - glue - 1;
  if (after < 1 || after > 2) {
    return { at: steps.length - 1, message: "after 'ocr-crop' come a text-direction model's step (optional) and a recognition model's step" };
  }
  return undefined;
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
  return (pipeline?.steps ?? []).map((step) => ('model' in step ? { name: step.name, model: step.model, glue: '' } : { name: step.name, model: '', glue: step.glue }));
}

export function placementMessage(placement: PlacementConfig | undefined): Placement | null {
  return placement ? { devices: [...placement.devices], fallback: placement.fallback } : null;
}
