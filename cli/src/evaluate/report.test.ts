import { describe, expect, it } from 'vitest';
import { formatConfusion, formatReport, formatSideBySide } from './report.js';
import type { EvaluationReport } from './run.js';

function report(version: string, figures: { modelBytes: number; correct: number; p50: number; p99: number }): EvaluationReport {
  return {
    model: 'text-direction',
    version,
    date: '2026-11-27T00:00:00.000Z',
    dataset: { path: 'models/text-direction/evaluation', kind: 'images', items: 200 },
    accuracy: figures.correct / 200,
    correct: figures.correct,
    items: 200,
    errors: 0,
    output: 'softmax_0.tmp_0',
    confusion: { classes: ['upright', 'rotated_180'], counts: [[95, 5], [7, 93]] },
    latency: { concurrency: 4, requests: 200, errors: 0, p50Ms: figures.p50, p99Ms: figures.p99, meanMs: figures.p50, throughput: 100 },
    modelBytes: figures.modelBytes,
    workerMemory: { measured: false, reason: 'not in the public API' },
    mesh: { router: '127.0.0.1:8001', server: 'infermesh', serverVersion: '0.1.0', cli: '0.1.0' },
  };
}

describe('formatSideBySide', () => {
  it('puts each version in a column: size, accuracy, p50 and p99', () => {
    const lines = formatSideBySide([report('1', { modelBytes: 578_966, correct: 188, p50: 3.2, p99: 9.87 }), report('2', { modelBytes: 160_000, correct: 187, p50: 2.5, p99: 7.1 })]);
    expect(lines[0]).toMatch(/text-direction v1\s+text-direction v2$/);
    expect(lines.some((l) => /^model file\s+565\.4 KiB\s+156\.3 KiB$/.test(l))).toBe(true);
    expect(lines.some((l) => /^accuracy\s+0\.9400 \(188\/200\)\s+0\.9350 \(187\/200\)$/.test(l))).toBe(true);
    expect(lines.some((l) => /^p50 ms\s+3\.20\s+2\.50$/.test(l))).toBe(true);
    expect(lines.some((l) => /^p99 ms\s+9\.87\s+7\.10$/.test(l))).toBe(true);
  });
});

describe('formatConfusion', () => {
  it('gives one row per true class and one column per predicted class', () => {
    expect(formatConfusion(report('1', { modelBytes: 1, correct: 188, p50: 1, p99: 1 }))).toEqual([
      'true \\ predicted  upright  rotated_180',
      'upright                95            5',
      'rotated_180             7           93',
    ]);
  });
});

describe('worker memory in the report', () => {
  const MiB = 1024 * 1024;
  const measured = (...workers: [string, number][]): EvaluationReport['workerMemory'] => ({
    measured: true, scope: 'whole worker process', workers: workers.map(([workerId, rssBytes]) => ({ workerId, device: 'cpu', rssBytes })), maxBytes: Math.max(...workers.map(([, b]) => b)),
  });

  it('prints the serving worker\'s memory, named, and says it is the whole worker process', () => {
    const lines = formatReport({ ...report('1', { modelBytes: 1, correct: 188, p50: 1, p99: 1 }), workerMemory: measured(['worker-cpu0', Math.round(212.4 * MiB)]) });
    expect(lines.some((l) => /^worker memory\s+212\.4 MiB$/.test(l))).toBe(true);
    expect(lines.at(-1)).toBe('worker memory: 212.4 MiB (worker-cpu0) — resident memory of the whole worker process (every model it holds), not of the model alone');
  });

  it('gives the max of several workers in the column', () => {
    const lines = formatSideBySide([{ ...report('1', { modelBytes: 1, correct: 188, p50: 1, p99: 1 }), workerMemory: measured(['a', 200 * MiB], ['b', 230 * MiB]) }]);
    expect(lines.some((l) => /^worker memory\s+230\.0 MiB \(max of 2\)$/.test(l))).toBe(true);
  });

  it('says not measured, and why, when it was not', () => {
    const lines = formatReport({ ...report('1', { modelBytes: 1, correct: 188, p50: 1, p99: 1 }), workerMemory: { measured: false, reason: 'NATS unreachable: CONNECTION_REFUSED' } });
    expect(lines.some((l) => /^worker memory\s+not measured$/.test(l))).toBe(true);
    expect(lines.at(-1)).toBe('worker memory: not measured (NATS unreachable: CONNECTION_REFUSED)');
  });
});
