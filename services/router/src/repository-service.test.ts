/**
 * The repository extension at the router, from what workers announce: RepositoryIndex's
 * states, ModelConfig's Triton fields, the "version" parameter of load and unload, and how
 * a version announced UNLOADING is routed.
 */
import { describe, expect, it } from 'vitest';
import type { ModelStatus__Output, PipelineStep__Output, WorkerHeartbeat__Output } from '@infermesh/contracts';
import { ServiceError, Status, type CallContext } from '@infermesh/grpc';
import { RoutingTable } from './routing-table.js';
import { modelConfigOf, repositoryHandlers, versionsParameter } from './repository-service.js';
import { openAccess } from './auth/index.js';

function status(name: string, version: string, state: string, reason = ''): ModelStatus__Output {
  return {
    name, version, ready: state === 'READY', state, reason, platform: 'onnxruntime_onnx', maxBatchSize: 8, dynamicBatching: null, instances: 2, driftReference: null, classLabels: [], pipelineSteps: [], placement: null,
    inputs: [{ name: 'row', datatype: 'BYTES', shape: ['-1'] }, { name: 'x', datatype: 'FP32', shape: ['-1', '4'] }],
    outputs: [{ name: 'y', datatype: 'INT64', shape: ['-1'] }],
  };
}

function heartbeat(workerId: string, models: ModelStatus__Output[], device = 'cpu'): WorkerHeartbeat__Output {
  return { workerId, address: `${workerId}:1`, device, models, queueDepth: 0, inFlight: 0, sentAtMs: '0', draining: false, executionProvider: 'cpu', rssBytes: '0' };
}

const ctx = {} as CallContext;

function refusal(run: () => unknown): { code: number; message: string } {
  try {
    run();
  } catch (error) {
    return { code: (error as ServiceError).code, message: (error as Error).message };
  }
  throw new Error('no error');
}

describe('RepositoryIndex', () => {
  const table = new RoutingTable(60_000);
  table.update(heartbeat('a', [status('m', '1', 'UNLOADING'), status('m', '2', 'READY'), status('m', '3', 'UNAVAILABLE', 'bad file')]));
  table.update(heartbeat('b', [status('m', '1', 'READY'), status('m', '2', 'LOADING')]));
  const handlers = repositoryHandlers({ table, access: openAccess });

  it('lists every version with the most available state any worker reports, and the reason of one that is not', async () => {
    expect((await handlers.RepositoryIndex({ repositoryName: '', ready: false }, ctx)).models).toEqual([
      { name: 'm', version: '1', state: 'READY', reason: '' },
      { name: 'm', version: '2', state: 'READY', reason: '' },
      { name: 'm', version: '3', state: 'UNAVAILABLE', reason: 'bad file' },
    ]);
  });

  it('lists only READY versions when asked for ready ones', async () => {
    expect((await handlers.RepositoryIndex({ repositoryName: '', ready: true }, ctx)).models.map((m) => m.version)).toEqual(['1', '2']);
  });
});

describe('routing a version being unloaded', () => {
  const table = new RoutingTable(60_000);
  table.update(heartbeat('a', [status('m', '1', 'UNLOADING'), status('m', '2', 'READY')]));
  table.update(heartbeat('b', [status('m', '3', 'LOADING')]));

  it('sends the requests pinned to it there', () => {
    expect(table.holders('m', '1').map((w) => w.id)).toEqual(['a']);
  });

  it('pins no new request to it, nor to a version still loading', () => {
    expect(table.model('m')?.version).toBe('2');
    expect(table.versions('m')).toEqual(['2']);
    expect(table.holders('m', '3')).toEqual([]);
  });
});

describe('ModelConfig', () => {
  it("gives Triton's fields: dims without the batch dimension, BYTES as TYPE_STRING, the device's instance kind", () => {
    expect(modelConfigOf(status('m', '1', 'READY'), 'gpu0')).toEqual({
      name: 'm', platform: 'onnxruntime_onnx', backend: 'onnxruntime', maxBatchSize: 8,
      input: [{ name: 'row', dataType: 'TYPE_STRING', dims: [] }, { name: 'x', dataType: 'TYPE_FP32', dims: ['4'] }],
      output: [{ name: 'y', dataType: 'TYPE_INT64', dims: [] }],
      instanceGroup: [{ name: 'm', count: 2, kind: 'KIND_GPU' }],
    });
  });

  it("gives a dataflow pipeline's steps as Triton's ensemble scheduling, on no backend; the OCR flow's glue steps are not an ensemble", () => {
    const steps: PipelineStep__Output[] = [
      { name: 'classify', model: 'iris', glue: '', inputs: { row: 'row' }, outputs: { probabilities: 'p', label: 'y' } },
      { name: 'group', model: 'species-group', glue: '', inputs: { probabilities: 'p' }, outputs: { group: 'g' } },
    ];
    const pipeline = { ...status('flow', '1', 'READY'), platform: 'pipeline', maxBatchSize: 0, pipelineSteps: steps };
    expect(modelConfigOf(pipeline, 'cpu')).toMatchObject({
      platform: 'pipeline', backend: '',
      ensembleScheduling: { step: [
        { modelName: 'iris', modelVersion: '-1', inputMap: { row: 'row' }, outputMap: { probabilities: 'p', label: 'y' } },
        { modelName: 'species-group', modelVersion: '-1', inputMap: { probabilities: 'p' }, outputMap: { group: 'g' } },
      ] },
    });
    const ocr = { ...pipeline, pipelineSteps: [{ name: 'detect', model: 'd', glue: '', inputs: {}, outputs: {} }, { name: 'crop', model: '', glue: 'ocr-crop', inputs: {}, outputs: {} }] };
    expect(modelConfigOf(ocr, 'cpu')).not.toHaveProperty('ensembleScheduling');
    expect(modelConfigOf(ocr, 'cpu').backend).toBe('');
  });

  it('answers NOT_FOUND for a model no worker serves', async () => {
    const handlers = repositoryHandlers({ table: new RoutingTable(60_000), access: openAccess });
    await expect(handlers.ModelConfig({ name: 'nothing', version: '' }, ctx)).rejects.toMatchObject({ code: Status.NOT_FOUND });
  });
});

describe('the "version" parameter of a load or unload', () => {
  it('names versions as a string separated by commas, or one int64', () => {
    expect(versionsParameter('m', { version: { parameterChoice: 'stringParam', stringParam: '1, 2' } })).toEqual(['1', '2']);
    expect(versionsParameter('m', { version: { parameterChoice: 'int64Param', int64Param: '3' } })).toEqual(['3']);
    expect(versionsParameter('m', {})).toEqual([]);
  });

  it('refuses what is not a version number with INVALID_ARGUMENT', () => {
    expect(refusal(() => versionsParameter('m', { version: { parameterChoice: 'stringParam', stringParam: '../1' } })).code).toBe(Status.INVALID_ARGUMENT);
  });

  it('refuses a config or files sent with the load, naming the parameter', () => {
    const refused = refusal(() => versionsParameter('m', { config: { parameterChoice: 'stringParam', stringParam: '{}' } }));
    expect(refused).toEqual({ code: Status.INVALID_ARGUMENT, message: expect.stringContaining("parameter 'config' is not supported") });
  });
});

describe('load and unload', () => {
  it('answer UNAVAILABLE from a router that does not carry control to the workers', async () => {
    const handlers = repositoryHandlers({ table: new RoutingTable(60_000), access: openAccess });
    await expect(handlers.RepositoryModelLoad({ repositoryName: '', modelName: 'm', parameters: {} }, ctx)).rejects.toMatchObject({ code: Status.UNAVAILABLE });
  });

  it('refuse an empty model name with INVALID_ARGUMENT', async () => {
    const handlers = repositoryHandlers({ table: new RoutingTable(60_000), access: openAccess });
    await expect(handlers.RepositoryModelUnload({ repositoryName: '', modelName: '', parameters: {} }, ctx)).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
  });
});
