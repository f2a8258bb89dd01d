/**
 * Models loaded and unloaded while a worker serves, on real onnxruntime and a temporary
 * repository: new version directories, version policies, failed loads that leave the serving
 * versions serving, unloads that drain, and what polling the repository picks up.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildAddModel, writeModelRepository } from '@infermesh/testing';
import { createLogger } from '@infermesh/log';
import type { Tensor } from '@infermesh/tensor';
import { ModelRegistry } from './model-registry.js';
import { selectVersions } from './model-config.js';

const logger = createLogger('test', { level: 'silent' });
const addConfig = {
  max_batch_size: 4,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [4] }],
};

let repository: string;
let registry: ModelRegistry;

const x = (): Tensor => ({ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array([0, 0, 0, 0]) });

/** What the version answers: its addend (each model adds its version's number to zeros). */
async function addend(version: string): Promise<number> {
  const result = await registry.resolve('add', version).infer([x()], []);
  return (result.outputs[0].data as Float32Array)[0];
}

async function writeVersion(version: number, onnx: Uint8Array): Promise<void> {
  await mkdir(join(repository, 'add', String(version)), { recursive: true });
  await writeFile(join(repository, 'add', String(version), 'model.onnx'), onnx);
}

const states = () => registry.list().filter((e) => e.name === 'add').map((e) => [e.version, e.state]);

beforeEach(async () => {
  repository = await mkdtemp(join(tmpdir(), 'infermesh-repository-control-'));
  await writeModelRepository(repository, [{ name: 'add', version: 1, onnx: buildAddModel({ addend: 1 }), config: addConfig }]);
  registry = new ModelRegistry({ repository, models: [], logger, intraOpThreads: 1 });
  await registry.loadAll();
});

afterEach(async () => {
  await registry.release();
  await rm(repository, { recursive: true, force: true });
});

describe('loading while serving', () => {
  it('loads a version directory added after the start, keeping the version serving', async () => {
    await writeVersion(2, buildAddModel({ addend: 2 }));
    const outcome = await registry.load('add');
    expect(outcome).toEqual({ status: 'OK', message: '', readyVersions: ['1', '2'] });
    expect(await addend('2')).toBe(2);
    expect(await addend('1')).toBe(1);
    expect(await addend('')).toBe(2);
  });

  it('leaves the serving version serving when a new version file is not a model, with the reason', async () => {
    await writeVersion(2, new TextEncoder().encode('not an onnx model'));
    const outcome = await registry.load('add');
    expect(outcome.status).toBe('FAILED');
    expect(outcome.message).toContain('version 2');
    expect(outcome.readyVersions).toEqual(['1']);
    const failed = registry.list().find((e) => e.version === '2')!;
    expect(failed.state).toBe('UNAVAILABLE');
    expect(failed.reason).not.toBe('');
    expect(await addend('')).toBe(1);
  });

  it('leaves the serving versions serving when the config becomes invalid, with the reason', async () => {
    await writeFile(join(repository, 'add', 'config.yaml'), 'name: add\nmax_batch_size: lots\n');
    const outcome = await registry.load('add');
    expect(outcome.status).toBe('FAILED');
    expect(outcome.message).toContain('max_batch_size');
    expect(states()).toEqual([['1', 'READY']]);
    expect(await addend('1')).toBe(1);
  });

  it('answers NOT_FOUND for a model its repository does not have', async () => {
    expect((await registry.load('absent')).status).toBe('NOT_FOUND');
  });

  it('reloads a version whose config changed, replacing it only once the new one is ready', async () => {
    const before = registry.resolve('add', '1');
    await writeFile(join(repository, 'add', 'config.yaml'), stringify({ name: 'add', ...addConfig, max_batch_size: 2 }));
    expect((await registry.load('add')).status).toBe('OK');
    const after = registry.resolve('add', '1');
    expect(after).not.toBe(before);
    expect(after.config.max_batch_size).toBe(2);
  });

  it('refuses a version policy that selects no version, the serving version serving', async () => {
    await writeFile(join(repository, 'add', 'config.yaml'), stringify({ name: 'add', ...addConfig, version_policy: { specific: { versions: [7] } } }));
    const outcome = await registry.load('add');
    expect(outcome.status).toBe('FAILED');
    expect(outcome.message).toContain('selects none of the versions');
    expect(await addend('1')).toBe(1);
  });

  it('serves what the version policy selects, and drains what it no longer selects', async () => {
    await writeVersion(2, buildAddModel({ addend: 2 }));
    await writeFile(join(repository, 'add', 'config.yaml'), stringify({ name: 'add', ...addConfig, version_policy: { latest: { num_versions: 1 } } }));
    const outcome = await registry.load('add');
    expect(outcome.readyVersions).toEqual(['2']);
    expect(states()).toEqual([['1', 'UNAVAILABLE'], ['2', 'READY']]);
  });
});

describe('unloading', () => {
  it('lets the requests in flight finish before it frees the version', async () => {
    const inFlight = Array.from({ length: 20 }, () => registry.resolve('add', '1').infer([x()], []));
    const unloaded = registry.unload('add', ['1']);
    const answers = await Promise.allSettled(inFlight);
    expect(answers.filter((a) => a.status === 'rejected')).toEqual([]);
    expect((await unloaded).readyVersions).toEqual([]);
    expect(states()).toEqual([['1', 'UNAVAILABLE']]);
    expect(() => registry.resolve('add', '1')).toThrow(/is unloaded/);
  });

  it('keeps answering requests routed to a version while it is announced UNLOADING', async () => {
    const slow = new ModelRegistry({ repository, models: [], logger, intraOpThreads: 1, unloadDelayMs: 300 });
    await slow.loadAll();
    try {
      const unloaded = slow.unload('add');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(slow.list().map((e) => e.state)).toEqual(['UNLOADING']);
      await expect(slow.resolve('add', '1').infer([x()], [])).resolves.toBeDefined();
      await unloaded;
    } finally {
      await slow.release();
    }
  });
});

describe('polling the repository', () => {
  it('loads a new version directory, and nothing when nothing changed', async () => {
    const served = registry.resolve('add', '1');
    await registry.poll();
    expect(registry.resolve('add', '1')).toBe(served);
    await writeVersion(2, buildAddModel({ addend: 2 }));
    await registry.poll();
    expect(await addend('2')).toBe(2);
    expect(registry.resolve('add', '1')).toBe(served);
  });
});

describe('selectVersions (Triton version_policy)', () => {
  const available = ['1', '2', '3'];
  it('serves every version without a policy', () => expect(selectVersions(undefined, available)).toEqual(available));
  it('serves the latest N', () => expect(selectVersions({ latest: { num_versions: 2 } }, available)).toEqual(['2', '3']));
  it('serves the specific versions present', () => expect(selectVersions({ specific: { versions: [1, 3, 9] } }, available)).toEqual(['1', '3']));
});
