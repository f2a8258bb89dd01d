/**
 * infermesh optimize: a new model version from an existing one (onnxruntime graph optimization
 * saved to a file, and weight-only int8 quantization), compared with the original side by side.
 * The new version is written beside the others in the repository and never over one.
 */
import { copyFile, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ort from 'onnxruntime-node';
import { MODEL_REPOSITORY_DIR } from '@infermesh/models';
import { PROFILE_FILE, readModelConfig } from '@infermesh/worker';
import { formatSideBySide, writeEvaluation, type EvaluationReport } from '../evaluate/index.js';
import { compareModels, DEFAULT_RUNS, DEFAULT_WARMUP, type Comparison } from '../optimize/compare.js';
import { DEFAULT_GRAPH_LEVEL, GRAPH_LEVELS, isGraphLevel, optimizeGraph, type GraphLevel } from '../optimize/graph.js';
import { DEFAULT_MIN_ELEMENTS, quantizeWeightsInt8, type QuantizedWeight, type SkippedWeight } from '../optimize/quantize.js';
import { evaluateThroughMesh } from '../optimize/mesh-evaluation.js';
import { decideGate, formatGate, readGate } from '../rollout/gate.js';
import { sampleSet } from '../optimize/samples.js';

/** Seconds --evaluate waits for the workers to serve the new version, by default. */
export const DEFAULT_WAIT_S = 60;

/** Also written into the new version's folder, so where it came from stays with it. */
export const OPTIMIZE_FILE = 'optimize.json';
const MODEL_FILE = 'model.onnx';
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const VERSION = /^[1-9]\d{0,8}$/;
const MAX_RUNS = 10_000;
const MAX_WAIT_S = 3600;

export class OptimizeError extends Error {
  override name = 'OptimizeError';
}

export interface OptimizeResult {
  model: string;
  from: string;
  to: string;
  /** The new model file. */
  path: string;
  graph: { level: GraphLevel } | null;
  int8: { opset: number; quantized: QuantizedWeight[]; skipped: SkippedWeight[]; minElements: number } | null;
  profileCopied: boolean;
  onnxruntime: string;
  comparison: Comparison;
}

export interface OptimizeOptions {
  repository: string;
  model: string;
  from?: string;
  to?: string;
  graph: boolean;
  level?: GraphLevel;
  int8: boolean;
  runs?: number;
  warmup?: number;
  threads?: number;
}

async function versionsOf(dir: string): Promise<number[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && /^\d+$/.test(e.name)).map((e) => Number(e.name)).sort((a, b) => a - b);
}

/** A path relative to the working folder when it is inside it, else absolute. */
function shown(path: string, cwd = process.cwd()): string {
  const near = relative(cwd, path);
  return near && !near.startsWith('..') ? near : path;
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Optimizes `options.model` into a new version folder and compares the two. */
export async function optimizeModel(options: OptimizeOptions): Promise<OptimizeResult> {
  const { repository, model } = options;
  if (!MODEL_NAME.test(model)) throw new OptimizeError(`'${model.slice(0, 64)}' is not a model name (letters, digits, "-" and "_")`);
  if (!options.graph && !options.int8) throw new OptimizeError('nothing to do: ask for --graph, --int8 or both');
  const modelDir = join(repository, model);
  if (!(await exists(join(modelDir, 'config.yaml')))) throw new OptimizeError(`unknown model '${model}': no ${model}/config.yaml in ${repository}`);
  const config = await readModelConfig(modelDir);
  const versions = await versionsOf(modelDir);
  for (const [flag, value] of [['--from', options.from], ['--to', options.to]] as const) {
    if (value !== undefined && !VERSION.test(value)) throw new OptimizeError(`${flag} must be a version number (1 or more), got '${value.slice(0, 64)}'`);
  }
  const from = options.from ?? (versions.length ? String(versions.at(-1)) : undefined);
  if (from === undefined) throw new OptimizeError(`model '${model}' has no version folder in ${modelDir}`);
  if (!versions.includes(Number(from))) throw new OptimizeError(`model '${model}' has no version ${from} (versions: ${versions.join(', ') || 'none'})`);
  const to = options.to ?? String((versions.at(-1) ?? 0) + 1);
  const target = join(modelDir, to);
  // Checked before the work and again before the folder appears: a version is never overwritten.
  if (await exists(target)) throw new OptimizeError(`${shown(target)} already exists: a version is never overwritten (pass --to with a new version)`);
  const source = join(modelDir, from, MODEL_FILE);
  const original = await readFile(source);

  const work = await mkdtemp(join(tmpdir(), 'infermesh-optimize-'));
  try {
    let optimized: Uint8Array = original;
    const level = options.level ?? DEFAULT_GRAPH_LEVEL;
    if (options.graph) {
      const file = join(work, 'graph.onnx');
      await optimizeGraph(source, file, level);
      optimized = await readFile(file);
    }
    const quantization = options.int8 ? quantizeWeightsInt8(optimized, { minElements: DEFAULT_MIN_ELEMENTS }) : undefined;
    if (quantization) optimized = quantization.bytes;

    const comparison = await compareModels(config, original, optimized, await sampleSet(config, repository), { runs: options.runs, warmup: options.warmup, threads: options.threads });
    const profile = join(modelDir, from, PROFILE_FILE);
    const profileCopied = await exists(profile);
    const result: OptimizeResult = {
      model, from, to, path: join(target, MODEL_FILE),
      graph: options.graph ? { level } : null,
      int8: quantization ? { opset: quantization.opset, quantized: quantization.quantized, skipped: quantization.skipped, minElements: DEFAULT_MIN_ELEMENTS } : null,
      profileCopied, onnxruntime: ort.env.versions.common ?? 'unknown', comparison,
    };

    // Written whole in a hidden folder beside the versions, then renamed into place, so a worker
    // polling the repository never sees a half-written version (hidden names are not versions).
    const staging = await mkdtemp(join(modelDir, `.optimize-${to}-`));
    try {
      await writeFile(join(staging, MODEL_FILE), optimized);
      // The inputs are the same, so the drift reference profile still describes them.
      if (profileCopied) await copyFile(profile, join(staging, PROFILE_FILE));
      await writeFile(join(staging, OPTIMIZE_FILE), `${JSON.stringify(result, null, 2)}\n`);
      if (await exists(target)) throw new OptimizeError(`${target} appeared while optimizing: a version is never overwritten`);
      await rename(staging, target);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const bytes = (n: number) => `${n.toLocaleString('en-US')} B`;
const change = (before: number, after: number) => (before === 0 ? '' : `${after >= before ? '+' : ''}${(((after - before) / before) * 100).toFixed(1)} %`);
const ms = (n: number) => `${n.toFixed(2)} ms`;

/** The result as the table `infermesh optimize` prints. */
export function formatOptimizeResult(result: OptimizeResult, cwd = process.cwd()): string[] {
  const { comparison: c } = result;
  const steps: string[] = [];
  if (result.graph) steps.push(`graph optimization '${result.graph.level}'`);
  if (result.int8) {
    const how = [...new Set(result.int8.quantized.map((w) => `${w.dequantization} ${w.scheme}`))].join(', ');
    steps.push(`int8 weights: ${result.int8.quantized.length} of ${result.int8.quantized.length + result.int8.skipped.length} weight tensors at opset ${result.int8.opset}${how ? ` (${how})` : ''}`);
  }
  const rows: [string, string, string, string][] = [['', `version ${result.from}`, `version ${result.to}`, 'change']];
  rows.push(['size', bytes(c.original.bytes), bytes(c.optimized.bytes), change(c.original.bytes, c.optimized.bytes)]);
  if (c.original.accuracy !== null && c.optimized.accuracy !== null) {
    rows.push([`accuracy (${c.samples.labelled} labelled)`, c.original.accuracy.toFixed(4), c.optimized.accuracy.toFixed(4), `${c.optimized.accuracy >= c.original.accuracy ? '+' : ''}${(c.optimized.accuracy - c.original.accuracy).toFixed(4)}`]);
  }
  c.original.latency.forEach((before, i) => {
    const after = c.optimized.latency[i];
    rows.push([`p50 batch ${before.batch}`, ms(before.p50Ms), ms(after.p50Ms), change(before.p50Ms, after.p50Ms)]);
    rows.push([`p99 batch ${before.batch}`, ms(before.p99Ms), ms(after.p99Ms), change(before.p99Ms, after.p99Ms)]);
  });
  const widths = [0, 1, 2, 3].map((col) => Math.max(...rows.map((r) => r[col].length)));
  const table = rows.map((r) => r.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]) : cell.padStart(widths[col]))).join('   ').trimEnd());
  return [
    `${result.model}: version ${result.from} → ${result.to}: ${steps.join('; ')}`,
    `written: ${shown(result.path, cwd)}${result.profileCopied ? ` (and ${PROFILE_FILE}, ${OPTIMIZE_FILE})` : ` (and ${OPTIMIZE_FILE})`}`,
    `compared in this process (onnxruntime-node ${result.onnxruntime}, CPU, as the worker serves it; ${c.threads || 'default'} thread${c.threads === 1 ? '' : 's'}, ${c.runs} runs after ${c.warmup} warm-up) on ${c.samples.source}:`,
    '',
    ...table,
    `top class agrees   ${c.agreement.same}/${c.agreement.items} (${(c.agreement.rate * 100).toFixed(1)} %); largest difference in '${c.output}': ${c.maxAbsDifference.toPrecision(3)}`,
  ];
}

export interface OptimizeCommandOptions {
  model: string;
  from?: string;
  to?: string;
  /** Default: MODEL_REPOSITORY, else the repository's models/. */
  repository?: string;
  /** Neither graph nor int8: both. */
  graph: boolean;
  level: string;
  int8: boolean;
  runs: number;
  threads: number;
  /** Then both versions through the mesh at `address`, once its workers serve the new one (waiting `wait` seconds at most). */
  evaluate: boolean;
  address: string;
  wait: number;
  json: boolean;
}

/** `infermesh optimize <model> [options]`; `print` receives the report. Returns the exit code. */
export async function optimize(values: OptimizeCommandOptions, print: (line: string) => void = console.log): Promise<number> {
  const { model, runs, threads, wait } = values;
  if (!isGraphLevel(values.level)) throw new OptimizeError(`--level must be one of ${GRAPH_LEVELS.join(', ')}, got '${values.level.slice(0, 64)}'`);
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) throw new OptimizeError(`--runs must be a whole number from 1 to ${MAX_RUNS}, got '${runs}'`);
  if (!Number.isInteger(threads) || threads < 0 || threads > 256) throw new OptimizeError(`--threads must be a whole number from 0 to 256, got '${threads}'`);
  if (!Number.isFinite(wait) || wait < 0 || wait > MAX_WAIT_S) throw new OptimizeError(`--wait must be seconds from 0 to ${MAX_WAIT_S}, got '${wait}'`);
  const both = !values.graph && !values.int8;
  const repository = values.repository ?? process.env.MODEL_REPOSITORY ?? MODEL_REPOSITORY_DIR;
  const result = await optimizeModel({
    repository, model, from: values.from, to: values.to, graph: both || values.graph, level: values.level, int8: both || values.int8, runs, threads,
  });
  if (!values.json) for (const line of formatOptimizeResult(result)) print(line);
  let evaluations: EvaluationReport[] | undefined;
  if (values.evaluate) {
    evaluations = await evaluateThroughMesh({ address: values.address, repository, model, versions: [result.from, result.to], waitMs: wait * 1000 });
    // As infermesh evaluate does: beside each version, where the gate (infermesh rollout) reads them.
    for (const report of evaluations) await writeEvaluation(repository, report);
    if (!values.json) print(['', `through the mesh at ${values.address} (infermesh evaluate):`, '', ...formatSideBySide(evaluations)].join('\n'));
  }
  // The decision `infermesh rollout` would take on the new version, from these evaluations and the model's gate.
  const gate = evaluations ? decideGate(await readGate(repository, model), evaluations[1], evaluations[0]) : undefined;
  if (gate && !values.json) {
    const verdict = gate.checks.length === 0 ? '' : gate.passed ? ': it may serve traffic (infermesh rollout)' : ': refused (infermesh rollout would need --force)';
    print(['', `the gate of ${model} (config.yaml) for version ${result.to}${verdict}`, ...formatGate(gate, result.to, result.from)].join('\n'));
  }
  if (values.json) print(JSON.stringify(evaluations ? { ...result, evaluations, gate } : result, null, 2));
  return 0;
}
