/**
 * infermesh optimize against a running mesh (each service its own process) that serves a copy of
 * the model repository: the new version appears in the repository, the workers pick it up while
 * serving, and the original and optimized versions are evaluated side by side through the router.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';

let mesh: Mesh;
let dir: string;
let repository: string;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), ...args], { timeout: 240_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'infermesh-optimize-'));
  repository = join(dir, 'models');
  for (const model of ['iris', 'text-direction']) await cp(join(ROOT, 'models', model), join(repository, model), { recursive: true });
  mesh = await startMesh({ workerEnv: { MODEL_REPOSITORY: repository, WORKER_REPOSITORY_POLL_MS: '300' } });
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('infermesh optimize --evaluate', () => {
  it('writes text-direction version 2, which the mesh then serves, and prints both versions through the mesh side by side', async () => {
    const run = await cli(['optimize', 'text-direction', '--repository', repository, '--runs', '5', '--evaluate', '--address', mesh.routerAddress, '--wait', '120']);
    expect(run.stderr).not.toMatch(/infermesh:/);
    expect(run.code).toBe(0);
    await stat(join(repository, 'text-direction/2/model.onnx'));
    expect(run.stdout).toMatch(/text-direction: version 1 → 2: graph optimization 'basic'; int8 weights/);
    expect(run.stdout).toMatch(/through the mesh at/);
    expect(run.stdout).toMatch(/text-direction v1\s+text-direction v2/);
    const accuracy = /^accuracy\s+(\d\.\d{4}) \((\d+)\/200\)\s+(\d\.\d{4}) \((\d+)\/200\)$/m.exec(run.stdout);
    expect(accuracy).not.toBeNull();
    // int8 weights keep the classifier's answers: at most a couple of the 200 lines change.
    expect(Math.abs(Number(accuracy![2]) - Number(accuracy![4]))).toBeLessThanOrEqual(2);
    // Written where infermesh rollout's gate reads them.
    for (const version of ['1', '2']) expect(existsSync(join(repository, 'text-direction', version, 'evaluation.json')), `evaluation.json of version ${version}`).toBe(true);
    // The decision `infermesh rollout` would take, from text-direction's gate in config.yaml.
    expect(run.stdout).toMatch(/the gate of text-direction \(config\.yaml\) for version 2: (it may serve traffic|refused)/);
    expect(run.stdout).toMatch(/^accuracy\s+\d\.\d{4}\s+\d\.\d{4}\s+≥ \d\.\d{4}\s+(passed|FAILED)$/m);
    console.log(run.stdout);
  }, 240_000);

  it('waits for the workers to serve the new version, and says so when they never do', async () => {
    // A repository the mesh does not read: its new version is never served.
    const unserved = join(dir, 'unserved');
    await cp(join(ROOT, 'models', 'iris'), join(unserved, 'iris'), { recursive: true });
    const run = await cli(['optimize', 'iris', '--repository', unserved, '--runs', '2', '--evaluate', '--address', mesh.routerAddress, '--wait', '1']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/did not serve version 2 of 'iris' within 1 s/);
  }, 120_000);
});
