/**
 * Canary and shadow traffic, every service its own process (NATS with the mesh's users and
 * permissions): a repository with two versions of a three-class model, where version 2
 * swaps two of the classes on purpose. `infermesh traffic` (the CLI, as the operator) puts
 * the policy; every router watches it. A canary of 90/10 splits 2,000 unversioned requests
 * within 5 % of its weights, also at a router started after the policy was set; a shadow of
 * version 2 gets a copy of each request, and the monitor reports how often it agreed (a
 * third of the rows: those of the class version 2 did not swap). The same two models served
 * without class labels ('scores') are compared by their output samples instead, and agree as often.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
/** The same model without class labels: shadows are compared by their output samples. */
const scoresConfig = { ...config, outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [3] }] };
/** Version 1: the class of the largest of the first three features. */
const V1 = [[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0]];
/** Version 2: the same, with classes 1 and 2 swapped: it agrees with version 1 on class 0 only. */
const V2 = [[5, 0, 0, 0], [0, 0, 5, 0], [0, 5, 0, 0]];

let mesh: Mesh;
let dir: string;
let client: InferenceClient;
/** Client requests version 2 answered, at any router: what the monitor must count as its requests. */
let answeredBy2 = 0;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const operator = mesh.nats.credentials('operator');
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), ...args, '--nats', mesh.nats.url], { timeout: 60_000, env: { ...process.env, ...operator } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** A row whose largest feature is `dominant` (0, 1 or 2). */
function row(dominant: number): Buffer {
  const values = new Float32Array([0.1, 0.1, 0.1, 0.1]);
  values[dominant] = 1;
  return Buffer.from(values.buffer);
}

async function infer(target: InferenceClient, id: string, dominant = 0): Promise<string> {
  const response = await target.call<{ model_version: string }>('ModelInfer', {
    model_name: 'iris', id, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [row(dominant)],
  });
  if (response.model_version === '2') answeredBy2 += 1;
  return response.model_version;
}

/** `count` unversioned requests, `concurrency` at a time; the versions that answered, counted. */
async function versionsOf(target: InferenceClient, count: number, concurrency = 8, prefix = 'r'): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      const version = await infer(target, `${prefix}-${i}`, i % 3);
      counts[version] = (counts[version] ?? 0) + 1;
    }
  }));
  return counts;
}

async function metric(line: string): Promise<number | undefined> {
  const text = await (await fetch(mesh.metricsUrl)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'infermesh-traffic-'));
  await writeModelRepository(join(dir, 'models'), [
    { name: 'iris', version: 1, onnx: buildLinearSoftmaxModel({ inputName: 'x', weights: V1, bias: [0, 0, 0] }), config },
    { name: 'iris', version: 2, onnx: buildLinearSoftmaxModel({ inputName: 'x', weights: V2, bias: [0, 0, 0] }), config },
    ...[V1, V2].map((weights, i) => ({ name: 'scores', version: i + 1, onnx: buildLinearSoftmaxModel({ inputName: 'x', weights, bias: [0, 0, 0] }), config: scoresConfig })),
  ]);
  mesh = await startMesh({ natsAuth: true, env: { MODEL_REPOSITORY: join(dir, 'models') } });
  client = inferenceClient(mesh.routerAddress);
  // Without a policy the newest version answers.
  expect(await infer(client, 'before')).toBe('2');
}, 120_000);

afterAll(async () => {
  client?.close();
  await mesh?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('canary and shadow traffic', () => {
  it('splits 2,000 unversioned requests 90/10 within 5 % of the weights; a request naming a version keeps it', async () => {
    const set = await cli(['traffic', 'iris', '--weights', '1=90,2=10', '--by', 'e2e@test', '--reason', 'canary of 2']);
    expect(set.stdout).toContain('iris: version 1 90.0 %, version 2 10.0 %');
    // Applied once the router logs it; from then every unversioned request follows the weights.
    await until('policy applied', async () => (mesh.service('router').output().includes('"set_by":"e2e@test"') ? true : undefined));
    const counts = await versionsOf(client, 2000);
    console.log(`canary 90/10 over 2,000 requests: ${JSON.stringify(counts)}`);
    expect(Math.abs((counts['2'] ?? 0) / 2000 - 0.1)).toBeLessThanOrEqual(0.05);
    expect(Math.abs((counts['1'] ?? 0) / 2000 - 0.9)).toBeLessThanOrEqual(0.05);
    const named = await client.call<{ model_version: string }>('ModelInfer', { model_name: 'iris', model_version: '2', id: 'named', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [row(0)] });
    expect(named.model_version).toBe('2');
    answeredBy2 += 1;
  });

  it('a router started after the policy was set applies it from its first request', async () => {
    const { address } = await mesh.startRouter('router-late');
    const late = inferenceClient(address);
    try {
      await until('the late router serving', async () => (await infer(late, 'late-probe')) ? true : undefined);
      const counts = await versionsOf(late, 200, 4, 'late');
      expect(Math.abs((counts['2'] ?? 0) / 200 - 0.1)).toBeLessThanOrEqual(0.05);
    } finally {
      late.close();
    }
  });

  it('a shadow that disagrees on purpose shows its agreement rate at the monitor, and its copies are not client requests', async () => {
    const set = await cli(['traffic', 'iris', '--weights', '1=100', '--shadow', '2', '--by', 'e2e@shadow']);
    expect(set.stdout).toContain('shadow versions: 2');
    await until('shadow policy applied', async () => (mesh.service('router').output().includes('"set_by":"e2e@shadow"') ? true : undefined));
    const clientRequestsOf2 = async () => (await metric('infermesh_requests_total{model="iris",version="2",code="OK"}')) ?? 0;
    // Every client request version 2 answered is counted before the shadow's copies start.
    await until('the requests version 2 answered counted', async () => ((await clientRequestsOf2()) === answeredBy2 ? true : undefined));
    const counts = await versionsOf(client, 300, 4, 'shadowed');
    expect(counts).toEqual({ '1': 300 });
    const labels = 'model="iris",version="2",of="1"';
    const requests = await until('300 shadow copies counted', async () => {
      const n = await metric(`infermesh_shadow_requests_total{${labels}}`);
      return n !== undefined && n >= 300 ? n : undefined;
    });
    const agreed = (await metric(`infermesh_shadow_agreed_total{${labels}}`)) ?? 0;
    const ratio = await metric(`infermesh_shadow_agreement_ratio{${labels}}`);
    console.log(`shadow version 2 of 1: ${requests} copies, ${agreed} agreed, agreement ratio ${ratio}`);
    // Rows cycle through the three classes; version 2 swaps two of them: it agrees on a third.
    expect(ratio).toBeCloseTo(1 / 3, 2);
    expect(await clientRequestsOf2()).toBe(answeredBy2);
    // The status page shows the shadow under the version it shadowed.
    const page = (await (await fetch(mesh.metricsUrl.replace('/metrics', '/status/data'))).json()) as { models: { version: string; shadows: { version: string; compared: number; agreed: number }[] }[] };
    const shadows = page.models.find((m) => m.version === '1')?.shadows ?? [];
    expect(shadows.map((sh) => [sh.version, sh.agreed / sh.compared])).toEqual([['2', ratio]]);
  });

  it('a shadow of a model without class labels is compared by its output sample: the same scores agree, swapped ones do not', async () => {
    const set = await cli(['traffic', 'scores', '--weights', '1=100', '--shadow', '2', '--by', 'e2e@scores']);
    expect(set.stdout).toContain('shadow versions: 2');
    await until('scores policy applied', async () => (mesh.service('router').output().includes('"set_by":"e2e@scores"') ? true : undefined));
    for (let i = 0; i < 30; i++) {
      await client.call('ModelInfer', { model_name: 'scores', id: `scores-${i}`, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [row(i % 3)] });
    }
    const labels = 'model="scores",version="2",of="1"';
    await until('30 shadow copies of scores counted', async () => ((await metric(`infermesh_shadow_requests_total{${labels}}`)) ?? 0) >= 30 ? true : undefined);
    // Rows whose largest feature is the first get the same scores from both versions: a third.
    expect(await metric(`infermesh_shadow_agreement_ratio{${labels}}`)).toBeCloseTo(1 / 3, 2);
  });
});
