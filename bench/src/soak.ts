/**
 * Worker memory under steady load: text-direction at concurrency 16 through the mesh for
 * `--minutes` (default 5), the worker's resident memory sampled every 15 s. Reports its
 * size after 1 minute and at the end.
 * Usage: npm run soak -w @infermesh/bench [-- --minutes 5]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { contracts, type ModelInferRequest } from '@infermesh/contracts';
import { encodeBytesElements } from '@infermesh/tensor';
import { closedLoop } from 'infermesh-cli/load';
import { startMesh } from '@infermesh/testing';
import { textImages } from './workloads.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '5' }, concurrency: { type: 'string', default: '16' } } });
const minutes = Number(values.minutes);
const concurrency = Number(values.concurrency);

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

const mesh = await startMesh({ workers: 1, traces: false, env: { LOG_LEVEL: 'info' }, workerEnv: { WORKER_INTRA_OP_THREADS: String(cpus().length) } });
const worker = mesh.service('worker-0').process.pid!;
const client = new (contracts().inference.GRPCInferenceService)(mesh.routerAddress, grpc.credentials.createInsecure());
const requests: ModelInferRequest[] = (await textImages()).map((png) => ({ modelName: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: ['1'] }], rawInputContents: [encodeBytesElements([png])] }));
let next = 0;
const send = () => new Promise<void>((resolve, reject) => client.ModelInfer(requests[next++ % requests.length], { deadline: Date.now() + 30_000 }, (error) => (error ? reject(error) : resolve())));
const samples: { second: number; rssMiB: number }[] = [];
const started = Date.now();
const sampler = setInterval(() => {
  const sample = { second: Math.round((Date.now() - started) / 1000), rssMiB: Number(rssMiB(worker).toFixed(1)) };
  samples.push(sample);
  console.log(JSON.stringify(sample));
}, 15_000);
const result = await closedLoop(send, concurrency, { durationMs: minutes * 60_000, maxRequests: 0 });
clearInterval(sampler);
client.close();
await mesh.stop();
const atOneMinute = samples.find((s) => s.second >= 60)?.rssMiB ?? NaN;
// Memory warms up (onnxruntime's arena and V8's heap grow to the batch sizes load brings);
// a leak keeps growing, so the second half of the run is the test.
const atHalf = samples.find((s) => s.second >= (minutes * 60) / 2)?.rssMiB ?? NaN;
const atEnd = samples.at(-1)?.rssMiB ?? NaN;
const percent = (from: number, to: number) => Number((((to - from) / from) * 100).toFixed(2));
console.log(JSON.stringify({
  minutes, concurrency, requests: result.latenciesMs.length, errors: result.errors,
  throughput: Number((result.latenciesMs.length / (result.elapsedMs / 1000)).toFixed(1)),
  workerRssMiBAfter1Minute: atOneMinute, workerRssMiBAtHalf: atHalf, workerRssMiBAtEnd: atEnd,
  growthPercent: percent(atOneMinute, atEnd), secondHalfGrowthPercent: percent(atHalf, atEnd),
}));
