/** infermesh optimize on temporary copies of the shipped models: what it writes, what it leaves alone. */
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL_REPOSITORY_DIR } from '@infermesh/models';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, onnx } from '../optimize/onnx-model.js';
import { formatOptimizeResult, optimize, optimizeModel, OPTIMIZE_FILE, type OptimizeCommandOptions, type OptimizeResult } from './optimize.js';

/** The command line's defaults for `infermesh optimize iris`. */
const COMMAND: OptimizeCommandOptions = { model: 'iris', graph: false, level: 'basic', int8: false, runs: 100, threads: 1, evaluate: false, address: '127.0.0.1:8001', wait: 60, json: false };

const FAST = { runs: 3, warmup: 1 } as const;
let repository: string;

async function copyModel(name: string): Promise<void> {
  await cp(join(MODEL_REPOSITORY_DIR, name), join(repository, name), { recursive: true });
}

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

beforeAll(async () => {
  repository = await mkdtemp(join(tmpdir(), 'optimize-test-'));
  await copyModel('text-direction');
  await copyModel('iris');
});
afterAll(async () => {
  await rm(repository, { recursive: true, force: true });
});

describe('infermesh optimize text-direction', () => {
  let result: OptimizeResult;
  let originalHash: string;
  beforeAll(async () => {
    originalHash = await sha256(join(repository, 'text-direction', '1', 'model.onnx'));
    result = await optimizeModel({ repository, model: 'text-direction', graph: true, int8: true, ...FAST });
  });

  it('writes the next version: model.onnx, the profile of the same inputs, and what was done', async () => {
    expect(result.to).toBe('2');
    const dir = join(repository, 'text-direction', '2');
    expect((await readdir(dir)).sort()).toEqual(['model.onnx', OPTIMIZE_FILE, 'profile.json'].sort());
    expect(await readFile(join(dir, 'profile.json'))).toEqual(await readFile(join(repository, 'text-direction', '1', 'profile.json')));
    expect(JSON.parse(await readFile(join(dir, OPTIMIZE_FILE), 'utf8'))).toMatchObject({ from: '1', to: '2', graph: { level: 'basic' } });
  });

  it('leaves the original version untouched and no staging folder behind', async () => {
    expect(await sha256(join(repository, 'text-direction', '1', 'model.onnx'))).toBe(originalHash);
    expect((await readdir(join(repository, 'text-direction'))).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  it('stores the Conv weights as INT8 and keeps the model inputs, outputs and opset', async () => {
    const model = decodeModel(await readFile(result.path));
    const original = decodeModel(await readFile(join(repository, 'text-direction', '1', 'model.onnx')));
    expect(result.int8?.quantized.length).toBeGreaterThan(20);
    expect(model.graph!.initializer!.filter((t) => t.dataType === onnx.TensorProto.DataType.INT8).length).toBe(result.int8?.quantized.length);
    expect(model.graph!.input!.map((i) => i.name)).toEqual(original.graph!.input!.map((i) => i.name));
    expect(model.graph!.output!.map((o) => o.name)).toEqual(original.graph!.output!.map((o) => o.name));
    expect(Number(model.opsetImport.find((o) => !o.domain)?.version)).toBe(9);
  });

  it('loads in onnxruntime-node', async () => {
    const session = await ort.InferenceSession.create(result.path);
    expect(session.inputNames).toEqual(['x']);
    await session.release();
  });

  it('reports a smaller file that classifies the evaluation set like the original', () => {
    const c = result.comparison;
    expect(c.optimized.bytes).toBeLessThan(c.original.bytes * 0.5);
    expect(c.samples).toMatchObject({ items: 200, labelled: 200 });
    expect(c.agreement.rate).toBeGreaterThanOrEqual(0.98);
    expect(Math.abs((c.optimized.accuracy ?? 0) - (c.original.accuracy ?? 0))).toBeLessThanOrEqual(0.02);
    expect(c.original.latency.map((l) => l.batch)).toEqual([1, 8]);
    expect(c.optimized.latency.map((l) => l.batch)).toEqual([1, 8]);
  });

  it('prints both versions side by side', () => {
    const lines = formatOptimizeResult(result);
    expect(lines.find((l) => l.startsWith('size'))).toMatch(/578,966 B\s+[\d,]+ B\s+-\d+\.\d %/);
    expect(lines.some((l) => /^accuracy \(200 labelled\)/.test(l))).toBe(true);
    expect(lines.some((l) => /^p99 batch 8/.test(l))).toBe(true);
    expect(lines.some((l) => /^top class agrees\s+\d+\/200/.test(l))).toBe(true);
  });
});

describe('infermesh optimize refuses', () => {
  it('to overwrite an existing version, leaving it as it was', async () => {
    const dir = join(repository, 'iris', '7');
    await mkdir(dir);
    await writeFile(join(dir, 'model.onnx'), 'not to be touched');
    try {
      await expect(optimizeModel({ repository, model: 'iris', from: '1', to: '7', graph: true, int8: true, ...FAST })).rejects.toThrow(/already exists: a version is never overwritten/);
      expect(await readFile(join(dir, 'model.onnx'), 'utf8')).toBe('not to be touched');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('a version to start from that does not exist', async () => {
    await expect(optimizeModel({ repository, model: 'iris', from: '9', graph: true, int8: false, ...FAST })).rejects.toThrow(/has no version 9 \(versions: 1/);
  });

  it('an unknown graph level, before any work', async () => {
    await expect(optimize({ ...COMMAND, repository, level: 'max' }, () => undefined)).rejects.toThrow(/--level must be one of basic, extended, all/);
  });
});

describe('infermesh optimize iris', () => {
  it('compares accuracy on the held-out rows and prints JSON with --json', async () => {
    const printed: string[] = [];
    expect(await optimize({ ...COMMAND, repository, graph: true, runs: 3, json: true }, (line) => printed.push(line))).toBe(0);
    const result = JSON.parse(printed.join('\n')) as OptimizeResult;
    expect(result).toMatchObject({ model: 'iris', from: '1', graph: { level: 'basic' }, int8: null });
    expect(result.comparison.samples).toMatchObject({ items: 30, labelled: 30 });
    expect(result.comparison.optimized.accuracy).toBe(result.comparison.original.accuracy);
    expect(result.comparison.agreement.rate).toBe(1);
  });
});
