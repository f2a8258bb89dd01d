/**
 * What the REST API costs against gRPC on the same mesh: the same requests through
 * @infermesh/client over gRPC (router port) and over REST (the router's HTTP port; JSON tensors,
 * and Triton's binary-data extension for an image, the client's 'auto'), for iris rows (small,
 * the router's per-request cost shows) and text-direction images (the model's cost shows), at
 * two concurrencies, in interleaved rounds. Per measurement: requests/s, latency p50/p99, and the
 * router's CPU per request (utime + stime from /proc/<pid>/stat before and after).
 *
 * Usage: npm run bench:protocols -w @infermesh/bench -- [--duration 8] [--levels 1,16]
 *        [--rounds 3] [--report docs/benchmarks/DIR]
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, tensor, type InferenceClient, type InferRequest } from '@infermesh/client';
import { ROOT, startMesh } from '@infermesh/testing';
import { closedLoop } from 'infermesh-cli/load';
import { summarize } from 'infermesh-cli/percentiles';
import { cpuMs, median, roundOptions } from './side-by-side.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    levels: { type: 'string', default: '1,16' },
    rounds: { type: 'string', default: '3' },
    report: { type: 'string' },
  },
});
const { durationMs, rounds, levels, report } = roundOptions(values);

interface Row { workload: string; protocol: string; concurrency: number; round: number; requests: number; errors: number; requestsPerS: number; p50Ms: number; p99Ms: number; routerCpuMsPerRequest: number }

const IRIS_ROW = JSON.stringify({ sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 });
const image = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
const WORKLOADS: { name: string; request: InferRequest }[] = [
  { name: 'iris row', request: { model: 'iris', inputs: [tensor.bytes('row', [1], [IRIS_ROW])] } },
  { name: 'text-direction image', request: { model: 'text-direction', inputs: [tensor.bytes('image', [1], [image])] } },
];

const mesh = await startMesh({ traces: false });
const router = mesh.service('router').process.pid!;
const clients: [string, InferenceClient][] = [['gRPC', connect(mesh.routerAddress)], ['REST', connect(mesh.routerHttpUrl)]];
try {
  // Warm both paths, and check they answer alike.
  for (const { request } of WORKLOADS) {
    const [viaGrpc, viaRest] = await Promise.all(clients.map(([, client]) => client.infer(request)));
    const flat = (r: typeof viaGrpc) => JSON.stringify(r.outputs.map((o) => [o.name, o.datatype, o.shape, Array.from(o.data as ArrayLike<unknown>, String)]));
    if (flat(viaGrpc) !== flat(viaRest)) throw new Error(`${request.model}: gRPC and REST answers differ`);
  }
  console.log('gRPC and REST answer alike for both workloads');

  const rows: Row[] = [];
  for (const { name, request } of WORKLOADS) {
    for (const concurrency of levels) {
      for (let round = 1; round <= rounds; round++) {
        for (const [protocol, client] of clients) {
          const before = cpuMs(router);
          const result = await closedLoop(async () => void (await client.infer(request)), concurrency, { durationMs, maxRequests: 0 });
          const cpu = cpuMs(router) - before;
          const stats = summarize(result.latenciesMs);
          const row: Row = {
            workload: name, protocol, concurrency, round, requests: result.latenciesMs.length, errors: result.errors,
            requestsPerS: result.latenciesMs.length / (result.elapsedMs / 1000), p50Ms: stats.p50, p99Ms: stats.p99,
            routerCpuMsPerRequest: cpu / Math.max(1, result.latenciesMs.length),
          };
          if (result.errors) console.log(`  ${protocol}: ${result.errors} errors, first: ${result.firstError}`);
          console.log(`${name.padEnd(21)} c=${String(concurrency).padEnd(3)} round ${round}  ${protocol.padEnd(4)} ${row.requestsPerS.toFixed(1).padStart(7)} req/s  p50 ${row.p50Ms.toFixed(2)} ms  p99 ${row.p99Ms.toFixed(2)} ms  router CPU ${row.routerCpuMsPerRequest.toFixed(3)} ms/req`);
          rows.push(row);
        }
      }
    }
  }

  console.log('\nmedian of rounds:');
  for (const { name } of WORKLOADS) {
    for (const concurrency of levels) {
      for (const [protocol] of clients) {
        const mine = rows.filter((r) => r.workload === name && r.protocol === protocol && r.concurrency === concurrency);
        console.log(`${name.padEnd(21)} c=${String(concurrency).padEnd(3)} ${protocol.padEnd(4)} ${median(mine.map((r) => r.requestsPerS)).toFixed(1).padStart(7)} req/s  p50 ${median(mine.map((r) => r.p50Ms)).toFixed(2)} ms  p99 ${median(mine.map((r) => r.p99Ms)).toFixed(2)} ms  router CPU ${median(mine.map((r) => r.routerCpuMsPerRequest)).toFixed(3)} ms/req`);
      }
    }
  }
  if (report) {
    await mkdir(report, { recursive: true });
    const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
    await writeFile(join(report, 'results.json'), `${JSON.stringify({ machine, durationMs, rounds, levels, rows }, null, 2)}\n`);
    console.log(`\nwrote ${join(report, 'results.json')}`);
  }
} finally {
  for (const [, client] of clients) client.close();
  await mesh.stop();
}
