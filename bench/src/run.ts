/**
 * The benchmark report's measurements, side by side in one run on one machine:
 *   - the limit: the same work in this process with no network (preprocess + onnxruntime), batch 1 and larger batches;
 *   - a plain REST server (node:http, JSON) calling onnxruntime per request;
 *   - the mesh through the router: 1 worker with batching on and off, 2 workers.
 * Usage: npm run bench [-- --duration 10 --models text-direction,iris]
 */
import { spawn } from 'node:child_process';
import { cpus, totalmem, tmpdir } from 'node:os';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { closedLoop, type LoadResult } from 'infermesh-cli/load';
import { summarize } from 'infermesh-cli/percentiles';
import { runBench, type LevelResult } from 'infermesh-cli/bench';
import { ROOT, startMesh, freePort, waitForPort } from '@infermesh/testing';
import { loadLocalModel } from './pipeline.js';
import { loadRest } from './rest-client.js';
import { workload, type ModelName } from './workloads.js';

/** One measurement: what it measured, and the CLI's figures for it (server figures for the mesh only). */
export type Row = { model: ModelName; system: string; concurrency: number; batch: number }
  & Pick<LevelResult, 'requests' | 'errors' | 'throughput' | 'itemsPerSecond' | 'p50' | 'p90' | 'p99'>
  & Partial<Pick<LevelResult, 'serverQueueMs' | 'serverComputeMs' | 'avgBatchSize'>>;

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, models: { type: 'string', default: 'text-direction,iris' }, output: { type: 'string' } } });
const durationMs = Number(values.duration) * 1000;
const models = values.models.split(',') as ModelName[];
const LEVELS: Record<ModelName, number[]> = { 'text-direction': [16], iris: [1, 64] };
const BATCHES: Record<ModelName, number[]> = { 'text-direction': [8, 16, 32], iris: [16, 64] };
const window = { durationMs, maxRequests: 0 };
const rows: Row[] = [];
const log = (line: string) => console.log(line);

function row(model: ModelName, system: string, concurrency: number, batch: number, run: LoadResult, extra: Partial<Row> = {}): Row {
  const latency = summarize(run.latenciesMs);
  const seconds = run.elapsedMs / 1000;
  const result: Row = {
    model, system, concurrency, batch, requests: run.latenciesMs.length, errors: run.errors,
    throughput: run.latenciesMs.length / seconds, itemsPerSecond: (run.latenciesMs.length * batch) / seconds,
    p50: latency.p50, p90: latency.p90, p99: latency.p99, ...extra,
  };
  rows.push(result);
  log(`${model.padEnd(15)}${system.padEnd(34)}c=${String(concurrency).padEnd(4)}b=${String(batch).padEnd(4)}${result.itemsPerSecond.toFixed(1).padStart(9)} items/s  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms${run.errors ? `  ERRORS ${run.errors}: ${run.firstError}` : ''}`);
  return result;
}

async function inProcess(model: ModelName, elements: Buffer[]): Promise<void> {
  const local = await loadLocalModel(join(ROOT, 'models'), model);
  let next = 0;
  const pick = (n: number) => Array.from({ length: n }, () => elements[next++ % elements.length]);
  await closedLoop(() => local.infer(pick(1)).then(() => {}), 4, { durationMs: 1000, maxRequests: 0 });
  for (const concurrency of LEVELS[model]) row(model, 'in-process limit', concurrency, 1, await closedLoop(() => local.infer(pick(1)).then(() => {}), concurrency, window));
  // Larger batches: two in flight so preprocessing of one overlaps the other's compute.
  for (const batch of BATCHES[model]) row(model, 'in-process limit', 2, batch, await closedLoop(() => local.infer(pick(batch)).then(() => {}), 2, window));
  await local.session.release();
}

async function rest(model: ModelName, elements: Buffer[]): Promise<void> {
  const port = await freePort();
  const server = spawn(process.execPath, [join(ROOT, 'bench/dist/rest-server.js')], { env: { ...process.env, PORT: String(port), MODEL_REPOSITORY: join(ROOT, 'models'), MODELS: model }, stdio: 'ignore' });
  try {
    await waitForPort(port, 30_000);
    const bodies = elements.map((e) => JSON.stringify(model === 'text-direction' ? { image: e.toString('base64') } : { row: JSON.parse(e.toString()) }));
    await loadRest(`http://127.0.0.1:${port}/predict/${model}`, bodies, 4, { durationMs: 1000, maxRequests: 0 });
    for (const concurrency of LEVELS[model]) row(model, 'plain REST server (node:http, JSON)', concurrency, 1, await loadRest(`http://127.0.0.1:${port}/predict/${model}`, bodies, concurrency, window));
  } finally {
    server.kill('SIGTERM');
  }
}

/** A copy of the repository with dynamic batching removed from every model. */
async function repositoryWithoutBatching(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'infermesh-nobatch-'));
  for (const name of ['text-direction', 'iris']) {
    await cp(join(ROOT, 'models', name), join(dir, name), { recursive: true });
    const config = parse(await readFile(join(dir, name, 'config.yaml'), 'utf8')) as Record<string, unknown>;
    delete config.dynamic_batching;
    await writeFile(join(dir, name, 'config.yaml'), stringify(config));
  }
  return dir;
}

async function mesh(system: string, workers: number, repository: string, files: Record<ModelName, { images: string[]; rows: string[] }>): Promise<void> {
  const threads = Math.max(1, Math.floor(cpus().length / workers));
  const running = await startMesh({
    workers,
    traces: false,
    env: { LOG_LEVEL: 'info', MODEL_REPOSITORY: repository },
    workerEnv: { WORKER_INTRA_OP_THREADS: String(threads) },
  });
  try {
    for (const model of models) {
      for (const concurrency of LEVELS[model]) {
        if (system.includes('batching off') && model === 'text-direction' && concurrency !== 16) continue;
        const [result]: LevelResult[] = await runBench(
          { address: running.routerAddress, model, version: '', ...files[model], synthetic: false, batch: 1, concurrency: [concurrency], rates: [], durationMs, maxRequests: 0, warmupMs: 1000 },
          () => {},
        );
        rows.push({
          model, system, concurrency, batch: 1, requests: result.requests, errors: result.errors, throughput: result.throughput, itemsPerSecond: result.itemsPerSecond,
          p50: result.p50, p90: result.p90, p99: result.p99, serverQueueMs: result.serverQueueMs, serverComputeMs: result.serverComputeMs, avgBatchSize: result.avgBatchSize,
        });
        log(`${model.padEnd(15)}${system.padEnd(34)}c=${String(concurrency).padEnd(4)}b=1   ${result.itemsPerSecond.toFixed(1).padStart(9)} items/s  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  server queue ${result.serverQueueMs.toFixed(2)} ms compute ${result.serverComputeMs.toFixed(2)} ms batch ${result.avgBatchSize.toFixed(1)}${result.errors ? `  ERRORS ${result.errors}: ${result.firstError}` : ''}`);
      }
    }
  } finally {
    await running.stop();
  }
}

const started = new Date();
log(`infermesh benchmark ${started.toISOString()} on ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${durationMs / 1000} s per measurement`);
const scratch = await mkdtemp(join(tmpdir(), 'infermesh-bench-'));
const files = {} as Record<ModelName, { images: string[]; rows: string[] }>;
const elements = {} as Record<ModelName, Buffer[]>;
for (const model of models) {
  elements[model] = await workload(model);
  if (model === 'text-direction') {
    await mkdir(join(scratch, 'images'), { recursive: true });
    const images = await Promise.all(elements[model].map(async (png, i) => {
      const file = join(scratch, 'images', `${i}.png`);
      await writeFile(file, png);
      return file;
    }));
    files[model] = { images, rows: [] };
  } else {
    files[model] = { images: [], rows: elements[model].map((e) => e.toString()) };
  }
}
for (const model of models) {
  await inProcess(model, elements[model]);
  await rest(model, elements[model]);
}
const noBatching = await repositoryWithoutBatching();
await mesh('mesh, 1 worker, batching on', 1, join(ROOT, 'models'), files);
await mesh('mesh, 1 worker, batching off', 1, noBatching, files);
await mesh('mesh, 2 workers, batching on', 2, join(ROOT, 'models'), files);
await rm(noBatching, { recursive: true, force: true });
await rm(scratch, { recursive: true, force: true });

const output = values.output ?? join(ROOT, 'bench/results', `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
await mkdir(join(output, '..'), { recursive: true });
await writeFile(output, `${JSON.stringify({ started: started.toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, durationMs, rows }, null, 2)}\n`);
log(`\nwrote ${output}`);
log(stringify({ targets: targets(rows) }));

function targets(all: Row[]) {
  const find = (model: ModelName, system: string, concurrency: number, batch = 1) => all.find((r) => r.model === model && r.system === system && r.concurrency === concurrency && r.batch === batch);
  const best = (model: ModelName) => Math.max(...all.filter((r) => r.model === model && r.system === 'in-process limit').map((r) => r.itemsPerSecond));
  const out: Record<string, string> = {};
  const mesh16 = find('text-direction', 'mesh, 1 worker, batching on', 16);
  const mesh16b = find('text-direction', 'mesh, 2 workers, batching on', 16);
  const meshBest = Math.max(mesh16?.itemsPerSecond ?? 0, mesh16b?.itemsPerSecond ?? 0);
  const rest16 = find('text-direction', 'plain REST server (node:http, JSON)', 16);
  if (mesh16 && rest16) {
    out['text-direction c16: mesh / in-process limit (target >= 0.7)'] = (meshBest / best('text-direction')).toFixed(2);
    out['text-direction c16: mesh / plain REST (target >= 1.5)'] = (meshBest / rest16.itemsPerSecond).toFixed(2);
  }
  const on = find('iris', 'mesh, 1 worker, batching on', 64);
  const off = find('iris', 'mesh, 1 worker, batching off', 64);
  if (on && off) out['iris c64: batching on / off (target >= 3)'] = (on.itemsPerSecond / off.itemsPerSecond).toFixed(2);
  const mesh1 = find('iris', 'mesh, 1 worker, batching on', 1);
  const local1 = find('iris', 'in-process limit', 1);
  if (mesh1 && local1) out['iris c1: mesh p50 - in-process p50 in ms (target <= 1.0)'] = (mesh1.p50 - local1.p50).toFixed(3);
  return out;
}
