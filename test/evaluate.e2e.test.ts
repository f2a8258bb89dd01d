/**
 * infermesh evaluate against a running mesh (each service its own process): the shipped
 * evaluation sets go through the router's public API, the figures are printed and written beside
 * the version in a copy of the model repository (never the real models/).
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';

let mesh: Mesh;
let dir: string;
let repository: string;

/** The CLI reads worker memory from heartbeats on the mesh's NATS (NATS_URL), as a user's shell would point it. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), ...args, '--address', mesh.routerAddress], { timeout: 120_000, env: { ...process.env, NATS_URL: mesh.nats.url } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

beforeAll(async () => {
  mesh = await startMesh();
  dir = await mkdtemp(join(tmpdir(), 'infermesh-evaluate-'));
  repository = join(dir, 'models');
  // The configs, versions and evaluation sets the mesh serves, without the build's dist/ and src/.
  for (const model of ['iris', 'text-direction']) await cp(join(ROOT, 'models', model), join(repository, model), { recursive: true });
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('infermesh evaluate', () => {
  it('reproduces iris\'s held-out accuracy through the mesh (28 of 30) with its confusion matrix, and writes evaluation.json beside the version', async () => {
    const run = await cli(['evaluate', 'iris', '--repository', repository, '--requests', '60', '--concurrency', '2']);
    expect(run.stderr).not.toMatch(/infermesh:/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/iris version 1 on 30 labelled rows/);
    expect(run.stdout).toMatch(/accuracy\s+0\.9333 \(28\/30\)/);
    expect(run.stdout).toMatch(/^setosa\s+10\s+0\s+0$/m);
    expect(run.stdout).toMatch(/model file\s+560 B/);
    const written = JSON.parse(await readFile(join(repository, 'iris/1/evaluation.json'), 'utf8'));
    expect(written).toMatchObject({ model: 'iris', version: '1', accuracy: 28 / 30, correct: 28, items: 30, errors: 0, modelBytes: 560, dataset: { kind: 'rows', items: 30 } });
    expect(written.confusion.counts.flat().reduce((a: number, b: number) => a + b, 0)).toBe(30);
    expect(written.latency).toMatchObject({ concurrency: 2, requests: 60, errors: 0 });
    expect(written.latency.p99Ms).toBeGreaterThanOrEqual(written.latency.p50Ms);
    expect(written.mesh.serverVersion).toBeTruthy();
    // The worker's whole process, read from its heartbeats on the mesh's NATS: tens of MiB at least (Node and onnxruntime).
    expect(run.stdout).toMatch(/^worker memory: \d+\.\d MiB \(\S+\) — resident memory of the whole worker process \(every model it holds\), not of the model alone$/m);
    expect(written.workerMemory).toMatchObject({ measured: true, workers: [{ rssBytes: expect.any(Number) }] });
    expect(written.workerMemory.maxBytes).toBeGreaterThan(10 * 1024 * 1024);
    // The real repository is left alone.
    await expect(stat(join(ROOT, 'models/iris/1/evaluation.json'))).rejects.toThrow();
  });

  it('classifies text-direction\'s 200 generated lines and prints its accuracy', async () => {
    const run = await cli(['evaluate', 'text-direction', '--repository', repository, '--requests', '40', '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ model: 'text-direction', version: '1', items: 200, errors: 0, dataset: { kind: 'images', items: 200 } });
    expect(report.confusion.classes).toEqual(['upright', 'rotated_180']);
    // The figure itself is the model's, measured here; a working classifier is far above chance.
    expect(report.accuracy).toBeGreaterThan(0.8);
    console.log(`text-direction accuracy through the mesh: ${report.accuracy.toFixed(4)} (${report.correct}/${report.items})`);
  });

  it('names an unknown model', async () => {
    const run = await cli(['evaluate', 'no-such-model', '--repository', repository]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/unknown model 'no-such-model'/);
  });

  it('says when a model has no labelled set', async () => {
    await rm(join(repository, 'iris/evaluation'), { recursive: true, force: true });
    const run = await cli(['evaluate', 'iris', '--repository', repository]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/model 'iris' has no labelled evaluation set/);
  });

  it('refuses a label that is not one of the model\'s classes, naming the line', async () => {
    const data = join(dir, 'bad.jsonl');
    await writeFile(data, '{"sepal_length":5,"sepal_width":3,"petal_length":1.5,"petal_width":0.2,"label":"setosa"}\n{"sepal_length":5,"sepal_width":3,"petal_length":1.5,"petal_width":0.2,"label":"rose"}\n');
    const run = await cli(['evaluate', 'iris', '--repository', repository, '--data', data]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/bad\.jsonl line 2: label 'rose' is not one of the model's classes \(setosa, versicolor, virginica\)/);
  });
});
