/**
 * The floor of two hops: iris rows at concurrency 1 through the mesh's router, against a
 * minimal pass-through router that does nothing but forward (raw bytes in, the same batch
 * stream to the same worker, the answer's bytes out: no validation, no records, no spans),
 * and a bare ServerLive round trip to the router. Interleaved rounds, medians.
 * Usage: node bench/dist/pass-through.js [--duration 3 --rounds 5]
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { contracts, encodeInferBatchRequest, inferenceService, readInferBatchResponse } from '@infermesh/contracts';
import { encodeBytesElements } from '@infermesh/tensor';
import { closedLoop } from 'infermesh-cli/load';
import { summarize } from 'infermesh-cli/percentiles';
import { freePort, startMesh, waitForPort } from '@infermesh/testing';

const identity = (bytes: Buffer) => bytes;

/** The pass-through: one stream to the worker, batches of one, answers matched by id. */
function serve(workerAddress: string, port: number): void {
  const worker = new grpc.Client(workerAddress, grpc.credentials.createInsecure());
  const stream = worker.makeBidiStreamRequest('/infermesh.v1.Worker/InferBatches', identity, identity);
  const waiting = new Map<number, grpc.sendUnaryData<Buffer>>();
  let next = 1;
  stream.on('data', (bytes: Buffer) => {
    const reply = readInferBatchResponse(bytes);
    const callback = waiting.get(reply.batchId);
    waiting.delete(reply.batchId);
    callback?.(null, reply.answers[0].response);
  });
  const server = new grpc.Server();
  const infer = inferenceService().ModelInfer as grpc.MethodDefinition<Buffer, Buffer>;
  server.addService({ ModelInfer: { ...infer, requestDeserialize: identity, responseSerialize: identity } }, {
    ModelInfer: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const id = next++;
      waiting.set(id, callback);
      stream.write(encodeInferBatchRequest('iris', '1', [{ request: call.request, queuedUs: 0, timeoutUs: 10_000_000, traceparent: '' }], id));
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), () => {});
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { duration: { type: 'string', default: '3' }, rounds: { type: 'string', default: '5' } } });
if (positionals[0] === 'serve') {
  serve(positionals[1], Number(positionals[2]));
} else {
  const durationMs = Number(values.duration) * 1000;
  const mesh = await startMesh({ traces: false, env: { LOG_LEVEL: 'info' } });
  const workerAddress = /"address":"([^"]+)"/.exec(mesh.service('worker-0').output())?.[1];
  if (!workerAddress) throw new Error('the worker did not log its address');
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve', workerAddress, String(port)], { stdio: 'inherit' });
  await waitForPort(port, 10_000);
  const Client = contracts().inference.GRPCInferenceService;
  const router = new Client(mesh.routerAddress, grpc.credentials.createInsecure());
  const passThrough = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const row = { modelName: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: ['1'] }], rawInputContents: [encodeBytesElements([Buffer.from('{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}')])] };
  const call = (client: InstanceType<typeof Client>, method: 'ServerLive' | 'ModelInfer') => () =>
    new Promise<void>((resolve, reject) => (method === 'ServerLive' ? client.ServerLive({}, (e) => (e ? reject(e) : resolve())) : client.ModelInfer(row, (e) => (e ? reject(e) : resolve()))));
  const cases: [string, () => Promise<void>][] = [
    ['bare ServerLive to the router', call(router, 'ServerLive')],
    ['iris row, minimal pass-through', call(passThrough, 'ModelInfer')],
    ['iris row, the router', call(router, 'ModelInfer')],
  ];
  for (const [, send] of cases) await closedLoop(send, 1, { durationMs: 1000, maxRequests: 0 });
  const p50s = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [name, send] of cases) p50s.get(name)!.push(summarize((await closedLoop(send, 1, { durationMs, maxRequests: 0 })).latenciesMs).p50);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const live = median(p50s.get(cases[0][0])!);
  for (const [name] of cases) {
    const p50 = median(p50s.get(name)!);
    console.log(`${name.padEnd(34)} p50 ${p50.toFixed(3)} ms  (${(p50 / live).toFixed(2)} × ServerLive; rounds ${p50s.get(name)!.map((v) => v.toFixed(3)).join(', ')})`);
  }
  router.close();
  passThrough.close();
  child.kill();
  await mesh.stop();
}
