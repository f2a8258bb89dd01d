/** scanRepository over temporary model repositories laid out Triton-style. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildAddModel, writeModelRepository } from '@infermesh/testing';
import { workerConfig } from './config.js';
import { ModelRepositoryError, scanRepository } from './repository.js';

const config = {
  max_batch_size: 4,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [4] }],
};
const onnx = buildAddModel();

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'infermesh-repository-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const names = (models: { config: { name: string } }[]) => models.map((m) => m.config.name).sort();

describe('scanRepository', () => {
  it('finds each model with its parsed config and folder', async () => {
    await writeModelRepository(root, [{ name: 'add', version: 1, onnx, config }]);
    const { models, errors } = await scanRepository(root);
    expect(errors).toEqual([]);
    expect(models).toHaveLength(1);
    expect(models[0].path).toBe(join(root, 'add'));
    expect(models[0].config).toMatchObject({ name: 'add', max_batch_size: 4, inputs: config.inputs, outputs: config.outputs });
  });

  it('lists versions in numeric order', async () => {
    await writeModelRepository(root, ['10', '2', '1', '9'].map((version) => ({ name: 'add', version, onnx, config })));
    const { models } = await scanRepository(root);
    expect(models[0].versions).toEqual(['1', '2', '9', '10']);
  });

  it('ignores version folders without a model.onnx and folders whose name is not a number', async () => {
    await writeModelRepository(root, [{ name: 'add', version: 3, onnx, config }]);
    await mkdir(join(root, 'add', '4'));
    await mkdir(join(root, 'add', 'latest'));
    await writeFile(join(root, 'add', 'latest', 'model.onnx'), onnx);
    const { models } = await scanRepository(root);
    expect(models[0].versions).toEqual(['3']);
  });

  it('skips folders without a config.yaml, and files, silently', async () => {
    await writeModelRepository(root, [{ name: 'add', version: 1, onnx, config }]);
    await mkdir(join(root, 'notes'));
    await writeFile(join(root, 'README.md'), '# models\n');
    const { models, errors } = await scanRepository(root);
    expect(names(models)).toEqual(['add']);
    expect(errors).toEqual([]);
  });

  it('reports a config whose name differs from its folder, naming both, and keeps the other models', async () => {
    await writeModelRepository(root, [{ name: 'add', version: 1, onnx, config }, { name: 'other', version: 1, onnx, config }]);
    await writeFile(join(root, 'other', 'config.yaml'), JSON.stringify({ ...config, name: 'renamed' }));
    const { models, errors } = await scanRepository(root);
    expect(names(models)).toEqual(['add']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("names 'renamed'");
    expect(errors[0]).toContain("its folder is 'other'");
  });

  it('reports a model with no <version>/model.onnx', async () => {
    await mkdir(join(root, 'empty', '1'), { recursive: true });
    await writeFile(join(root, 'empty', 'config.yaml'), JSON.stringify({ ...config, name: 'empty' }));
    const { models, errors } = await scanRepository(root);
    expect(models).toEqual([]);
    expect(errors).toEqual([`${join(root, 'empty')} has no <version>/model.onnx`]);
  });

  it('reports an invalid config field by its path in the YAML', async () => {
    await writeModelRepository(root, [{ name: 'add', version: 1, onnx, config: { ...config, max_batch_size: -1 } }]);
    const { models, errors } = await scanRepository(root);
    expect(models).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(join(root, 'add', 'config.yaml'));
    expect(errors[0]).toContain('max_batch_size:');
  });

  it('reports a nested invalid field with its full path', async () => {
    await writeModelRepository(root, [{ name: 'add', version: 1, onnx, config: { ...config, outputs: [{ name: 'y', datatype: 'FLOAT', shape: [4] }] } }]);
    const { errors } = await scanRepository(root);
    expect(errors[0]).toContain('outputs.0.datatype:');
  });

  it('scans only the models named in WORKER_MODELS', async () => {
    await writeModelRepository(root, ['a', 'b', 'c'].map((name) => ({ name, version: 1, onnx, config })));
    const { WORKER_MODELS } = workerConfig({ WORKER_MODELS: 'a,c' });
    const { models } = await scanRepository(root, WORKER_MODELS);
    expect(names(models)).toEqual(['a', 'c']);
  });

  it('does not report errors for models outside the WORKER_MODELS selection', async () => {
    await writeModelRepository(root, [{ name: 'a', version: 1, onnx, config }, { name: 'b', version: 1, onnx, config: { ...config, max_batch_size: -1 } }]);
    const { errors } = await scanRepository(root, ['a']);
    expect(errors).toEqual([]);
  });

  it('scans every model when the selection is empty', async () => {
    await writeModelRepository(root, ['a', 'b'].map((name) => ({ name, version: 1, onnx, config })));
    const { models } = await scanRepository(root, []);
    expect(names(models)).toEqual(['a', 'b']);
  });

  it('throws a ModelRepositoryError when the repository cannot be read', async () => {
    const missing = join(root, 'missing');
    const error = await scanRepository(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelRepositoryError);
    expect((error as Error).message).toContain(missing);
  });
});

describe('a config that is not YAML', () => {
  it('is reported with the file it is in', async () => {
    await writeModelRepository(root, [{ name: 'add', version: 1, onnx, config }]);
    await writeFile(join(root, 'add', 'config.yaml'), 'name: add\ninputs: [\n  - nope');
    const { models, errors } = await scanRepository(root);
    expect(models).toEqual([]);
    expect(errors[0]).toMatch(new RegExp(`^${join(root, 'add', 'config.yaml').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not valid YAML: `));
  });
});
