/**
 * What a dataflow pipeline costs against a client that makes the steps' calls itself:
 * `ocr-line` (each line image read by ocr-recognition and its direction told by text-direction,
 * both steps at once at the router) against the same two requests sent by the client to the
 * router at once (Promise.all), on the same generated line images, one line per request. At
 * each concurrency level the two are measured one after the other in interleaved rounds, so the
 * shared machine's drift hits both alike. Both answers hold the same tensors (checked once).
 *
 * Per measurement: lines/s, latency p50/p99, and the router's CPU per line (utime + stime from
 * /proc/<pid>/stat before and after): the pipeline decodes each step's answer at the router and
 * encodes the pipeline's, where a client's own requests pass the router as bytes.
 *
 * Usage: npm run bench:dataflow -w @infermesh/bench -- [--lines 48] [--duration 10]
 *        [--levels 1,8] [--rounds 3] [--report docs/benchmarks/DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, tensor, type InferResult } from '@infermesh/client';
import { renderTextImage } from '@infermesh/models';
import { closedLoop } from 'infermesh-cli/load';
import { summarize } from 'infermesh-cli/percentiles';
import { cpuMs, median, roundOptions } from './side-by-side.js';
import { mulberry32, startMesh } from '@infermesh/testing';

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '48' },
    duration: { type: 'string', default: '10' },
    levels: { type: 'string', default: '1,8' },
    rounds: { type: 'string', default: '3' },
    report: { type: 'string' },
  },
});
const lineCount = Number(values.lines);
if (!Number.isInteger(lineCount) || lineCount < 1 || lineCount > 1000) throw new RangeError(`--lines must be a whole number from 1 to 1000, got ${values.lines}`);
const { durationMs, rounds, levels, report } = roundOptions(values);

const PIPELINE = 'ocr-line pipeline';
const CLIENT = 'client: both models at once';
const WORDS = ['stream', 'garden', 'Hello', 'World', 'market', 'signal', 'level', '2026', '14.69', 'order', 'winter', 'text'];

interface Row { system: string; concurrency: number; round: number; lines: number; errors: number; linesPerS: number; p50Ms: number; p99Ms: number; routerCpuMsPerLine: number }

const random = mulberry32(7);
const lines = await Promise.all(Array.from({ length: lineCount }, (_, i) => {
  const words = Array.from({ length: 2 + Math.floor(random() * 4) }, () => WORDS[Math.floor(random() * WORDS.length)]);
  return renderTextImage(words.join(' '), { rotate180: i % 4 === 3 });
}));

const mesh = await startMesh({ traces: false });
const router = mesh.service('router').process.pid!;
const client = connect(mesh.routerAddress);
try {
  const image = (k: number) => [tensor.bytes('image', [1], [lines[k % lines.length]])];
  const viaPipeline = (k: number) => client.infer({ model: 'ocr-line', inputs: image(k) });
  const viaClient = (k: number) => Promise.all([client.infer({ model: 'ocr-recognition', inputs: image(k) }), client.infer({ model: 'text-direction', inputs: image(k) })]);

  // The same answer both ways, for every line.
  for (let k = 0; k < lines.length; k++) {
    const [piped, [read, direction]] = await Promise.all([viaPipeline(k), viaClient(k)]);
    const same = (a: InferResult, name: string, b: InferResult, other: string) => JSON.stringify(Array.from(a.output(name).data as ArrayLike<unknown>, String)) === JSON.stringify(Array.from(b.output(other).data as ArrayLike<unknown>, String));
    if (!same(piped, 'text', read, 'text') || !same(piped, 'score', read, 'score') || !same(piped, 'direction', direction, 'softmax_0.tmp_0')) throw new Error(`line ${k}: the pipeline's answer differs from the models'`);
  }
  console.log(`${lines.length} lines: the pipeline answers what the two models answer, for every line`);

  const rows: Row[] = [];
  for (const concurrency of levels) {
    for (let round = 1; round <= rounds; round++) {
      for (const [system, send] of [[PIPELINE, viaPipeline], [CLIENT, viaClient]] as const) {
        let next = 0;
        const before = cpuMs(router);
        const result = await closedLoop(async () => void (await send(next++)), concurrency, { durationMs, maxRequests: 0 });
        const cpu = cpuMs(router) - before;
        const stats = summarize(result.latenciesMs);
        const row: Row = {
          system, concurrency, round, lines: result.latenciesMs.length, errors: result.errors,
          linesPerS: result.latenciesMs.length / (result.elapsedMs / 1000), p50Ms: stats.p50, p99Ms: stats.p99,
          routerCpuMsPerLine: cpu / Math.max(1, result.latenciesMs.length),
        };
        if (result.errors) console.log(`  ${system}: ${result.errors} errors, first: ${result.firstError}`);
        console.log(`c=${concurrency} round ${round}  ${system.padEnd(28)} ${row.linesPerS.toFixed(1).padStart(6)} lines/s  p50 ${row.p50Ms.toFixed(1)} ms  p99 ${row.p99Ms.toFixed(1)} ms  router CPU ${row.routerCpuMsPerLine.toFixed(2)} ms/line`);
        rows.push(row);
      }
    }
  }

  console.log('\nmedian of rounds:');
  for (const concurrency of levels) {
    for (const system of [PIPELINE, CLIENT]) {
      const mine = rows.filter((r) => r.system === system && r.concurrency === concurrency);
      console.log(`c=${concurrency}  ${system.padEnd(28)} ${median(mine.map((r) => r.linesPerS)).toFixed(1).padStart(6)} lines/s  p50 ${median(mine.map((r) => r.p50Ms)).toFixed(1)} ms  p99 ${median(mine.map((r) => r.p99Ms)).toFixed(1)} ms  router CPU ${median(mine.map((r) => r.routerCpuMsPerLine)).toFixed(2)} ms/line`);
    }
  }
  if (report) {
    await mkdir(report, { recursive: true });
    const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
    await writeFile(join(report, 'results.json'), `${JSON.stringify({ machine, lines: lineCount, durationMs, rounds, levels, rows }, null, 2)}\n`);
    console.log(`\nwrote ${join(report, 'results.json')}`);
  }
} finally {
  client.close();
  await mesh.stop();
}
