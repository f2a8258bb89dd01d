/**
 * A pipeline's model step at the router, with a stand-in coalescer that records what each step
 * request held: the tensors go as they are unless they hold more rows than the model takes in
 * one request, and then every input is split alike, or the step is refused naming the inputs.
 */
import { describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import { Status } from '@infermesh/grpc';
import { createLogger } from '@infermesh/log';
import type { Tensor } from '@infermesh/tensor';
import type { ModelStatus__Output, PipelineStep__Output } from '@infermesh/contracts';
import { modelStatus } from '../router.fixture.js';
import type { Coalescer, WorkerAnswer } from '../coalescer.js';
import type { RoutingTable } from '../routing-table.js';
import { ModelSteps, type StepContext } from './model-step.js';
import { inferResponse, requestCodec } from './tensors.js';

const STEP: PipelineStep__Output = { name: 'join', model: 'm', glue: '', inputs: { n: 'n', x: 'x' }, outputs: { y: 'y' } };
const ctx: StepContext = {
  pipeline: 'flow', requestId: 'r', deadlineMs: Date.now() + 10_000, signal: new AbortController().signal, clientId: '',
  parent: trace.wrapSpanContext({ traceId: '1'.repeat(32), spanId: '1'.repeat(16), traceFlags: 1 }),
};

/** The steps with one model of `maxBatchSize`; each request answers `y` with its rows of x. */
function steps(maxBatchSize: number) {
  const status = modelStatus('m', { maxBatchSize });
  const sent: { shapes: number[][]; items: number }[] = [];
  const coalescer = {
    submit: async (_status: ModelStatus__Output, _version: string, request: { bytes: Buffer }, items: number) => {
      const decoded = requestCodec.decode(request.bytes);
      const shapes = decoded.inputs.map((t) => t.shape.map(Number));
      sent.push({ shapes, items });
      const rows = shapes[shapes.length - 1][0] ?? 1;
      const output: WorkerAnswer = {
        response: inferResponse('m', '1', decoded.id, [{ name: 'y', datatype: 'FP32', shape: [rows], data: new Float32Array(rows).fill(sent.length) }]),
        statusCode: Status.OK, errorMessage: '', preprocessUs: 0, queueUs: 0, computeUs: 0, batchSize: items, driftBins: Buffer.alloc(0),
        profileId: '', predictedLabels: [], requestId: decoded.id, outputSample: [], workerId: 'w',
      };
      return { output, queueNs: 0, computeNs: 0, batchSize: items };
    },
  } as unknown as Coalescer;
  const table = { model: () => status } as unknown as RoutingTable;
  return { models: new ModelSteps({ table, coalescer, publish: () => undefined, logger: createLogger('test', { level: 'silent' }) }), sent };
}

const fp32 = (name: string, rows: number): Tensor => ({ name, datatype: 'FP32', shape: [rows], data: new Float32Array(rows) });

describe('a model step', () => {
  it('sends tensors of different row counts as they are when one request takes them: the worker judges them, as a client\'s', async () => {
    const { models, sent } = steps(32);
    await models.run(STEP, [fp32('n', 1), fp32('x', 3)], ctx);
    expect(sent).toEqual([{ shapes: [[1], [3]], items: 1 }]);
  });

  it('splits every input alike when they hold more rows than the model takes, joining the answers in order', async () => {
    const { models, sent } = steps(4);
    const answer = await models.run(STEP, [fp32('n', 10), fp32('x', 10)], ctx);
    expect(sent.map((s) => s.shapes)).toEqual([[[4], [4]], [[4], [4]], [[2], [2]]]);
    expect(Array.from(answer.get('y')!.data as Float32Array)).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
  });

  it('refuses, naming the inputs, to split tensors whose row counts disagree', async () => {
    const { models, sent } = steps(4);
    await expect(models.run(STEP, [fp32('n', 10), fp32('x', 3)], ctx)).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT, message: "flow step 'join' (model m): inputs disagree on the batch size: 'n' has 10 rows, 'x' 3",
    });
    expect(sent).toEqual([]);
  });

  it('sends a model without a batch dimension its tensors whole, one item, whatever their first dimension', async () => {
    const { models, sent } = steps(0);
    await models.run(STEP, [fp32('n', 0), { name: 'x', datatype: 'FP32', shape: [], data: new Float32Array(1) }], ctx);
    expect(sent).toEqual([{ shapes: [[0], []], items: 1 }]);
  });
});
