/**
 * Automatic rollback across the mesh, every service its own process (NATS with the mesh's
 * users and permissions): a repository with two versions of a model, where version 2 fails
 * every request on purpose (its graph takes 5 features, the config and clients send 4, so
 * onnxruntime refuses each run while the version loads and announces itself ready).
 * `infermesh rollout --canary 50%` (the CLI, as the operator) splits unversioned requests
 * between the versions; the monitor's error_rate rule with rollback: true fires for version
 * 2 and rewrites the policy to 100 % version 1, set by the rule; from the client's side, no
 * request is answered by version 2 any more, and none fails.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildLinearSoftmaxModel, writeModelRepository } from '@infermesh/testing';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';
import { inferenceClient, type InferenceClient } from './helpers/client.js';
import { until } from './helpers/until.js';

const CLASSES = ['setosa', 'versicolor', 'virginica'];
const config = {
  max_batch_size: 64,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [3], labels: CLASSES }],
  dynamic_batching: { preferred_batch_size: [16], max_queue_delay_microseconds: 0 },
};
const RULE = 'iris-canary-errors';

let mesh: Mesh;
let dir: string;
let client: InferenceClient;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const operator = mesh.nats.credentials('operator');
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), ...args, '--nats', mesh.nats.url, '--repository', join(dir, 'models')], { timeout: 60_000, env: { ...process.env, ...operator } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** An unversioned request: the version that answered, or 'failed'. */
async function infer(id: string): Promise<string> {
  try {
    const response = await client.call<{ model_version: string }>('ModelInfer', {
      model_name: 'iris', id, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.from(new Float32Array([1, 0.1, 0.1, 0.1]).buffer)],
    });
    return response.model_version;
  } catch {
    return 'failed';
  }
}

async function outcomes(count: number, prefix: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const outcome = await infer(`${prefix}-${i}`);
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  }
  return counts;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'infermesh-rollout-'));
  await writeModelRepository(join(dir, 'models'), [
    { name: 'iris', version: 1, onnx: buildLinearSoftmaxModel({ inputName: 'x', weights: [[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0]], bias: [0, 0, 0] }), config },
    // Five features in the graph, four in the config: loads, and fails every request.
    { name: 'iris', version: 2, onnx: buildLinearSoftmaxModel({ inputName: 'x', weights: [[5, 0, 0, 0, 0], [0, 5, 0, 0, 0], [0, 0, 5, 0, 0]], bias: [0, 0, 0] }), config },
  ]);
  const rules = join(dir, 'rules.yaml');
  await writeFile(rules, stringify({ rules: [{ name: RULE, kind: 'error_rate', model: 'iris', threshold: 0.5, window: '1m', min_requests: 10, rollback: true, severity: 'critical' }] }));
  mesh = await startMesh({ natsAuth: true, env: { MODEL_REPOSITORY: join(dir, 'models'), MONITOR_ALERT_RULES_FILE: rules, MONITOR_ALERT_INTERVAL_MS: '200' } });
  client = inferenceClient(mesh.routerAddress);
  // Without a policy the newest version answers, and it fails.
  expect(await until('iris served', async () => ((await infer('probe')) === 'failed' ? true : undefined))).toBe(true);
}, 120_000);

afterAll(async () => {
  client?.close();
  await mesh?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('automatic rollback', () => {
  it('rolls a failing 50 % canary back to version 1 once its error_rate rule fires, seen from the client', async () => {
    // Version 1 serves everything first: version 2's failures above came before any policy.
    const start = await cli(['rollout', 'iris', '--version', '1', '--promote', '--by', 'e2e@test']);
    expect(start.stdout).toContain('iris: version 1 100.0 %');
    const canary = await cli(['rollout', 'iris', '--version', '2', '--canary', '50%', '--by', 'e2e@canary']);
    expect(canary.code).toBe(0);
    expect(canary.stdout).toContain('iris: version 1 50.0 %, version 2 50.0 %');
    await until('canary applied', async () => (mesh.service('router').output().includes('"set_by":"e2e@canary"') ? true : undefined));

    // Requests until the monitor's rule rolls the canary back and the router applies it.
    let during: Record<string, number> = {};
    await until('the rollback applied at the router', async () => {
      const counts = await outcomes(20, `canary-${Date.now()}`);
      for (const [k, v] of Object.entries(counts)) during[k] = (during[k] ?? 0) + v;
      return mesh.service('router').output().includes(`"set_by":"rule:${RULE}"`) ? true : undefined;
    });
    console.log(`during the canary: ${JSON.stringify(during)}`);
    expect(during.failed).toBeGreaterThan(0);

    const after = await outcomes(200, 'after');
    console.log(`after the rollback: ${JSON.stringify(after)}`);
    expect(after).toEqual({ 1: 200 });

    const status = await cli(['rollout', 'iris', '--monitor', mesh.monitorAddress]);
    console.log(status.stdout);
    expect(status.stdout).toContain('iris: version 1 100.0 %');
    expect(status.stdout).toContain(`set by rule:${RULE}`);
    expect(status.stdout).toContain('rolled back from version 2 to 1: error rate of iris 2');
    expect(status.stdout).toMatch(/version 2: \d+ requests, \d+ errors \(100\.0 %\)/);
    expect(status.stdout).toContain(`firing: ${RULE}: error rate of iris 2`);
    expect(mesh.service('monitor').output()).toContain('automatic rollback');
  });
});
