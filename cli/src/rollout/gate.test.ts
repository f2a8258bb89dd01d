import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decideGate, failedSummary, formatGate, parseGate, readEvaluation, readGate } from './gate.js';

const figures = (accuracy: number, p99Ms: number) => ({ accuracy, latency: { concurrency: 4, requests: 200, errors: 0, p50Ms: p99Ms / 2, p99Ms, meanMs: p99Ms / 2, throughput: 100 } });

describe('the gate in config.yaml', () => {
  it('reads accuracy_drop and p99_ms', () => {
    expect(parseGate('name: iris\ngate: {accuracy_drop: 0.01, p99_ms: 50}\n', 'config.yaml')).toEqual({ accuracyDrop: 0.01, p99Ms: 50 });
  });

  it('is absent when config.yaml has no gate', () => {
    expect(parseGate('name: iris\n', 'config.yaml')).toBeUndefined();
  });

  it.each([
    ['gate: {accuracy: 0.9}', /unknown field 'accuracy'/],
    ['gate: {accuracy_drop: 2}', /accuracy_drop must be a number from 0 to 1/],
    ['gate: {p99_ms: 0}', /p99_ms must be a number above 0/],
    ['gate: {p99_ms: fast}', /p99_ms must be a number/],
    ['gate: [1]', /must be a mapping/],
  ])('refuses %s, saying why', (text, why) => {
    expect(() => parseGate(text, 'iris/config.yaml')).toThrow(why);
  });
});

describe('the gate decision', () => {
  const gate = { accuracyDrop: 0.01, p99Ms: 50 };

  it('passes a candidate within the accuracy drop and the latency budget', () => {
    const decision = decideGate(gate, figures(0.9233, 50), figures(0.9333, 10));
    expect(decision.passed).toBe(true);
    expect(decision.checks.map((c) => c.passed)).toEqual([true, true]);
  });

  it('fails a candidate whose accuracy drops more than allowed, with the figures', () => {
    const decision = decideGate(gate, figures(0.9, 5), figures(0.9333, 5));
    expect(decision.passed).toBe(false);
    expect(decision.checks[0]).toEqual({ rule: 'accuracy', candidate: 0.9, serving: 0.9333, limit: 0.9233, passed: false });
    expect(failedSummary(decision)).toBe('accuracy 0.9000 < 0.9233');
  });

  it('fails a candidate slower than the p99 budget, with the figures', () => {
    const decision = decideGate(gate, figures(0.95, 61.5), figures(0.9333, 5));
    expect(decision.checks[1]).toEqual({ rule: 'p99 ms', candidate: 61.5, limit: 50, passed: false });
    expect(failedSummary(decision)).toBe('p99 ms 61.50 > 50.00');
  });

  it('prints the rules as a table of candidate, serving and limit', () => {
    expect(formatGate(decideGate(gate, figures(0.9, 61.5), figures(0.9333, 5)), '2', '1')).toEqual([
      'rule      candidate v2  serving v1     limit',
      'accuracy        0.9000      0.9333  ≥ 0.9233  FAILED',
      'p99 ms           61.50               ≤ 50.00  FAILED',
    ]);
  });

  it('needs no serving version when the gate has only a latency budget', () => {
    expect(decideGate({ p99Ms: 50 }, figures(0.1, 5)).passed).toBe(true);
  });

  it('passes everything without a gate', () => {
    expect(decideGate(undefined, figures(0, 1e6))).toEqual({ passed: true, checks: [] });
  });
});

describe('reading evaluations and gates from the repository', () => {
  let repository: string;
  beforeEach(async () => {
    repository = await mkdtemp(join(tmpdir(), 'gate-'));
    await mkdir(join(repository, 'iris', '1'), { recursive: true });
    await writeFile(join(repository, 'iris', 'config.yaml'), 'name: iris\ngate: {p99_ms: 50}\n');
  });
  afterEach(async () => {
    await rm(repository, { recursive: true, force: true });
  });

  it('says to run infermesh evaluate when a version has no evaluation.json', async () => {
    await expect(readEvaluation(repository, 'iris', '1')).rejects.toThrow('version 1 of iris has no evaluation');
    await expect(readEvaluation(repository, 'iris', '1')).rejects.toThrow('run `infermesh evaluate iris --version 1` first');
  });

  it('refuses an evaluation.json of another version', async () => {
    await writeFile(join(repository, 'iris', '1', 'evaluation.json'), JSON.stringify({ model: 'iris', version: '2', ...figures(0.9, 5) }));
    await expect(readEvaluation(repository, 'iris', '1')).rejects.toThrow('is the evaluation of iris version 2, not of iris version 1');
  });

  it('reads the figures of an evaluation.json', async () => {
    await writeFile(join(repository, 'iris', '1', 'evaluation.json'), JSON.stringify({ model: 'iris', version: '1', ...figures(0.9, 5) }));
    expect(await readEvaluation(repository, 'iris', '1')).toMatchObject({ accuracy: 0.9, latency: { p99Ms: 5 } });
  });

  it('reads the model gate, and names an unknown model', async () => {
    expect(await readGate(repository, 'iris')).toEqual({ p99Ms: 50 });
    await expect(readGate(repository, 'tulip')).rejects.toThrow("unknown model 'tulip'");
  });
});
