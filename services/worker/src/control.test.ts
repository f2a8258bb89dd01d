/**
 * A worker's side of repository control on a real nats-server: the replies a router gets to
 * ControlRequests, and the states its heartbeat announces.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAddModel, startNatsServer, writeModelRepository, type NatsServer } from '@infermesh/testing';
import { connectBus, type Bus } from '@infermesh/bus';
import { controlCodecs, type ControlRequest, type ControlResponse__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { ModelRegistry } from './model-registry.js';
import { serveControl } from './control.js';
import { heartbeatOf } from './heartbeat.js';

const logger = createLogger('test', { level: 'silent' });
const addConfig = { max_batch_size: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [4] }] };

let nats: NatsServer;
let workerBus: Bus;
let routerBus: Bus;
let repository: string;
let registry: ModelRegistry;

async function ask(request: ControlRequest): Promise<ControlResponse__Output> {
  const reply = await routerBus.nc.request(routerBus.subjects.control('w1'), controlCodecs.request().encode(request), { timeout: 30_000 });
  return controlCodecs.response().decode(reply.data);
}

beforeAll(async () => {
  nats = await startNatsServer();
  workerBus = await connectBus({ url: nats.url, name: 'worker', prefix: 'infermesh', logger });
  routerBus = await connectBus({ url: nats.url, name: 'router', prefix: 'infermesh', logger });
  repository = await mkdtemp(join(tmpdir(), 'infermesh-control-'));
  await writeModelRepository(repository, [{ name: 'add', version: 1, onnx: buildAddModel({ addend: 1 }), config: addConfig }]);
  registry = new ModelRegistry({ repository, models: [], logger, intraOpThreads: 1 });
  await registry.loadAll();
  serveControl({ bus: workerBus, registry, workerId: 'w1', logger });
  await workerBus.nc.flush();
});

afterAll(async () => {
  await registry?.release();
  await workerBus?.drain();
  await routerBus?.drain();
  await nats?.stop();
  await rm(repository, { recursive: true, force: true });
});

describe('control requests', () => {
  it('answers OK with the versions ready once a new version is loaded', async () => {
    await mkdir(join(repository, 'add', '2'));
    await writeFile(join(repository, 'add', '2', 'model.onnx'), buildAddModel({ addend: 2 }));
    expect(await ask({ action: 'LOAD', model: 'add' })).toEqual({ status: 'OK', message: '', workerId: 'w1', readyVersions: ['1', '2'] });
  });

  it('answers FAILED with the reason when a version cannot load, and the versions still ready', async () => {
    await mkdir(join(repository, 'add', '3'));
    await writeFile(join(repository, 'add', '3', 'model.onnx'), 'not a model');
    const reply = await ask({ action: 'LOAD', model: 'add', versions: ['3'] });
    expect(reply).toMatchObject({ status: 'FAILED', workerId: 'w1', readyVersions: ['1', '2'] });
    expect(reply.message).toContain('version 3');
  });

  it('announces a version that failed as UNAVAILABLE with its reason, and the others READY with their tensors', () => {
    const models = heartbeatOf({ registry, state: { workerId: 'w1', draining: false, drain: new AbortController() }, address: 'a:1', device: 'cpu' }).models!;
    expect(models.map((m) => [m.version, m.state, m.ready])).toEqual([['1', 'READY', true], ['2', 'READY', true], ['3', 'UNAVAILABLE', false]]);
    expect(models[2].reason).not.toBe('');
    expect(models[0].inputs).toHaveLength(1);
  });

  it('answers NOT_FOUND for a model its repository does not have', async () => {
    expect((await ask({ action: 'LOAD', model: 'other' })).status).toBe('NOT_FOUND');
  });

  it('refuses a model name that is a path, and versions that are not numbers', async () => {
    expect(await ask({ action: 'LOAD', model: '../add' })).toMatchObject({ status: 'FAILED', message: expect.stringContaining('is not a model') });
    expect(await ask({ action: 'LOAD', model: 'add', versions: ['1/..'] })).toMatchObject({ status: 'FAILED', message: expect.stringContaining('version numbers') });
  });

  it('answers OK once unloaded versions are freed', async () => {
    expect(await ask({ action: 'UNLOAD', model: 'add', versions: ['1'] })).toEqual({ status: 'OK', message: '', workerId: 'w1', readyVersions: ['2'] });
    expect(() => registry.resolve('add', '1')).toThrow(/unloaded/);
  });
});
