/** infermesh rollout against a real nats-server with the mesh's users, on a temp repository with two evaluated versions. */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { natsConnectOptions } from '@infermesh/bus';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { parseCanaryPercent, servingVersionOf } from '../rollout/plan.js';
import { applyTraffic, type TrafficTarget } from './traffic.js';
import { GATE_REFUSED, runRollout, type RolloutOptions } from './rollout.js';

const evaluation = (version: string, accuracy: number, p99Ms: number) => ({
  model: 'iris', version, date: '2026-11-27T00:00:00.000Z', dataset: { path: 'x', kind: 'rows', items: 30 }, accuracy, correct: Math.round(accuracy * 30), items: 30, errors: 0,
  output: 'probabilities', confusion: { classes: ['a'], counts: [[30]] }, latency: { concurrency: 4, requests: 200, errors: 0, p50Ms: p99Ms / 2, p99Ms, meanMs: p99Ms / 2, throughput: 500 },
  modelBytes: 1000, workerMemory: { measured: false, reason: 'n/a' }, mesh: { router: 'r', server: 's', serverVersion: '1', cli: '1' },
});

describe('rollout steps', () => {
  it('reads --canary as a whole percentage below 100', () => {
    expect([parseCanaryPercent('10%'), parseCanaryPercent('50')]).toEqual([10, 50]);
    for (const bad of ['0%', '100%', '10.5%', 'ten']) expect(() => parseCanaryPercent(bad)).toThrow(/whole percentage from 1 % to 99 %/);
  });

  it('finds the serving version in the policy, a promoted one at weight 0 included, else the newest other version', () => {
    const policy = (weights: [string, number][]) => ({ model: 'iris', weights: weights.map(([version, weight]) => ({ version, weight })), shadowVersions: [], setBy: '', setAtMs: '0', reason: '' });
    expect(servingVersionOf(policy([['1', 90], ['2', 10]]), '2', ['1', '2'])).toBe('1');
    expect(servingVersionOf(policy([['2', 100], ['1', 0]]), '2', ['1', '2', '3'])).toBe('1');
    expect(servingVersionOf(undefined, '3', ['1', '2', '3'])).toBe('2');
  });
});

describe('infermesh rollout against NATS, as the operator', () => {
  let nats: NatsServer;
  let target: TrafficTarget;
  let repository: string;
  let model = 'iris';
  let lines: string[];
  let warnings: string[];
  const run = (action: RolloutOptions['action'], extra: Partial<RolloutOptions> = {}) =>
    runRollout({ target, repository, model, action, by: 'bob@host', print: (line) => lines.push(line), warn: (l) => warnings.push(l), ...extra });

  beforeAll(async () => {
    nats = await startNatsServer({ auth: true });
    target = { natsUrl: nats.url, connectOptions: natsConnectOptions(nats.credentials('operator')) };
    repository = await mkdtemp(join(tmpdir(), 'rollout-'));
  }, 30_000);
  afterAll(async () => {
    await nats?.stop();
    await rm(repository, { recursive: true, force: true });
  });

  let n = 0;
  /** Each test its own model, so policies do not meet. */
  async function newModel(v2: { accuracy: number; p99Ms: number } | undefined): Promise<void> {
    model = `m${++n}`;
    for (const [version, report] of [['1', evaluation('1', 0.9333, 4)], ['2', v2 && evaluation('2', v2.accuracy, v2.p99Ms)]] as const) {
      await mkdir(join(repository, model, version), { recursive: true });
      if (report) await writeFile(join(repository, model, version, 'evaluation.json'), JSON.stringify({ ...report, model }));
    }
    await writeFile(join(repository, model, 'config.yaml'), `name: ${model}\ngate: {accuracy_drop: 0.01, p99_ms: 50}\n`);
  }
  beforeEach(() => {
    lines = [];
    warnings = [];
  });

  it('sets a 90/10 canary once the gate passes, with who asked and the gate in the reason', async () => {
    await newModel({ accuracy: 0.93, p99Ms: 6 });
    expect(await run({ kind: 'canary', version: '2', percent: 10 })).toBe(0);
    const policy = await applyTraffic(target, model, undefined, '');
    expect(policy?.weights).toEqual([{ version: '1', weight: 90 }, { version: '2', weight: 10 }]);
    expect(policy?.setBy).toBe('bob@host');
    expect(policy?.reason).toBe('canary 10 % to version 2 beside 1; gate passed: accuracy 0.9300 ≥ 0.9233, p99 ms 6.00 ≤ 50.00');
  });

  it('refuses a canary whose evaluation fails the gate, prints the figures and leaves the policy alone', async () => {
    await newModel({ accuracy: 0.8, p99Ms: 80 });
    expect(await run({ kind: 'canary', version: '2', percent: 10 })).toBe(GATE_REFUSED);
    expect(warnings.join('\n')).toContain('accuracy        0.8000      0.9333  ≥ 0.9233  FAILED');
    expect(warnings.join('\n')).toContain('p99 ms           80.00');
    expect(await applyTraffic(target, model, undefined, '')).toBeUndefined();
  });

  it('goes past a failed gate with --force, and says so on stderr and in the policy', async () => {
    await newModel({ accuracy: 0.8, p99Ms: 6 });
    expect(await run({ kind: 'canary', version: '2', percent: 10 }, { force: true })).toBe(0);
    expect(warnings[0]).toBe('forced past the gate: accuracy 0.8000 < 0.9233 (by bob@host)');
    expect((await applyTraffic(target, model, undefined, ''))?.reason).toContain('forced past the gate: accuracy 0.8000 < 0.9233');
  });

  it('refuses a candidate without evaluation.json, naming the command to run', async () => {
    await newModel(undefined);
    await expect(run({ kind: 'canary', version: '2', percent: 10 })).rejects.toThrow('run `infermesh evaluate');
  });

  it('promotes with 100 % to the candidate, then rolls back to the version it replaced', async () => {
    await newModel({ accuracy: 0.94, p99Ms: 6 });
    await run({ kind: 'canary', version: '2', percent: 10 });
    expect(await run({ kind: 'promote', version: '2' })).toBe(0);
    expect((await applyTraffic(target, model, undefined, ''))?.weights).toEqual([{ version: '2', weight: 100 }, { version: '1', weight: 0 }]);
    expect(await run({ kind: 'rollback', version: '2' })).toBe(0);
    const policy = await applyTraffic(target, model, undefined, '');
    expect(policy?.weights).toEqual([{ version: '1', weight: 100 }]);
    expect(policy?.reason).toBe('rolled back from version 2 to 1');
  });

  it('rolls a canary back to the serving version without naming the candidate', async () => {
    await newModel({ accuracy: 0.94, p99Ms: 6 });
    await run({ kind: 'canary', version: '2', percent: 50 });
    expect(await run({ kind: 'rollback' })).toBe(0);
    expect((await applyTraffic(target, model, undefined, ''))?.weights).toEqual([{ version: '1', weight: 100 }]);
  });

  it('adds a shadow without the gate', async () => {
    await newModel({ accuracy: 0.1, p99Ms: 600 });
    expect(await run({ kind: 'shadow', version: '2' })).toBe(0);
    expect((await applyTraffic(target, model, undefined, ''))?.shadowVersions).toEqual(['2']);
  });

  it('shows the policy, the evaluations side by side and the gate', async () => {
    await newModel({ accuracy: 0.94, p99Ms: 6 });
    await run({ kind: 'canary', version: '2', percent: 10 });
    lines = [];
    expect(await run({ kind: 'status' })).toBe(0);
    expect(lines[0]).toBe(`${model}: version 1 90.0 %, version 2 10.0 %`);
    expect(lines).toContain(`accuracy       0.9333 (28/30)  0.9400 (28/30)`);
    expect(lines).toContain('gate for version 2:');
    expect(lines.at(-1)).toMatch(/^p99 ms +6\.00 +≤ 50\.00  passed$/);
  });

  it('shows the status as one JSON document with --json: policy, evaluations, gate', async () => {
    await newModel({ accuracy: 0.94, p99Ms: 6 });
    await run({ kind: 'canary', version: '2', percent: 10 });
    lines = [];
    expect(await run({ kind: 'status' }, { json: true })).toBe(0);
    const status = JSON.parse(lines.join('\n')) as { model: string; policy: { weights: unknown }; evaluations: { version: string }[]; candidate: string; serving: string; gate: { passed: boolean; checks: { rule: string }[] } };
    expect(status).toMatchObject({ model, candidate: '2', serving: '1', policy: { weights: [{ version: '1', weight: 90 }, { version: '2', weight: 10 }] } });
    expect(status.evaluations.map((e) => e.version)).toEqual(['1', '2']);
    expect(status.gate.passed).toBe(true);
    expect(status.gate.checks.map((c) => c.rule)).toEqual(['accuracy', 'p99 ms']);
  });

  it('prints the changed policy, or the refusal with the gate, as JSON with --json', async () => {
    await newModel({ accuracy: 0.94, p99Ms: 6 });
    expect(await run({ kind: 'canary', version: '2', percent: 10 }, { json: true })).toBe(0);
    expect(JSON.parse(lines.join('\n'))).toMatchObject({ model, policy: { weights: [{ version: '1', weight: 90 }, { version: '2', weight: 10 }] } });
    await newModel({ accuracy: 0.8, p99Ms: 6 });
    lines = [];
    expect(await run({ kind: 'promote', version: '2' }, { json: true })).toBe(GATE_REFUSED);
    expect(JSON.parse(lines.join('\n'))).toMatchObject({ model, version: '2', serving: '1', refused: true, gate: { passed: false } });
  });
});
