/**
 * Dataflow pipelines with stand-in models: `double` (x → y = 2x), `sum` (a, b → total = a + b)
 * and `count` (x → n, the rows). Each test sees which steps ran with what, in which order,
 * and what the pipeline answered.
 */
import { describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import { Status, ServiceError, invalidArgument } from '@infermesh/grpc';
import type { Tensor } from '@infermesh/tensor';
import type { ModelStatus__Output, PipelineStep__Output } from '@infermesh/contracts';
import { PipelineExecutor } from './pipeline-executor.js';
import type { StepContext, StepModels } from './model-step.js';
import { dataflowSteps } from './dataflow.js';
import { decodeOutputs, inferRequest, requestCodec, type RequestedOutput } from './tensors.js';

const step = (name: string, model: string, inputs: Record<string, string>, outputs: Record<string, string>): PipelineStep__Output => ({ name, model, glue: '', inputs, outputs });

/** x → doubled (2x) and quadrupled (4x, from doubled); x and doubled → total (3x); count of rows. */
const STEPS = [
  step('twice', 'double', { x: 'x' }, { y: 'doubled' }),
  step('again', 'double', { x: 'doubled' }, { y: 'quadrupled' }),
  step('add', 'sum', { a: 'x', b: 'doubled' }, { total: 'total' }),
  step('rows', 'count', { x: 'x' }, { n: 'rows' }),
];

const tensorMeta = (name: string, datatype: string) => ({ name, datatype, shape: ['-1'] });

function pipeline(steps = STEPS): ModelStatus__Output {
  return {
    name: 'flow', version: '1', ready: true, state: 'READY', platform: 'pipeline', maxBatchSize: 0, reason: '',
    inputs: [tensorMeta('x', 'FP32')],
    outputs: [tensorMeta('total', 'FP32'), tensorMeta('quadrupled', 'FP32'), tensorMeta('rows', 'INT64')],
    dynamicBatching: null, instances: 1, driftReference: null, classLabels: [], pipelineSteps: steps, placement: null,
  };
}

class StandIns implements StepModels {
  readonly calls: { step: string; inputs: string[] }[] = [];
  readonly started: string[] = [];
  fail?: { step: string; error: ServiceError };
  /** Steps named here wait until released (concurrency and cancellation tests). */
  readonly held = new Map<string, () => void>();
  hold = new Set<string>();
  aborted: string[] = [];
  /** Outputs a stand-in leaves out of its answer. */
  omit?: string;

  maxBatch(): number {
    return 0;
  }

  /** What each step was asked for, when it was asked for named outputs. */
  readonly asked = new Map<string, readonly RequestedOutput[]>();

  async run(step: PipelineStep__Output, inputs: readonly Tensor[], ctx: StepContext, outputs?: readonly RequestedOutput[]): Promise<Map<string, Tensor>> {
    this.started.push(step.name);
    if (outputs) this.asked.set(step.name, outputs);
    if (this.hold.has(step.name)) {
      await new Promise<void>((resolve, reject) => {
        this.held.set(step.name, resolve);
        ctx.signal.addEventListener('abort', () => {
          this.aborted.push(step.name);
          reject(new ServiceError(Status.CANCELLED, 'cancelled'));
        }, { once: true });
      });
    }
    this.calls.push({ step: step.name, inputs: inputs.map((t) => t.name) });
    if (this.fail?.step === step.name) throw this.fail.error;
    const of = (name: string) => inputs.find((t) => t.name === name)!.data as Float32Array;
    const out = new Map<string, Tensor>();
    if (step.model === 'double') out.set('y', { name: 'y', datatype: 'FP32', shape: [...inputs[0].shape], data: of('x').map((v) => v * 2) });
    if (step.model === 'sum') out.set('total', { name: 'total', datatype: 'FP32', shape: [...inputs[0].shape], data: of('a').map((v, i) => v + of('b')[i]) });
    if (step.model === 'count') out.set('n', { name: 'n', datatype: 'INT64', shape: [1], data: BigInt64Array.of(BigInt(inputs[0].shape[0])) });
    if (this.omit) out.delete(this.omit);
    // The classification extension, as a worker answers it: "score:index" per row.
    for (const o of outputs ?? []) {
      const scores = out.get(o.name);
      if (scores && o.parameters?.classification) out.set(o.name, { name: o.name, datatype: 'BYTES', shape: [scores.shape[0], 1], data: Array.from(scores.data as Float32Array, (v) => Buffer.from(`${v}:0`)) });
    }
    return out;
  }
}

function call(signal = new AbortController().signal) {
  return { deadlineMs: Date.now() + 10_000, signal, span: trace.wrapSpanContext({ traceId: '1'.repeat(32), spanId: '1'.repeat(16), traceFlags: 1 }), clientId: '' };
}

const X: Tensor = { name: 'x', datatype: 'FP32', shape: [3], data: Float32Array.of(1, 2, 3) };

async function infer(models: StandIns, inputs: Tensor[] = [X], options: { requested?: (string | RequestedOutput)[]; status?: ModelStatus__Output; signal?: AbortSignal } = {}) {
  const executor = new PipelineExecutor({ models, glue: { ocrCrop: () => Promise.reject(new Error('no glue in a dataflow')), close: () => undefined } });
  const request = requestCodec.decode(inferRequest('flow', 'req-1', inputs));
  const bytes = Buffer.from(requestCodec.encode({ ...request, outputs: (options.requested ?? []).map((o) => (typeof o === 'string' ? { name: o } : o)) }));
  const answer = await executor.infer(options.status ?? pipeline(), '1', bytes, call(options.signal));
  return decodeOutputs(answer.response);
}

describe('dataflow pipelines', () => {
  it('takes only steps that are all models with both maps as a dataflow', () => {
    expect(dataflowSteps(STEPS)).toHaveLength(4);
    expect(dataflowSteps([...STEPS, { name: 'crop', model: '', glue: 'ocr-crop', inputs: {}, outputs: {} }])).toBeUndefined();
    expect(dataflowSteps([step('a', 'double', {}, { y: 'y' })])).toBeUndefined();
  });

  it('runs each step on the tensors it takes, under its model\'s input names, and answers the declared outputs', async () => {
    const models = new StandIns();
    const outputs = await infer(models);
    expect([...outputs.keys()]).toEqual(['total', 'quadrupled', 'rows']);
    expect(Array.from(outputs.get('total')!.data as Float32Array)).toEqual([3, 6, 9]);
    expect(Array.from(outputs.get('quadrupled')!.data as Float32Array)).toEqual([4, 8, 12]);
    expect(outputs.get('rows')!.data).toEqual(BigInt64Array.of(3n));
    expect(models.calls.find((c) => c.step === 'add')!.inputs).toEqual(['a', 'b']);
  });

  it('starts a step as soon as its tensors exist: independent steps run at once', async () => {
    const models = new StandIns();
    models.hold = new Set(['twice']);
    const answered = infer(models);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // 'rows' takes only the pipeline's input: it ran while 'twice' was held; 'again' and 'add' wait for 'doubled'.
    expect(models.started).toEqual(['twice', 'rows']);
    models.held.get('twice')!();
    await answered;
    expect(models.started.slice(2).sort()).toEqual(['add', 'again']);
  });

  it('runs only the steps the requested outputs need', async () => {
    const models = new StandIns();
    const outputs = await infer(models, [X], { requested: ['quadrupled'] });
    expect([...outputs.keys()]).toEqual(['quadrupled']);
    expect(models.calls.map((c) => c.step)).toEqual(['twice', 'again']);
  });

  it('passes an output\'s classification to the step that gives it, asking that step for its outputs by name', async () => {
    const models = new StandIns();
    const classification = { classification: { parameterChoice: 'int64Param' as const, int64Param: '1' } };
    const outputs = await infer(models, [X], { requested: [{ name: 'total', parameters: classification }, 'rows'] });
    expect(outputs.get('total')).toMatchObject({ datatype: 'BYTES', shape: [3, 1] });
    expect((outputs.get('total')!.data as Buffer[]).map(String)).toEqual(['3:0', '6:0', '9:0']);
    expect(models.asked.get('add')).toEqual([{ name: 'total', parameters: classification }]);
    expect(models.asked.has('twice')).toBe(false);
  });

  it('refuses to classify an output a later step takes as scores, and any output of the OCR flow', async () => {
    const status = pipeline();
    status.outputs.push(tensorMeta('doubled', 'FP32'));
    const classification = { classification: { parameterChoice: 'int64Param' as const, int64Param: '1' } };
    const models = new StandIns();
    await expect(infer(models, [X], { status, requested: [{ name: 'doubled', parameters: classification }, 'quadrupled'] })).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT, message: "flow output 'doubled' cannot be classified: step 'again' takes it as scores",
    });
    expect(models.calls).toEqual([]);
    const ocr = { ...pipeline([{ name: 'detect', model: 'd', glue: '', inputs: {}, outputs: {} }, { name: 'crop', model: '', glue: 'ocr-crop', inputs: {}, outputs: {} }, { name: 'recognize', model: 'r', glue: '', inputs: {}, outputs: {} }]), name: 'ocr' };
    await expect(infer(models, [X], { status: ocr, requested: [{ name: 'scores', parameters: classification }] })).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT, message: "ocr's outputs cannot be classified (its lines are text, not class scores)",
    });
  });

  it('refuses inputs unlike the declared ones, and an unknown output, before any step runs', async () => {
    const models = new StandIns();
    const cases: [Tensor[], string[] | undefined, RegExp][] = [
      [[{ ...X, shape: [1, 3] }], undefined, /^input 'x': shape \[1, 3\], \[-1\] expected$/],
      [[X], ['total', 'rows', 'total'], /^output 'total' is requested twice$/],
      [[{ ...X, name: 'y' }], undefined, /^flow has no input 'y' \(inputs: x\)$/],
      [[{ ...X, datatype: 'INT32', data: Int32Array.of(1, 2, 3) }], undefined, /input 'x': datatype INT32, FP32 expected/],
      [[], undefined, /input 'x' is missing \(flow takes x\)/],
      [[X], ['labels'], /flow has no output 'labels' \(outputs: total, quadrupled, rows\)/],
    ];
    for (const [inputs, requested, message] of cases) {
      await expect(infer(models, inputs, { requested })).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT, message: expect.stringMatching(message) });
    }
    expect(models.calls).toEqual([]);
  });

  it('answers a failing step\'s status naming the step, and cancels the steps still running', async () => {
    const models = new StandIns();
    models.hold = new Set(['rows']);
    models.fail = { step: 'again', error: invalidArgument("input 'x': shape [3] is not [-1, 4]") };
    await expect(infer(models)).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      message: "flow step 'again' (model double): input 'x': shape [3] is not [-1, 4]",
    });
    expect(models.aborted).toEqual(['rows']);
  });

  it('answers INTERNAL naming the step when its model leaves out an output the pipeline keeps', async () => {
    const models = new StandIns();
    models.omit = 'total';
    await expect(infer(models)).rejects.toMatchObject({ code: Status.INTERNAL, message: expect.stringMatching(/flow step 'add' \(model sum\): the answer has no output 'total' \(outputs: none\)/) });
  });

  it('answers INTERNAL when a step gives an output of another datatype than the pipeline declares', async () => {
    const status = pipeline();
    status.outputs[2] = tensorMeta('rows', 'INT32');
    await expect(infer(new StandIns(), [X], { status })).rejects.toMatchObject({ code: Status.INTERNAL, message: expect.stringMatching(/flow output 'rows' is INT64 from its step, but the pipeline declares INT32/) });
  });

  it('answers UNAVAILABLE for announced steps that do not connect, running none', async () => {
    const models = new StandIns();
    const reversed = pipeline([STEPS[1], STEPS[0], STEPS[2], STEPS[3]]);
    await expect(infer(models, [X], { status: reversed })).rejects.toMatchObject({ code: Status.UNAVAILABLE, message: expect.stringMatching(/flow' announces steps that do not connect: nothing before it gives 'doubled'/) });
    const twice = pipeline([...STEPS, step('more', 'double', { x: 'x' }, { y: 'doubled' })]);
    await expect(infer(models, [X], { status: twice })).rejects.toMatchObject({ code: Status.UNAVAILABLE, message: expect.stringMatching(/tensor 'doubled' given twice/) });
    expect(models.calls).toEqual([]);
  });

  it('takes at most the steps and map entries a worker\'s config may declare from a heartbeat', () => {
    expect(dataflowSteps(Array.from({ length: 17 }, (_, i) => step(`s${i}`, 'double', { x: 'x' }, { y: `y${i}` })))).toBeUndefined();
    expect(dataflowSteps(Array.from({ length: 16 }, (_, i) => step(`s${i}`, 'double', { x: 'x' }, { y: `y${i}` })))).toHaveLength(16);
    const wide = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`in${i}`, 'x']));
    expect(dataflowSteps([step('wide', 'sum', wide, { total: 'total' })])).toBeUndefined();
  });

  it('stops the steps when the client cancels', async () => {
    const models = new StandIns();
    models.hold = new Set(['twice', 'rows']);
    const cancel = new AbortController();
    const answered = infer(models, [X], { signal: cancel.signal });
    await new Promise((resolve) => setTimeout(resolve, 20));
    cancel.abort();
    await expect(answered).rejects.toMatchObject({ code: Status.CANCELLED });
    expect(models.aborted.sort()).toEqual(['rows', 'twice']);
    expect(models.calls).toEqual([]);
  });
});
