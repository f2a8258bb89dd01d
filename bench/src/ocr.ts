/**
 * The OCR benchmark: pages per second through the mesh's `ocr` pipeline (detection → crop →
 * text direction → recognition, as `npm start` runs the mesh: one worker, onnxruntime threads on
 * every core) against @gutenye/ocr-node in this one process (the same PaddleOCR v4 models, run as
 * its README shows: `Ocr.create()`, `ocr.detect(path)`), on the same generated pages
 * (models/src/ocr-pages.ts), side by side: at each concurrency level the two systems are measured
 * one after the other, in interleaved rounds, so the shared machine's drift hits both alike.
 *
 * Per measurement: pages/s, latency p50/p99, and CPU per page of every process (utime + stime
 * from /proc/<pid>/stat before and after). For the mesh, the workers' ModelStatistics of each
 * step's model over the measurement: requests, batches, queue and compute time, where the time
 * goes.
 *
 * Usage: npm run bench:ocr -w @infermesh/bench -- [--pages 40] [--duration 20] [--levels 1,8]
 *        [--rounds 2] [--seed 11] [--repository DIR (default models/)] [--report docs/benchmarks/DIR]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import Ocr from '@gutenye/ocr-node';
import { connect, tensor, type ModelStatistics } from '@infermesh/client';
import { renderOcrPages, writeOcrPages } from '@infermesh/models';
import { ROOT, startMesh } from '@infermesh/testing';
import { closedLoop, type LoadResult } from 'infermesh-cli/load';
import { summarize } from 'infermesh-cli/percentiles';
import { cpuMs, median, roundOptions } from './side-by-side.js';

const { values } = parseArgs({
  options: {
    pages: { type: 'string', default: '40' },
    duration: { type: 'string', default: '20' },
    levels: { type: 'string', default: '1,8' },
    rounds: { type: 'string', default: '2' },
    seed: { type: 'string', default: '11' },
    repository: { type: 'string' },
    report: { type: 'string' },
  },
});
const count = Number(values.pages);
if (!Number.isInteger(count) || count < 1 || count > 1000) throw new RangeError(`--pages must be a whole number from 1 to 1000, got ${values.pages}`);
const { durationMs, rounds, levels, report } = roundOptions(values);
/** Another model repository (a changed config to compare), else the shipped models/. */
const repository = values.repository === undefined ? join(ROOT, 'models') : resolve(process.env.INIT_CWD ?? process.cwd(), values.repository);
const log = (line: string) => console.log(line);

const MESH = 'mesh (ocr pipeline)';
const REFERENCE = '@gutenye/ocr-node in-process';
/** The pipeline and its step models, as the workers' statistics name them. */
const STEP_MODELS = ['ocr-detection', 'text-direction', 'ocr-recognition'];

interface StepFigures {
  model: string;
  requests: number;
  batches: number;
  /** Items per batch at the worker (lines for the line models, pages for detection). */
  itemsPerBatch: number;
  queueMsPerRequest: number;
  /** Input (preprocessing), inference and output (post-processing) per batch. */
  inputMsPerBatch: number;
  inferMsPerBatch: number;
  outputMsPerBatch: number;
}

interface Row {
  system: string;
  concurrency: number;
  round: number;
  pages: number;
  errors: number;
  firstError?: string;
  pagesPerSecond: number;
  p50: number;
  p99: number;
  cpuMsPerPage: number;
  cpuByProcess: Record<string, number>;
  steps?: StepFigures[];
}

interface System {
  name: string;
  pids: Record<string, number>;
  send(): Promise<void>;
  statistics?(): Promise<ModelStatistics[]>;
}

function stepFigures(before: ModelStatistics[], after: ModelStatistics[]): StepFigures[] {
  const sum = (stats: ModelStatistics[], model: string) => {
    const mine = stats.filter((s) => s.name === model);
    const total = (pick: (s: ModelStatistics) => number) => mine.reduce((a, s) => a + pick(s), 0);
    return {
      requests: total((s) => s.inferenceStats.success.count),
      items: total((s) => s.inferenceCount),
      batches: total((s) => s.executionCount),
      queueNs: total((s) => s.inferenceStats.queue.ns),
      inputNs: total((s) => s.inferenceStats.computeInput.ns),
      inferNs: total((s) => s.inferenceStats.computeInfer.ns),
      outputNs: total((s) => s.inferenceStats.computeOutput.ns),
    };
  };
  return STEP_MODELS.map((model) => {
    const a = sum(before, model);
    const b = sum(after, model);
    const requests = b.requests - a.requests;
    const batches = b.batches - a.batches;
    const per = (ns: number, n: number) => Number((ns / 1e6 / Math.max(1, n)).toFixed(2));
    return {
      model, requests, batches,
      itemsPerBatch: Number(((b.items - a.items) / Math.max(1, batches)).toFixed(2)),
      queueMsPerRequest: per(b.queueNs - a.queueNs, requests),
      inputMsPerBatch: per(b.inputNs - a.inputNs, batches),
      inferMsPerBatch: per(b.inferNs - a.inferNs, batches),
      outputMsPerBatch: per(b.outputNs - a.outputNs, batches),
    };
  });
}

const rows: Row[] = [];

async function measure(system: System, concurrency: number, round: number): Promise<Row> {
  await closedLoop(system.send, concurrency, { durationMs: Math.min(3000, durationMs / 4), maxRequests: 0 }); // warm-up at this level
  const statsBefore = await system.statistics?.();
  const before = Object.fromEntries(Object.entries(system.pids).map(([name, pid]) => [name, cpuMs(pid)]));
  const run: LoadResult = await closedLoop(system.send, concurrency, { durationMs, maxRequests: 0 });
  const pages = Math.max(1, run.latenciesMs.length);
  const cpuByProcess = Object.fromEntries(Object.entries(system.pids).map(([name, pid]) => [name, Number(((cpuMs(pid) - before[name]) / pages).toFixed(1))]));
  const statsAfter = await system.statistics?.();
  const latency = summarize(run.latenciesMs);
  const row: Row = {
    system: system.name, concurrency, round, pages: run.latenciesMs.length, errors: run.errors, firstError: run.firstError,
    pagesPerSecond: Number((run.latenciesMs.length / (run.elapsedMs / 1000)).toFixed(2)), p50: Number(latency.p50.toFixed(1)), p99: Number(latency.p99.toFixed(1)),
    cpuByProcess, cpuMsPerPage: Number(Object.values(cpuByProcess).reduce((a, b) => a + b, 0).toFixed(1)),
    steps: statsBefore && statsAfter ? stepFigures(statsBefore, statsAfter) : undefined,
  };
  rows.push(row);
  log(`r${round} ${row.system.padEnd(30)} c=${String(concurrency).padEnd(3)} ${row.pagesPerSecond.toFixed(2).padStart(7)} pages/s  p50 ${row.p50.toFixed(0).padStart(5)} ms  p99 ${row.p99.toFixed(0).padStart(5)} ms  cpu ${row.cpuMsPerPage.toFixed(0)} ms/page (${Object.entries(cpuByProcess).map(([p, ms]) => `${p} ${ms.toFixed(0)}`).join(', ')})${row.errors ? `  ERRORS ${row.errors}: ${row.firstError}` : ''}`);
  for (const s of row.steps ?? []) log(`     ${s.model.padEnd(16)} ${String(s.requests).padStart(5)} requests ${String(s.batches).padStart(5)} batches of ${s.itemsPerBatch.toFixed(1).padStart(5)}  queue ${s.queueMsPerRequest.toFixed(1)} ms/request  per batch: input ${s.inputMsPerBatch.toFixed(1)} + infer ${s.inferMsPerBatch.toFixed(1)} + output ${s.outputMsPerBatch.toFixed(1)} ms`);
  return row;
}

const started = new Date();
log(`infermesh OCR benchmark ${started.toISOString()} on ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${count} pages (seed ${values.seed}), ${durationMs / 1000} s per measurement, concurrency ${levels.join(', ')}, ${rounds} round(s)`);
const scratch = await mkdtemp(join(tmpdir(), 'infermesh-ocr-bench-'));
const pages = await renderOcrPages({ count, seed: Number(values.seed) });
const files = await writeOcrPages(join(scratch, 'pages'), pages);
const lines = pages.reduce((n, p) => n + p.lines.length, 0);
log(`models ${repository}`);
log(`pages: ${pages.length}, ${lines} lines (${(lines / pages.length).toFixed(1)} per page), ${pages.filter((p) => p.lines.some((l) => l.rotated180)).length} with lines upside down; widths ${Math.min(...pages.map((p) => p.width))}–${Math.max(...pages.map((p) => p.width))} px`);

const reference = await Ocr.create();
let nextReference = 0;
const referenceSystem: System = {
  name: REFERENCE,
  pids: { 'this process': process.pid },
  send: async () => {
    await reference.detect(files[nextReference++ % files.length]);
  },
};

const mesh = await startMesh({
  workers: 1,
  traces: false,
  env: { LOG_LEVEL: 'info', MODEL_REPOSITORY: repository },
  // As `npm start` runs one CPU worker: onnxruntime's intra-op threads on every core.
  workerEnv: { WORKER_INTRA_OP_THREADS: String(cpus().length) },
});
const client = connect(mesh.routerAddress);
let nextMesh = 0;
const meshSystem: System = {
  name: MESH,
  pids: Object.fromEntries([
    ...mesh.services.map((s) => [s.name === 'worker-0' ? 'worker' : s.name, s.process.pid!] as const),
    ['nats-server', mesh.nats.process.pid!] as const,
    ['load generator', process.pid] as const,
  ]),
  send: async () => {
    await client.infer({ model: 'ocr', inputs: [tensor.bytes('image', [1], [pages[nextMesh++ % pages.length].png])] }, { timeoutMs: 120_000 });
  },
  statistics: () => client.modelStatistics(),
};

try {
  // The first pages wait for the worker's first heartbeat and for every step's model.
  for (let i = 0; i < 600 && !(await client.modelReady('ocr').catch(() => false)); i++) await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; ; i++) {
    try {
      await meshSystem.send();
      break;
    } catch (error) {
      if (i >= 100) throw error;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  for (let round = 1; round <= rounds; round++) {
    for (const concurrency of levels) {
      await measure(referenceSystem, concurrency, round);
      await measure(meshSystem, concurrency, round);
    }
  }
} finally {
  client.close();
  await mesh.stop();
  await rm(scratch, { recursive: true, force: true });
}

const summary = levels.map((concurrency) => {
  const of = (system: string) => rows.filter((r) => r.system === system && r.concurrency === concurrency);
  const ratios = Array.from({ length: rounds }, (_, i) => {
    const m = rows.find((r) => r.system === MESH && r.concurrency === concurrency && r.round === i + 1);
    const r = rows.find((x) => x.system === REFERENCE && x.concurrency === concurrency && x.round === i + 1);
    return m && r ? m.pagesPerSecond / r.pagesPerSecond : NaN;
  });
  const pick = (system: string, key: 'pagesPerSecond' | 'p50' | 'p99' | 'cpuMsPerPage') => median(of(system).map((r) => r[key]));
  return { concurrency, ratios, ratio: median(ratios), mesh: { pagesPerSecond: pick(MESH, 'pagesPerSecond'), p50: pick(MESH, 'p50'), p99: pick(MESH, 'p99'), cpuMsPerPage: pick(MESH, 'cpuMsPerPage') }, reference: { pagesPerSecond: pick(REFERENCE, 'pagesPerSecond'), p50: pick(REFERENCE, 'p50'), p99: pick(REFERENCE, 'p99'), cpuMsPerPage: pick(REFERENCE, 'cpuMsPerPage') } };
});

log(`\nmedians of ${rounds} interleaved round(s)`);
log('| c | system | pages/s | p50 ms | p99 ms | CPU ms/page |\n| ---: | --- | ---: | ---: | ---: | ---: |');
for (const s of summary) {
  log(`| ${s.concurrency} | ${REFERENCE} | ${s.reference.pagesPerSecond.toFixed(2)} | ${s.reference.p50.toFixed(0)} | ${s.reference.p99.toFixed(0)} | ${s.reference.cpuMsPerPage.toFixed(0)} |`);
  log(`| ${s.concurrency} | ${MESH} | ${s.mesh.pagesPerSecond.toFixed(2)} | ${s.mesh.p50.toFixed(0)} | ${s.mesh.p99.toFixed(0)} | ${s.mesh.cpuMsPerPage.toFixed(0)} |`);
}
log('\n| target | measured | goal | met |\n| --- | --- | --- | --- |');
for (const s of summary) {
  const goal = s.concurrency >= 8 ? '≥ 1.0' : 'report';
  const met = s.concurrency >= 8 ? (s.ratio >= 1 ? 'yes' : 'no') : '–';
  log(`| c=${s.concurrency}: mesh / @gutenye/ocr-node pages/s | per round ${s.ratios.map((r) => r.toFixed(2)).join(', ')} → **${s.ratio.toFixed(2)}** | ${goal} | ${met} |`);
}

const output = join(report ?? join(ROOT, 'bench/results'), report ? 'results.json' : `ocr-${started.toISOString().replace(/[:.]/g, '-')}.json`);
await mkdir(join(output, '..'), { recursive: true });
await writeFile(output, `${JSON.stringify({ started: started.toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, pages: count, lines, seed: Number(values.seed), durationMs, rounds, rows, summary }, null, 2)}\n`);
log(`\nwrote ${output}`);
