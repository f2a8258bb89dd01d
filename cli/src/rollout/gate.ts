/**
 * The evaluation gate: a model's config.yaml may hold
 *
 *   gate: {accuracy_drop: 0.01, p99_ms: 50}
 *
 * and a candidate version then serves traffic (a canary, a promotion) only when its
 * evaluation.json (written by `infermesh evaluate`) has accuracy at least the serving
 * version's minus accuracy_drop, and p99 latency at most p99_ms. The worker's config schema
 * ignores the block; only the CLI reads it.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { EVALUATION_FILE, type EvaluationReport } from '../evaluate/index.js';

/** An evaluation.json is a few KiB (the confusion matrix is its largest part); more is not one. */
const MAX_EVALUATION_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 1024 * 1024;
const VERSION = /^[1-9][0-9]{0,17}$/;

export class GateError extends Error {
  override readonly name = 'GateError';
}

export interface GateRules {
  /** The candidate's accuracy may be at most this far below the serving version's. */
  accuracyDrop?: number;
  /** The candidate's p99 latency (ms, as evaluate measured it) may be at most this. */
  p99Ms?: number;
}

const GATE_FIELDS = { accuracy_drop: { min: 0, max: 1 }, p99_ms: { min: 0, max: 3_600_000 } } as const;

/** The `gate:` block of a config.yaml's text; undefined when it has none. */
export function parseGate(text: string, source: string): GateRules | undefined {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new GateError(`${source} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  const raw = (document as { gate?: unknown } | null)?.gate;
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new GateError(`${source} gate: must be a mapping (accuracy_drop, p99_ms)`);
  const fields = raw as Record<string, unknown>;
  for (const [key, value] of Object.entries(fields)) {
    const bounds = GATE_FIELDS[key as keyof typeof GATE_FIELDS];
    if (!bounds) throw new GateError(`${source} gate: unknown field '${key.slice(0, 32)}' (a gate takes accuracy_drop, p99_ms)`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < bounds.min || value > bounds.max || (key === 'p99_ms' && value === 0)) {
      throw new GateError(`${source} gate: ${key} must be a number ${key === 'p99_ms' ? `above 0, at most ${bounds.max}` : `from ${bounds.min} to ${bounds.max}`} (got ${JSON.stringify(value)?.slice(0, 32)})`);
    }
  }
  return {
    ...(fields.accuracy_drop !== undefined ? { accuracyDrop: fields.accuracy_drop as number } : {}),
    ...(fields.p99_ms !== undefined ? { p99Ms: fields.p99_ms as number } : {}),
  };
}

/** The model's gate from `<repository>/<model>/config.yaml`. */
export async function readGate(repository: string, model: string): Promise<GateRules | undefined> {
  const path = join(repository, model, 'config.yaml');
  const size = await stat(path).then((s) => s.size, () => undefined);
  if (size === undefined) throw new GateError(`unknown model '${model}': no ${model}/config.yaml in the repository ${repository} (--repository DIR)`);
  if (size > MAX_CONFIG_BYTES) throw new GateError(`${path} is ${size} bytes (at most ${MAX_CONFIG_BYTES})`);
  return parseGate(await readFile(path, 'utf8'), path);
}

/** What the gate reads of an evaluation.json; the rest is kept for the side-by-side table. */
function evaluationProblem(document: unknown): string | undefined {
  const d = document as Partial<EvaluationReport> | null;
  if (typeof d !== 'object' || d === null) return 'not an object';
  if (typeof d.model !== 'string' || typeof d.version !== 'string') return 'no model or version';
  if (typeof d.accuracy !== 'number' || d.accuracy < 0 || d.accuracy > 1) return 'accuracy is not a fraction';
  if (typeof d.latency?.p99Ms !== 'number' || d.latency.p99Ms < 0) return 'latency.p99Ms is not a number of ms';
  return undefined;
}

/** `<repository>/<model>/<version>/evaluation.json`; a missing one says how to write it. */
export async function readEvaluation(repository: string, model: string, version: string): Promise<EvaluationReport> {
  if (!VERSION.test(version)) throw new GateError(`'${version.slice(0, 32)}' is not a version number`);
  const path = join(repository, model, version, EVALUATION_FILE);
  const size = await stat(path).then((s) => s.size, () => undefined);
  if (size === undefined) throw new GateError(`version ${version} of ${model} has no evaluation (${path}): run \`infermesh evaluate ${model} --version ${version}\` first`);
  if (size > MAX_EVALUATION_BYTES) throw new GateError(`${path} is ${size} bytes (at most ${MAX_EVALUATION_BYTES})`);
  let document: unknown;
  try {
    document = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new GateError(`${path} is not JSON: ${(error as Error).message}`);
  }
  const problem = evaluationProblem(document);
  if (problem) throw new GateError(`${path} is not an evaluation infermesh evaluate wrote: ${problem}`);
  const report = document as EvaluationReport;
  if (report.model !== model || report.version !== version) throw new GateError(`${path} is the evaluation of ${report.model.slice(0, 64)} version ${report.version.slice(0, 32)}, not of ${model} version ${version}`);
  return report;
}

export interface GateCheck {
  rule: 'accuracy' | 'p99 ms';
  candidate: number;
  /** The serving version's figure, for rules relative to it. */
  serving?: number;
  /** The least (accuracy) or most (p99) the candidate may have. */
  limit: number;
  passed: boolean;
}

export interface GateDecision {
  passed: boolean;
  checks: GateCheck[];
}

/** Each rule of the gate against the candidate's figures (and the serving version's, for accuracy). */
export function decideGate(gate: GateRules | undefined, candidate: Pick<EvaluationReport, 'accuracy' | 'latency'>, serving?: Pick<EvaluationReport, 'accuracy'>): GateDecision {
  const checks: GateCheck[] = [];
  if (gate?.accuracyDrop !== undefined) {
    if (!serving) throw new GateError('the gate compares accuracy with the serving version, and there is none to compare with (--serving V)');
    // Rounded to the figures a report shows, so 0.9333 - 0.01 does not refuse 0.9233 by a float's last bit.
    const limit = Math.round((serving.accuracy - gate.accuracyDrop) * 1e9) / 1e9;
    checks.push({ rule: 'accuracy', candidate: candidate.accuracy, serving: serving.accuracy, limit, passed: candidate.accuracy >= limit });
  }
  if (gate?.p99Ms !== undefined) checks.push({ rule: 'p99 ms', candidate: candidate.latency.p99Ms, limit: gate.p99Ms, passed: candidate.latency.p99Ms <= gate.p99Ms });
  return { passed: checks.every((c) => c.passed), checks };
}

function figure(rule: GateCheck['rule'], value: number | undefined): string {
  if (value === undefined) return '';
  return rule === 'accuracy' ? value.toFixed(4) : value.toFixed(2);
}

/** The decision as a table: rule, candidate, serving, limit, and whether it passed. */
export function formatGate(decision: GateDecision, candidateVersion: string, servingVersion: string | undefined): string[] {
  if (decision.checks.length === 0) return ['no gate in config.yaml: nothing to check'];
  const header = ['rule', `candidate v${candidateVersion}`, servingVersion ? `serving v${servingVersion}` : 'serving', 'limit', ''];
  const rows = decision.checks.map((c) => [c.rule, figure(c.rule, c.candidate), figure(c.rule, c.serving), `${c.rule === 'accuracy' ? '≥' : '≤'} ${figure(c.rule, c.limit)}`, c.passed ? 'passed' : 'FAILED']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** One line naming the failed rules' figures, for the policy's reason. */
export function failedSummary(decision: GateDecision): string {
  return decision.checks
    .filter((c) => !c.passed)
    .map((c) => `${c.rule} ${figure(c.rule, c.candidate)} ${c.rule === 'accuracy' ? '<' : '>'} ${figure(c.rule, c.limit)}`)
    .join(', ');
}

/** One line naming every rule's figures. */
export function passedSummary(decision: GateDecision): string {
  if (decision.checks.length === 0) return 'no gate';
  return `gate passed: ${decision.checks.map((c) => `${c.rule} ${figure(c.rule, c.candidate)} ${c.rule === 'accuracy' ? '≥' : '≤'} ${figure(c.rule, c.limit)}`).join(', ')}`;
}
