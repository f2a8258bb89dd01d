/**
 * The benchmark report's measurements, side by side in one run on one machine:
 *   - the in-process limit: the mesh's own preprocessing and model graph in this process,
 *     no network, batch 1 per call (and one larger-batch figure);
 *   - a plain REST server (node:http, JSON) doing the same work per request;
 *   - the mesh through the router (one worker, shipped configs, as `npm start` runs it), and
 *     the same mesh with batching off, with traces exported to an OTLP receiver, and with
 *     tracing off;
 *   - a bare ServerLive round trip to the router, the unit the iris c=1 target is in;
 *   - CPU time per item of every process (services, nats-server, load generator).
 *
 * The machine is shared and its speed drifts over minutes, so the systems are not measured
 * one after the other: every system stays up, a concurrency sweep of each feeds the chart,
 * and the target measurements are taken in rounds that interleave the systems (default 3),
 * reported as medians with their range.
 * Usage: npm run bench [-- --duration 10 --rounds 3 --report docs/benchmarks/DIR]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import * as grpc from '@grpc/grpc-js';
import { contracts } from '@infermesh/contracts';
import { closedLoop, type LoadResult } from 'infermesh-cli/load';
import { summarize } from 'infermesh-cli/percentiles';
import { runBench, type LevelResult } from 'infermesh-cli/bench';
import { ROOT, startMesh, freePort, waitForPort, type Mesh, type MeshOptions } from '@infermesh/testing';
import { issueDevCertificates, meshTlsSettings } from '@infermesh/grpc';
import { loadLocalModel, type LocalModel } from './pipeline.js';
import { loadRest } from './rest-client.js';
import { workload, type ModelName } from './workloads.js';
import { throughputSvg, type Panel } from './chart.js';

/** One measurement. CPU is per item, all processes of the system together, and per process. */
export interface Row {
  model: ModelName;
  system: string;
  concurrency: number;
  batch: number;
  /** 0 for the sweep; 1.. for the interleaved rounds of target measurements. */
  round: number;
  requests: number;
  errors: number;
  itemsPerSecond: number;
  p50: number;
  p90: number;
  p99: number;
  cpuMsPerItem?: number;
  cpuByProcess?: Record<string, number>;
  avgBatchSize?: number;
}

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    levels: { type: 'string', default: '1,4,16,64' },
    output: { type: 'string' },
    report: { type: 'string' },
  },
});
const durationMs = Number(values.duration) * 1000;
// npm runs the script in bench/; paths given on the command line are the caller's.
const fromCaller = (path: string) => resolve(process.env.INIT_CWD ?? process.cwd(), path);
const report = values.report === undefined ? undefined : fromCaller(values.report);
const rounds = Number(values.rounds);
const LEVELS = values.levels.split(',').map(Number);
const MODELS: ModelName[] = ['text-direction', 'iris'];
const window = { durationMs, maxRequests: 0 };
const rows: Row[] = [];
const log = (line: string) => console.log(line);

const MESH = 'mesh';
const IN_PROCESS = 'in-process limit';
const REST = 'plain REST server';
const NO_BATCHING = 'mesh, batching off';
const TRACES_EXPORTED = 'mesh, traces exported (OTLP)';
const TRACING_OFF = 'mesh, tracing off';
const SECURED = 'mesh, mutual TLS + NATS users';
const SERVER_LIVE = 'bare ServerLive round trip to the router';

const TICKS_PER_SECOND = 100;
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
}

/** A system under test: what it measures one level with, the processes its CPU is charged to. */
interface System {
  name: string;
  pids: Record<string, number>;
  measure(model: ModelName, concurrency: number): Promise<Omit<Row, 'system' | 'round'>>;
  close(): Promise<void>;
}

function fromLoad(model: ModelName, concurrency: number, batch: number, run: LoadResult): Omit<Row, 'system' | 'round'> {
  const latency = summarize(run.latenciesMs);
  return {
    model, concurrency, batch, requests: run.latenciesMs.length, errors: run.errors,
    itemsPerSecond: (run.latenciesMs.length * batch) / (run.elapsedMs / 1000), p50: latency.p50, p90: latency.p90, p99: latency.p99,
  };
}

/** Measures one level of one system and charges it the CPU its processes spent. */
async function measure(system: System, model: ModelName, concurrency: number, round: number): Promise<Row> {
  const before = Object.fromEntries(Object.entries(system.pids).map(([name, pid]) => [name, cpuMs(pid)]));
  const result = await system.measure(model, concurrency);
  const items = Math.max(1, result.requests * result.batch);
  const cpuByProcess = Object.fromEntries(Object.entries(system.pids).map(([name, pid]) => [name, Number(((cpuMs(pid) - before[name]) / items).toFixed(3))]));
  const row: Row = { ...result, system: system.name, round, cpuByProcess, cpuMsPerItem: Number(Object.values(cpuByProcess).reduce((a, b) => a + b, 0).toFixed(3)) };
  rows.push(row);
  const extra = row.avgBatchSize !== undefined ? `  batch ${row.avgBatchSize.toFixed(1)}` : '';
  log(`${round ? `r${round}` : 'sw'} ${row.model.padEnd(15)}${row.system.padEnd(32)}c=${String(row.concurrency).padEnd(4)}${row.itemsPerSecond.toFixed(1).padStart(9)} items/s  p50 ${row.p50.toFixed(3)} ms  p99 ${row.p99.toFixed(2)} ms${extra}  cpu ${row.cpuMsPerItem!.toFixed(2)} ms/item${row.errors ? `  ERRORS ${row.errors}` : ''}`);
  return row;
}

async function inProcess(elements: Record<ModelName, Buffer[]>): Promise<System> {
  const local = {} as Record<ModelName, LocalModel>;
  for (const model of MODELS) local[model] = await loadLocalModel(join(ROOT, 'models'), model);
  let next = 0;
  const pick = (model: ModelName, n: number) => Array.from({ length: n }, () => elements[model][next++ % elements[model].length]);
  for (const model of MODELS) await closedLoop(() => local[model].infer(pick(model, 1)).then(() => {}), 4, { durationMs: 1000, maxRequests: 0 });
  return {
    name: IN_PROCESS,
    pids: { 'this process': process.pid },
    measure: async (model, concurrency) => fromLoad(model, concurrency, 1, await closedLoop(() => local[model].infer(pick(model, 1)).then(() => {}), concurrency, window)),
    close: async () => {
      for (const model of MODELS) await local[model].session.release();
    },
  };
}

async function rest(elements: Record<ModelName, Buffer[]>): Promise<System> {
  const port = await freePort();
  const server: ChildProcess = spawn(process.execPath, [join(ROOT, 'bench/dist/rest-server.js')], { env: { ...process.env, PORT: String(port), MODEL_REPOSITORY: join(ROOT, 'models'), MODELS: MODELS.join(',') }, stdio: 'ignore' });
  await waitForPort(port, 30_000);
  const bodies = Object.fromEntries(MODELS.map((model) => [model, elements[model].map((e) => JSON.stringify(model === 'text-direction' ? { image: e.toString('base64') } : { row: JSON.parse(e.toString()) }))])) as Record<ModelName, string[]>;
  const url = (model: ModelName) => `http://127.0.0.1:${port}/predict/${model}`;
  for (const model of MODELS) await loadRest(url(model), bodies[model], 4, { durationMs: 1000, maxRequests: 0 });
  return {
    name: REST,
    pids: { 'REST server': server.pid!, 'load generator': process.pid },
    measure: async (model, concurrency) => fromLoad(model, concurrency, 1, await loadRest(url(model), bodies[model], concurrency, window)),
    close: async () => {
      server.kill('SIGTERM');
    },
  };
}

type Inputs = Record<ModelName, { images: string[]; rows: string[] }>;

async function mesh(name: string, inputs: Inputs, options: { repository?: string; env?: Record<string, string>; traces?: boolean; secured?: Pick<MeshOptions, 'natsAuth' | 'serviceEnv'> } = {}): Promise<System & { running: Mesh }> {
  const running = await startMesh({
    ...options.secured,
    workers: 1,
    traces: options.traces ?? false,
    env: { LOG_LEVEL: 'info', MODEL_REPOSITORY: options.repository ?? join(ROOT, 'models'), ...options.env },
    // As `npm start` runs one CPU worker: onnxruntime's intra-op threads on every core.
    workerEnv: { WORKER_INTRA_OP_THREADS: String(cpus().length) },
  });
  const pids = Object.fromEntries([
    ...running.services.map((s) => [s.name === 'worker-0' ? 'worker' : s.name, s.process.pid!] as const),
    ['nats-server', running.nats.process.pid!] as const,
    ['load generator', process.pid] as const,
  ]);
  const level = async (model: ModelName, concurrency: number, warmupMs: number): Promise<LevelResult> =>
    (await runBench({ address: running.routerAddress, model, version: '', ...inputs[model], synthetic: false, batch: 1, concurrency: [concurrency], rates: [], durationMs, maxRequests: 0, warmupMs }, () => {}))[0];
  for (const model of MODELS) await level(model, 4, 0).catch(() => undefined); // the first requests wait for the worker's first heartbeat
  return {
    name,
    pids,
    running,
    measure: async (model, concurrency) => {
      const r = await level(model, concurrency, 1000);
      return { model, concurrency, batch: 1, requests: r.requests, errors: r.errors, itemsPerSecond: r.itemsPerSecond, p50: r.p50, p90: r.p90, p99: r.p99, avgBatchSize: r.avgBatchSize };
    },
    close: () => running.stop(),
  };
}

/** Bare ServerLive calls to the router, one at a time, as a system of their own. */
function serverLive(running: Mesh, pids: Record<string, number>): System {
  const client = new (contracts().inference.GRPCInferenceService)(running.routerAddress, grpc.credentials.createInsecure());
  const live = () => new Promise<void>((resolve, reject) => client.ServerLive({}, (error) => (error ? reject(error) : resolve())));
  return {
    name: SERVER_LIVE,
    pids,
    measure: async (model, concurrency) => {
      await closedLoop(live, concurrency, { durationMs: 1000, maxRequests: 0 });
      return fromLoad(model, concurrency, 1, await closedLoop(live, concurrency, window));
    },
    close: async () => client.close(),
  };
}

/** A copy of the repository with dynamic batching removed from every model. */
async function repositoryWithoutBatching(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'infermesh-nobatch-'));
  for (const name of MODELS) {
    await cp(join(ROOT, 'models', name), join(dir, name), { recursive: true });
    const config = parse(await readFile(join(dir, name, 'config.yaml'), 'utf8')) as Record<string, unknown>;
    delete config.dynamic_batching;
    await writeFile(join(dir, name, 'config.yaml'), stringify(config));
  }
  return dir;
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** The target rounds of one system and level: the median row's figures, and the range. */
function summary(system: string, model: ModelName, concurrency: number) {
  const measured = rows.filter((r) => r.round > 0 && r.system === system && r.model === model && r.concurrency === concurrency);
  if (measured.length === 0) return undefined;
  const pick = (key: 'itemsPerSecond' | 'p50' | 'cpuMsPerItem') => measured.map((r) => r[key] ?? NaN);
  const cpuByProcess = Object.fromEntries(Object.keys(measured[0].cpuByProcess ?? {}).map((p) => [p, Number(median(measured.map((r) => r.cpuByProcess![p])).toFixed(3))]));
  return {
    itemsPerSecond: median(pick('itemsPerSecond')), itemsRange: [Math.min(...pick('itemsPerSecond')), Math.max(...pick('itemsPerSecond'))],
    p50: median(pick('p50')), p50Range: [Math.min(...pick('p50')), Math.max(...pick('p50'))],
    cpuMsPerItem: median(pick('cpuMsPerItem')), cpuByProcess,
  };
}

const started = new Date();
log(`infermesh benchmark ${started.toISOString()} on ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${durationMs / 1000} s per measurement, ${rounds} rounds`);
const scratch = await mkdtemp(join(tmpdir(), 'infermesh-bench-'));
const inputs = {} as Inputs;
const elements = {} as Record<ModelName, Buffer[]>;
for (const model of MODELS) {
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

const noBatching = await repositoryWithoutBatching();
const local = await inProcess(elements);
const plain = await rest(elements);
const main = await mesh(MESH, inputs);
const unbatched = await mesh(NO_BATCHING, inputs, { repository: noBatching });
const exported = await mesh(TRACES_EXPORTED, inputs, { traces: true });
const untraced = await mesh(TRACING_OFF, inputs, { env: { OTEL_TRACES_SAMPLER: 'always_off' } });
// As `npm start` runs it since the trust work: mutual TLS between services, a NATS user per service.
const certs = issueDevCertificates(join(scratch, 'certs'), (['router', 'worker', 'preprocessor', 'monitor'] as const).map((role) => ({ stem: role, identities: [{ role, name: role === 'worker' ? 'worker-0' : role }] })));
const secured = await mesh(SECURED, inputs, { secured: { natsAuth: true, serviceEnv: (service) => meshTlsSettings(certs, service) } });
const live = serverLive(main.running, main.pids);
const systems = [local, plain, main, unbatched, exported, untraced, secured, live];

try {
  // The sweep behind the chart.
  for (const model of MODELS) for (const system of [local, plain, main]) for (const concurrency of LEVELS) await measure(system, model, concurrency, 0);
  // The targets, in interleaved rounds.
  const plan: [System, ModelName, number][] = [
    [local, 'text-direction', 16], [plain, 'text-direction', 16], [main, 'text-direction', 16], [unbatched, 'text-direction', 16],
    [exported, 'text-direction', 16], [untraced, 'text-direction', 16],
    [secured, 'text-direction', 16],
    [live, 'iris', 1], [main, 'iris', 1], [secured, 'iris', 1],
    [plain, 'iris', 64], [main, 'iris', 64], [unbatched, 'iris', 64], [exported, 'iris', 64], [untraced, 'iris', 64], [secured, 'iris', 64],
  ];
  for (let round = 1; round <= rounds; round++) for (const [system, model, concurrency] of plan) await measure(system, model, concurrency, round);
} finally {
  for (const system of systems) await system.close();
  await rm(noBatching, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
}

const targetRows = targets();
const output = values.output ? fromCaller(values.output) : join(report ?? join(ROOT, 'bench/results'), report ? 'results.json' : `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
await mkdir(join(output, '..'), { recursive: true });
await writeFile(output, `${JSON.stringify({ started: started.toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, durationMs, rounds, rows, targets: targetRows }, null, 2)}\n`);
log(`\nwrote ${output}`);
if (report) {
  const colours: Record<string, string> = { [MESH]: '#d62728', [IN_PROCESS]: '#1f77b4', [REST]: '#2ca02c' };
  const panels: Panel[] = MODELS.map((model) => ({
    title: model,
    series: [MESH, IN_PROCESS, REST].map((system) => ({
      label: system, colour: colours[system],
      points: rows.filter((r) => r.round === 0 && r.model === model && r.system === system).map((r) => ({ concurrency: r.concurrency, itemsPerSecond: r.itemsPerSecond })),
    })),
  }));
  const chart = join(report, 'throughput.svg');
  await writeFile(chart, throughputSvg(`items/s against concurrency, ${cpus().length} cores, ${started.toISOString().slice(0, 10)}`, panels));
  log(`wrote ${chart}`);
}
log(`\nmedians of ${rounds} interleaved rounds (range in brackets)`);
log('| system | model | c | items/s | p50 ms | CPU ms/item |\n| --- | --- | ---: | ---: | ---: | ---: |');
for (const [system, model, concurrency] of [[IN_PROCESS, 'text-direction', 16], [REST, 'text-direction', 16], [MESH, 'text-direction', 16], [NO_BATCHING, 'text-direction', 16], [TRACES_EXPORTED, 'text-direction', 16], [TRACING_OFF, 'text-direction', 16], [SECURED, 'text-direction', 16], [SERVER_LIVE, 'iris', 1], [MESH, 'iris', 1], [SECURED, 'iris', 1], [REST, 'iris', 64], [MESH, 'iris', 64], [NO_BATCHING, 'iris', 64], [TRACES_EXPORTED, 'iris', 64], [TRACING_OFF, 'iris', 64], [SECURED, 'iris', 64]] as const) {
  const s = summary(system, model, concurrency);
  if (s) log(`| ${system} | ${model} | ${concurrency} | ${s.itemsPerSecond.toFixed(1)} [${s.itemsRange.map((v) => v.toFixed(0)).join('–')}] | ${s.p50.toFixed(3)} [${s.p50Range.map((v) => v.toFixed(3)).join('–')}] | ${s.cpuMsPerItem.toFixed(2)} |`);
}
log('\n| target | measured (medians) | goal | met |\n| --- | --- | --- | --- |');
for (const t of targetRows) log(`| ${t.measure} | ${t.measured} | ${t.goal} | ${t.met ? 'yes' : 'no'} |`);

function targets() {
  const out: { measure: string; measured: string; goal: string; met: boolean; perRound: number[] }[] = [];
  /** The ratio in each round (each round measures both sides minutes apart at most), and of the medians. */
  const ratio = (a: [string, ModelName, number, 'itemsPerSecond' | 'p50'], b: [string, ModelName, number, 'itemsPerSecond' | 'p50']) => {
    const perRound: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const x = rows.find((r) => r.round === round && r.system === a[0] && r.model === a[1] && r.concurrency === a[2]);
      const y = rows.find((r) => r.round === round && r.system === b[0] && r.model === b[1] && r.concurrency === b[2]);
      if (x && y) perRound.push(x[a[3]] / y[b[3]]);
    }
    const sa = summary(a[0], a[1], a[2]);
    const sb = summary(b[0], b[1], b[2]);
    return { perRound, a: sa?.[a[3]] ?? NaN, b: sb?.[b[3]] ?? NaN };
  };
  const add = (measure: string, r: ReturnType<typeof ratio>, unit: string, goal: string, met: (v: number) => boolean) => {
    const value = median(r.perRound);
    out.push({ measure, measured: `${r.a.toFixed(unit === 'ms' ? 3 : 1)} / ${r.b.toFixed(unit === 'ms' ? 3 : 1)}${unit === 'ms' ? ' ms' : ''}; per round ${r.perRound.map((v) => v.toFixed(2)).join(', ')} → **${value.toFixed(2)}**`, goal, met: met(value), perRound: r.perRound });
  };
  add('text-direction c=16: mesh / in-process limit (batch 1)', ratio([MESH, 'text-direction', 16, 'itemsPerSecond'], [IN_PROCESS, 'text-direction', 16, 'itemsPerSecond']), 'items', '≥ 0.8', (v) => v >= 0.8);
  add('text-direction c=16: mesh / plain REST server', ratio([MESH, 'text-direction', 16, 'itemsPerSecond'], [REST, 'text-direction', 16, 'itemsPerSecond']), 'items', '≥ 1.0', (v) => v >= 1);
  add('iris row c=1: mesh p50 / bare ServerLive round trip', ratio([MESH, 'iris', 1, 'p50'], [SERVER_LIVE, 'iris', 1, 'p50']), 'ms', '≤ 2.5', (v) => v <= 2.5);
  add('iris row c=64: mesh / plain REST server', ratio([MESH, 'iris', 64, 'itemsPerSecond'], [REST, 'iris', 64, 'itemsPerSecond']), 'items', '≥ 0.15', (v) => v >= 0.15);
  add('iris row c=64: batching on / off', ratio([MESH, 'iris', 64, 'itemsPerSecond'], [NO_BATCHING, 'iris', 64, 'itemsPerSecond']), 'items', '≥ 2', (v) => v >= 2);
  add('text-direction c=16: tracing exported / off (the cost of tracing)', ratio([TRACES_EXPORTED, 'text-direction', 16, 'itemsPerSecond'], [TRACING_OFF, 'text-direction', 16, 'itemsPerSecond']), 'items', 'report', () => true);
  add('text-direction c=16: tracing on, not exported (npm start) / off', ratio([MESH, 'text-direction', 16, 'itemsPerSecond'], [TRACING_OFF, 'text-direction', 16, 'itemsPerSecond']), 'items', 'report', () => true);
  add('text-direction c=16: mutual TLS + NATS users / plaintext (the cost of trust)', ratio([SECURED, 'text-direction', 16, 'itemsPerSecond'], [MESH, 'text-direction', 16, 'itemsPerSecond']), 'items', 'report', () => true);
  add('iris row c=1: p50 with mutual TLS + NATS users / plaintext', ratio([SECURED, 'iris', 1, 'p50'], [MESH, 'iris', 1, 'p50']), 'ms', 'report', () => true);
  add('iris row c=64: mutual TLS + NATS users / plaintext', ratio([SECURED, 'iris', 64, 'itemsPerSecond'], [MESH, 'iris', 64, 'itemsPerSecond']), 'items', 'report', () => true);
  const cpu = summary(MESH, 'text-direction', 16);
  if (cpu) out.push({ measure: 'CPU per text-direction image, all processes (ms)', measured: `${Object.entries(cpu.cpuByProcess).map(([p, ms]) => `${p} ${ms}`).join(' + ')} = **${cpu.cpuMsPerItem.toFixed(2)}**`, goal: '≤ 6', met: cpu.cpuMsPerItem <= 6, perRound: [] });
  return out;
}
