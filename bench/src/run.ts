/**
 * The benchmark report's measurements, side by side in one run on one machine:
 *   - the in-process limit: the mesh's own preprocessing and model graph in this process,
 *     no network, batch 1 per call (and one larger-batch figure);
 *   - a plain REST server (node:http, JSON) doing the same work per request;
 *   - the mesh through the router (one worker, shipped configs): a concurrency sweep, with
 *     batching off, with traces exported to an OTLP receiver, and with tracing off;
 *   - a bare ServerLive round trip to the router, the unit the iris c=1 target is in;
 *   - CPU time per item of every process (services, nats-server, load generator).
 * Prints the targets table, writes the results as JSON and an SVG chart of items/s
 * against concurrency.
 * Usage: npm run bench [-- --duration 10 --models text-direction,iris --report docs/benchmarks/DIR]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import * as grpc from '@grpc/grpc-js';
import { contracts } from '@infermesh/contracts';
import { closedLoop, type LoadResult } from 'infermesh-cli/load';
import { summarize } from 'infermesh-cli/percentiles';
import { runBench, type LevelResult } from 'infermesh-cli/bench';
import { ROOT, startMesh, freePort, waitForPort, type Mesh } from '@infermesh/testing';
import { loadLocalModel } from './pipeline.js';
import { loadRest } from './rest-client.js';
import { workload, type ModelName } from './workloads.js';
import { throughputSvg, type Panel } from './chart.js';

/** One measurement. CPU is per item, all processes of the system together, and per process. */
export interface Row {
  model: ModelName;
  system: string;
  concurrency: number;
  batch: number;
  requests: number;
  errors: number;
  itemsPerSecond: number;
  p50: number;
  p90: number;
  p99: number;
  cpuMsPerItem?: number;
  cpuByProcess?: Record<string, number>;
  serverQueueMs?: number;
  serverComputeMs?: number;
  avgBatchSize?: number;
}

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    models: { type: 'string', default: 'text-direction,iris' },
    levels: { type: 'string', default: '1,4,16,64' },
    output: { type: 'string' },
    report: { type: 'string' },
  },
});
const durationMs = Number(values.duration) * 1000;
const models = values.models.split(',') as ModelName[];
const LEVELS = values.levels.split(',').map(Number);
/** The level each model's targets are set at. */
const TARGET_LEVEL: Record<ModelName, number> = { 'text-direction': 16, iris: 64 };
const window = { durationMs, maxRequests: 0 };
const rows: Row[] = [];
const log = (line: string) => console.log(line);

const MESH = 'mesh';
const IN_PROCESS = 'in-process limit';
const REST = 'plain REST server';

const TICKS_PER_SECOND = 100;
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
}

/** Runs `measure` and charges the CPU every process in `pids` spent to the items it served. */
async function withCpu(pids: Record<string, number>, measure: () => Promise<{ items: number }>): Promise<{ cpuMsPerItem: number; cpuByProcess: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)]));
  const { items } = await measure();
  const cpuByProcess = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, Number(((cpuMs(pid) - before[name]) / Math.max(1, items)).toFixed(3))]));
  return { cpuMsPerItem: Number(Object.values(cpuByProcess).reduce((a, b) => a + b, 0).toFixed(3)), cpuByProcess };
}

function record(row: Row): void {
  rows.push(row);
  const extra = row.avgBatchSize !== undefined ? `  batch ${row.avgBatchSize.toFixed(1)}` : '';
  const cpu = row.cpuMsPerItem !== undefined ? `  cpu ${row.cpuMsPerItem.toFixed(2)} ms/item` : '';
  log(`${row.model.padEnd(15)}${row.system.padEnd(32)}c=${String(row.concurrency).padEnd(4)}b=${String(row.batch).padEnd(3)}${row.itemsPerSecond.toFixed(1).padStart(9)} items/s  p50 ${row.p50.toFixed(2)} ms  p99 ${row.p99.toFixed(2)} ms${extra}${cpu}${row.errors ? `  ERRORS ${row.errors}` : ''}`);
}

function fromLoad(model: ModelName, system: string, concurrency: number, batch: number, run: LoadResult): Row {
  const latency = summarize(run.latenciesMs);
  return {
    model, system, concurrency, batch, requests: run.latenciesMs.length, errors: run.errors,
    itemsPerSecond: (run.latenciesMs.length * batch) / (run.elapsedMs / 1000), p50: latency.p50, p90: latency.p90, p99: latency.p99,
  };
}

async function inProcess(model: ModelName, elements: Buffer[]): Promise<void> {
  const local = await loadLocalModel(join(ROOT, 'models'), model);
  let next = 0;
  const pick = (n: number) => Array.from({ length: n }, () => elements[next++ % elements.length]);
  const one = () => local.infer(pick(1)).then(() => {});
  await closedLoop(one, 4, { durationMs: 1000, maxRequests: 0 });
  for (const concurrency of LEVELS) {
    let run: LoadResult | undefined;
    const cpu = await withCpu({ 'this process': process.pid }, async () => {
      run = await closedLoop(one, concurrency, window);
      return { items: run.latenciesMs.length };
    });
    record({ ...fromLoad(model, IN_PROCESS, concurrency, 1, run!), ...cpu });
  }
  // The ceiling with batching: 16 items per run, two runs in flight so preprocessing overlaps compute.
  record(fromLoad(model, `${IN_PROCESS}, batch 16`, 2, 16, await closedLoop(() => local.infer(pick(16)).then(() => {}), 2, window)));
  await local.session.release();
}

async function rest(model: ModelName, elements: Buffer[]): Promise<void> {
  const port = await freePort();
  const server = spawn(process.execPath, [join(ROOT, 'bench/dist/rest-server.js')], { env: { ...process.env, PORT: String(port), MODEL_REPOSITORY: join(ROOT, 'models'), MODELS: model }, stdio: 'ignore' });
  try {
    await waitForPort(port, 30_000);
    const url = `http://127.0.0.1:${port}/predict/${model}`;
    const bodies = elements.map((e) => JSON.stringify(model === 'text-direction' ? { image: e.toString('base64') } : { row: JSON.parse(e.toString()) }));
    await loadRest(url, bodies, 4, { durationMs: 1000, maxRequests: 0 });
    for (const concurrency of LEVELS) {
      let run: LoadResult | undefined;
      const cpu = await withCpu({ 'REST server': server.pid!, 'load generator': process.pid }, async () => {
        run = await loadRest(url, bodies, concurrency, window);
        return { items: run.latenciesMs.length };
      });
      record({ ...fromLoad(model, REST, concurrency, 1, run!), ...cpu });
    }
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

type Inputs = Record<ModelName, { images: string[]; rows: string[] }>;

/** p50 of bare ServerLive calls to the router, one at a time. */
async function serverLiveP50(mesh: Mesh): Promise<number> {
  const client = new (contracts().inference.GRPCInferenceService)(mesh.routerAddress, grpc.credentials.createInsecure());
  const live = () => new Promise<void>((resolve, reject) => client.ServerLive({}, (error) => (error ? reject(error) : resolve())));
  await closedLoop(live, 1, { durationMs: 1000, maxRequests: 0 });
  const run = await closedLoop(live, 1, window);
  client.close();
  const p50 = summarize(run.latenciesMs).p50;
  log(`${'router'.padEnd(15)}${'bare ServerLive round trip'.padEnd(32)}c=1   ${(run.latenciesMs.length / (run.elapsedMs / 1000)).toFixed(1).padStart(9)} calls/s  p50 ${p50.toFixed(3)} ms`);
  return p50;
}

async function mesh(system: string, inputs: Inputs, options: { repository?: string; env?: Record<string, string>; traces?: boolean; levels?: Partial<Record<ModelName, number[]>> }): Promise<number | undefined> {
  const running = await startMesh({
    workers: 1,
    traces: options.traces ?? false,
    env: { LOG_LEVEL: 'info', MODEL_REPOSITORY: options.repository ?? join(ROOT, 'models'), ...options.env },
    // As `npm start` runs one CPU worker: onnxruntime's intra-op threads on every core.
    workerEnv: { WORKER_INTRA_OP_THREADS: String(cpus().length) },
  });
  try {
    const pids = Object.fromEntries([
      ...running.services.map((s) => [s.name === 'worker-0' ? 'worker' : s.name, s.process.pid!] as const),
      ['nats-server', running.nats.process.pid!] as const,
      ['load generator', process.pid] as const,
    ]);
    const liveP50 = system === MESH ? await serverLiveP50(running) : undefined;
    for (const model of models) {
      for (const concurrency of options.levels?.[model] ?? LEVELS) {
        let result: LevelResult | undefined;
        const cpu = await withCpu(pids, async () => {
          [result] = await runBench({ address: running.routerAddress, model, version: '', ...inputs[model], synthetic: false, batch: 1, concurrency: [concurrency], rates: [], durationMs, maxRequests: 0, warmupMs: 1000 }, () => {});
          return { items: result!.requests };
        });
        const r = result!;
        record({
          model, system, concurrency, batch: 1, requests: r.requests, errors: r.errors, itemsPerSecond: r.itemsPerSecond, p50: r.p50, p90: r.p90, p99: r.p99,
          serverQueueMs: r.serverQueueMs, serverComputeMs: r.serverComputeMs, avgBatchSize: r.avgBatchSize, ...cpu,
        });
      }
    }
    return liveP50;
  } finally {
    await running.stop();
  }
}

const started = new Date();
log(`infermesh benchmark ${started.toISOString()} on ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${durationMs / 1000} s per measurement`);
const scratch = await mkdtemp(join(tmpdir(), 'infermesh-bench-'));
const inputs = {} as Inputs;
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
    inputs[model] = { images, rows: [] };
  } else {
    inputs[model] = { images: [], rows: elements[model].map((e) => e.toString()) };
  }
}
for (const model of models) {
  await inProcess(model, elements[model]);
  await rest(model, elements[model]);
}
const targetLevels = Object.fromEntries(models.map((m) => [m, [TARGET_LEVEL[m]]])) as Partial<Record<ModelName, number[]>>;
const liveP50 = await mesh(MESH, inputs, {});
const noBatching = await repositoryWithoutBatching();
await mesh(`${MESH}, batching off`, inputs, { repository: noBatching, levels: targetLevels });
await mesh(`${MESH}, traces exported (OTLP)`, inputs, { traces: true, levels: targetLevels });
await mesh(`${MESH}, tracing off`, inputs, { env: { OTEL_TRACES_SAMPLER: 'always_off' }, levels: targetLevels });
await rm(noBatching, { recursive: true, force: true });
await rm(scratch, { recursive: true, force: true });

const output = values.output ?? join(values.report ?? join(ROOT, 'bench/results'), values.report ? 'results.json' : `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
await mkdir(join(output, '..'), { recursive: true });
const targetRows = targets(rows, liveP50);
await writeFile(output, `${JSON.stringify({ started: started.toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, durationMs, serverLiveP50Ms: liveP50, rows, targets: targetRows }, null, 2)}\n`);
log(`\nwrote ${output}`);
if (values.report) {
  const colours: Record<string, string> = { [MESH]: '#d62728', [IN_PROCESS]: '#1f77b4', [REST]: '#2ca02c' };
  const panels: Panel[] = models.map((model) => ({
    title: model,
    series: [MESH, IN_PROCESS, REST].map((system) => ({
      label: system, colour: colours[system],
      points: rows.filter((r) => r.model === model && r.system === system && r.batch === 1).map((r) => ({ concurrency: r.concurrency, itemsPerSecond: r.itemsPerSecond })),
    })),
  }));
  const chart = join(values.report, 'throughput.svg');
  await writeFile(chart, throughputSvg(`items/s against concurrency, ${cpus().length} cores, ${started.toISOString().slice(0, 10)}`, panels));
  log(`wrote ${chart}`);
}
log('\n| target | measured | goal | met |\n| --- | --- | --- | --- |');
for (const t of targetRows) log(`| ${t.measure} | ${t.measured} | ${t.goal} | ${t.met ? 'yes' : 'no'} |`);

function targets(all: Row[], serverLive: number | undefined) {
  const find = (model: ModelName, system: string, concurrency: number) => all.find((r) => r.model === model && r.system === system && r.concurrency === concurrency && r.batch === 1);
  const out: { measure: string; measured: string; goal: string; met: boolean }[] = [];
  const ratio = (a: number, b: number) => a / b;
  const add = (measure: string, value: number | undefined, detail: string, goal: string, met: (v: number) => boolean) => {
    if (value === undefined || !Number.isFinite(value)) return;
    out.push({ measure, measured: `${detail} = **${value.toFixed(2)}**`, goal, met: met(value) });
  };
  const td = find('text-direction', MESH, 16);
  const tdLocal = find('text-direction', IN_PROCESS, 16);
  const tdRest = find('text-direction', REST, 16);
  if (td && tdLocal) add('text-direction c=16: mesh / in-process limit (batch 1)', ratio(td.itemsPerSecond, tdLocal.itemsPerSecond), `${td.itemsPerSecond.toFixed(1)} / ${tdLocal.itemsPerSecond.toFixed(1)}`, '≥ 0.8', (v) => v >= 0.8);
  if (td && tdRest) add('text-direction c=16: mesh / plain REST server', ratio(td.itemsPerSecond, tdRest.itemsPerSecond), `${td.itemsPerSecond.toFixed(1)} / ${tdRest.itemsPerSecond.toFixed(1)}`, '≥ 1.0', (v) => v >= 1);
  const iris1 = find('iris', MESH, 1);
  if (iris1 && serverLive) add('iris row c=1: mesh p50 / bare ServerLive round trip', ratio(iris1.p50, serverLive), `${iris1.p50.toFixed(3)} / ${serverLive.toFixed(3)} ms`, '≤ 2.5', (v) => v <= 2.5);
  const iris64 = find('iris', MESH, 64);
  const irisRest = find('iris', REST, 64);
  const irisOff = find('iris', `${MESH}, batching off`, 64);
  if (iris64 && irisRest) add('iris row c=64: mesh / plain REST server', ratio(iris64.itemsPerSecond, irisRest.itemsPerSecond), `${iris64.itemsPerSecond.toFixed(1)} / ${irisRest.itemsPerSecond.toFixed(1)}`, '≥ 0.15', (v) => v >= 0.15);
  if (iris64 && irisOff) add('iris row c=64: batching on / off', ratio(iris64.itemsPerSecond, irisOff.itemsPerSecond), `${iris64.itemsPerSecond.toFixed(1)} / ${irisOff.itemsPerSecond.toFixed(1)}`, '≥ 2', (v) => v >= 2);
  if (td?.cpuMsPerItem !== undefined) add('CPU per text-direction image, all processes (ms)', td.cpuMsPerItem, Object.entries(td.cpuByProcess ?? {}).map(([p, ms]) => `${p} ${ms}`).join(' + '), '≤ 6', (v) => v <= 6);
  return out;
}
