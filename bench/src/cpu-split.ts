/**
 * Where the CPU goes: runs one load level through the mesh and reports the CPU time each
 * process spent per request (user + system, from /proc), the load generator included.
 * Usage: node bench/dist/cpu-split.js [--duration 10]
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runBench } from 'infermesh-cli/bench';
import { startMesh } from '@infermesh/testing';
import { textImages, irisRows } from './workloads.js';

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' } } });
const durationMs = Number(values.duration) * 1000;
const TICKS_PER_SECOND = 100;

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
}

const mesh = await startMesh({ workers: 1, traces: false, env: { LOG_LEVEL: 'info' } });
const processes = [
  ...mesh.services.map((s) => ({ name: s.name, pid: s.process.pid! })),
  { name: 'nats-server', pid: mesh.nats.process.pid! },
  { name: 'load generator (client)', pid: process.pid },
];
const dir = await mkdtemp(join(tmpdir(), 'infermesh-cpu-'));
const images = await Promise.all((await textImages()).map(async (png, i) => {
  const file = join(dir, `${i}.png`);
  await writeFile(file, png);
  return file;
}));
const scenarios = [
  { label: 'text-direction, images, concurrency 16', model: 'text-direction', images, rows: [], synthetic: false, concurrency: 16 },
  { label: 'iris, rows, concurrency 64', model: 'iris', images: [], rows: irisRows().map(String), synthetic: false, concurrency: 64 },
  { label: 'iris, model tensors (no preprocessing), concurrency 64', model: 'iris', images: [], rows: [], synthetic: true, tensors: ['features:FP32:4'], concurrency: 64 },
];
for (const scenario of scenarios) {
  const before = processes.map((p) => cpuMs(p.pid));
  const [result] = await runBench({
    address: mesh.routerAddress, model: scenario.model, version: '', images: scenario.images, rows: scenario.rows, synthetic: scenario.synthetic, tensors: scenario.tensors, batch: 1,
    concurrency: [scenario.concurrency], rates: [], durationMs, maxRequests: 0, warmupMs: 0,
  }, () => {});
  const spent = processes.map((p, i) => cpuMs(p.pid) - before[i]);
  const total = spent.reduce((a, b) => a + b, 0);
  console.log(`\n${scenario.label}: ${result.throughput.toFixed(1)} requests/s, ${result.requests} requests, p50 ${result.p50.toFixed(2)} ms`);
  console.log('| process | CPU ms per request | share |');
  console.log('| --- | ---: | ---: |');
  processes.forEach((p, i) => console.log(`| ${p.name} | ${(spent[i] / result.requests).toFixed(3)} | ${((spent[i] / total) * 100).toFixed(0)}% |`));
  console.log(`| all | ${(total / result.requests).toFixed(3)} | 100% |`);
}
await mesh.stop();
