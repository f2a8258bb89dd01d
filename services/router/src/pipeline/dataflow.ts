/**
 * Dataflow pipelines (as Triton's ensembles): each step is a model step that says which
 * pipeline tensor each of its model's inputs takes and under which tensor name the pipeline
 * keeps its model's outputs. A step starts as soon as the tensors it takes exist, so steps
 * that do not depend on each other run at once; steps whose tensors the answer does not need
 * (a client asked for some outputs only) are not run. Every step is a request through the
 * router's Coalescer (model-step.ts), batched with every other request for its model.
 *
 * The worker checked the config when it loaded it (services/worker/src/pipeline-config.ts);
 * what a heartbeat announces is still checked here before anything runs.
 */
import { invalidArgument, ServiceError, Status, unavailable } from '@infermesh/grpc';
import { formatShape, shapeMatches, type Tensor } from '@infermesh/tensor';
import type { InferParameter, ModelStatus__Output, PipelineStep__Output } from '@infermesh/contracts';
import { stepError, type StepContext, type StepModels } from './model-step.js';
import type { RequestedOutput } from './tensors.js';

/** A dataflow step: a model with its maps. */
export type DataflowStep = PipelineStep__Output;

/** Steps, and tensors of one step's map, at most: what a worker's config may declare (services/worker/src/pipeline-config.ts). */
export const MAX_PIPELINE_STEPS = 16;
export const MAX_STEP_TENSORS = 64;

/**
 * The steps, when they are a dataflow (every step a model step with both maps, no glue) within
 * the bounds a worker's config has: a heartbeat announcing more is not run.
 */
export function dataflowSteps(steps: readonly PipelineStep__Output[]): DataflowStep[] | undefined {
  const mapped = (map: Record<string, string> | undefined) => {
    const size = Object.keys(map ?? {}).length;
    return size > 0 && size <= MAX_STEP_TENSORS;
  };
  const ok = steps.length > 0 && steps.length <= MAX_PIPELINE_STEPS && steps.every((s) => s.model && !s.glue && mapped(s.inputs) && mapped(s.outputs));
  return ok ? [...steps] : undefined;
}

/**
 * The pipeline's outputs for a request's inputs: the request must give every input the
 * pipeline declares, by name and datatype, and nothing else. `requested` (the request's
 * outputs) narrows the answer; an unknown name is INVALID_ARGUMENT. An output requested with
 * Triton's `classification` parameter is classified by the model of the step that gives it
 * (with that model's labels), unless a later step takes it as it is.
 */
export async function runDataflow(status: ModelStatus__Output, steps: readonly DataflowStep[], inputs: readonly Tensor[], requested: readonly RequestedOutput[], models: StepModels, ctx: StepContext): Promise<Tensor[]> {
  checkInputs(status, inputs);
  const declared = status.outputs.map((o) => o.name);
  const unknown = requested.find((o) => !declared.includes(o.name));
  if (unknown !== undefined) throw invalidArgument(`${ctx.pipeline} has no output '${unknown.name.slice(0, 64)}' (outputs: ${declared.join(', ')})`);
  const twice = requested.find((o, i) => requested.findIndex((other) => other.name === o.name) !== i);
  if (twice !== undefined) throw invalidArgument(`output '${twice.name}' is requested twice`);
  const wanted = requested.length ? requested.map((o) => o.name) : declared;
  const plan = planOf(ctx.pipeline, steps, inputs.map((t) => t.name), wanted);
  const classified = classifiedOutputs(ctx.pipeline, plan, requested);

  // A step that fails ends the request: the steps still running or waiting are cancelled.
  const failed = new AbortController();
  const signal = AbortSignal.any([ctx.signal, failed.signal]);
  const stepCtx: StepContext = { ...ctx, signal };
  const tensors = new Map<string, Promise<Tensor>>(inputs.map((t) => [t.name, Promise.resolve(t)]));
  const runs: Promise<unknown>[] = [];
  for (const step of plan) {
    const answer = (async () => {
      // A source's failure is the failing step's own (already named): it passes as it is.
      const taken = await Promise.all(Object.entries(step.inputs).map(async ([input, source]) => ({ ...(await tensors.get(source)!), name: input })));
      signal.throwIfAborted();
      // A step that gives a classified output is asked for its outputs by name, that one with its parameter.
      const asked = Object.values(step.outputs).some((tensor) => classified.has(tensor))
        ? Object.entries(step.outputs).map(([output, tensor]) => ({ name: output, parameters: classified.get(tensor) }))
        : undefined;
      return models.run(step, taken, stepCtx, asked).catch((error: unknown) => {
        throw stepError(ctx.pipeline, step, error);
      });
    })();
    answer.catch((error: unknown) => failed.abort(error));
    runs.push(answer);
    for (const [output, tensor] of Object.entries(step.outputs)) {
      const given = answer.then((outputs) => readOutput(ctx.pipeline, step, outputs, output, tensor));
      // Read by later steps or the answer; a failure is answered through `runs`, never left unhandled.
      given.catch(() => undefined);
      tensors.set(tensor, given);
    }
  }
  await Promise.all(runs);
  return Promise.all(wanted.map(async (name) => {
    const tensor = await tensors.get(name)!;
    const expected = classified.has(name) ? 'BYTES' : status.outputs.find((o) => o.name === name)!.datatype;
    if (tensor.datatype !== expected) {
      throw new ServiceError(Status.INTERNAL, `${ctx.pipeline} output '${name}' is ${tensor.datatype} from its step, but the pipeline declares ${expected}`);
    }
    return tensor;
  }));
}

/**
 * The outputs requested with `classification`, by tensor, with the parameter to pass to the
 * step that gives them. A tensor a planned step takes cannot be classified: that step takes
 * the scores, not the classes.
 */
function classifiedOutputs(pipeline: string, plan: readonly DataflowStep[], requested: readonly RequestedOutput[]): Map<string, Record<string, InferParameter>> {
  const classified = new Map<string, Record<string, InferParameter>>();
  for (const output of requested) {
    const classification = output.parameters?.classification;
    if (!classification) continue;
    const taker = plan.find((step) => Object.values(step.inputs).includes(output.name));
    if (taker) throw invalidArgument(`${pipeline} output '${output.name}' cannot be classified: step '${taker.name}' takes it as scores`);
    classified.set(output.name, { classification });
  }
  return classified;
}

/** The request's inputs against the pipeline's declared ones. */
function checkInputs(status: ModelStatus__Output, inputs: readonly Tensor[]): void {
  const declared = status.inputs;
  const names = declared.map((d) => d.name).join(', ');
  const seen = new Set<string>();
  for (const tensor of inputs) {
    const name = tensor.name.slice(0, 64);
    if (seen.has(tensor.name)) throw invalidArgument(`input '${name}' is given twice`);
    seen.add(tensor.name);
    const spec = declared.find((d) => d.name === tensor.name);
    if (!spec) throw invalidArgument(`${status.name} has no input '${name}' (inputs: ${names})`);
    if (spec.datatype !== tensor.datatype) throw invalidArgument(`input '${name}': datatype ${tensor.datatype}, ${spec.datatype} expected`);
    const shape = spec.shape.map(Number);
    if (!shapeMatches(tensor.shape, shape)) throw invalidArgument(`input '${name}': shape ${formatShape(tensor.shape)}, ${formatShape(shape)} expected`);
  }
  const missing = declared.find((d) => !seen.has(d.name));
  if (missing) throw invalidArgument(`input '${missing.name}' is missing (${status.name} takes ${names})`);
}

/**
 * The steps to run for `wanted`, in their order: those whose tensors the answer needs, directly
 * or through later steps. A heartbeat whose steps do not connect is UNAVAILABLE, as a pipeline
 * this router cannot run.
 */
function planOf(pipeline: string, steps: readonly DataflowStep[], inputs: readonly string[], wanted: readonly string[]): DataflowStep[] {
  const givenBy = new Map<string, number>();
  steps.forEach((step, i) => {
    for (const tensor of Object.values(step.outputs)) {
      if (givenBy.has(tensor) || inputs.includes(tensor)) throw unavailable(`pipeline '${pipeline}' announces tensor '${tensor.slice(0, 64)}' given twice`);
      givenBy.set(tensor, i);
    }
  });
  const needed = new Set<number>();
  const visit = (tensor: string, before: number) => {
    if (inputs.includes(tensor)) return;
    const at = givenBy.get(tensor);
    if (at === undefined || at >= before) throw unavailable(`pipeline '${pipeline}' announces steps that do not connect: nothing before it gives '${tensor.slice(0, 64)}'`);
    if (needed.has(at)) return;
    needed.add(at);
    for (const source of Object.values(steps[at].inputs)) visit(source, at);
  };
  for (const tensor of wanted) visit(tensor, steps.length);
  return steps.filter((_, i) => needed.has(i));
}

/** A step's output under its pipeline name; an answer without it is INTERNAL naming the step. */
function readOutput(pipeline: string, step: DataflowStep, outputs: Map<string, Tensor>, output: string, tensor: string): Tensor {
  const found = outputs.get(output);
  if (!found) throw stepError(pipeline, step, new ServiceError(Status.INTERNAL, `the answer has no output '${output}' (outputs: ${[...outputs.keys()].join(', ') || 'none'})`));
  return { ...found, name: tensor };
}
