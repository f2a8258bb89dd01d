/**
 * onnxruntime alone, per execution provider: does a session start on it, and how many
 * items per second does the model run at each batch size. Provider list from argv
 * (default webgpu,cpu); no fallback, so a provider that is not there says so.
 *   node bench/dist/provider-bench.js models/text-direction/1/model.onnx 3,48,192 webgpu,cpu
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';

const [modelPath = 'models/text-direction/1/model.onnx', dims = '3,48,192', providers = 'webgpu,cpu', batches = '1,8,32'] = process.argv.slice(2);
const itemShape = dims.split(',').map(Number);
const model = await readFile(modelPath);
console.log(JSON.stringify({ backends: ort.listSupportedBackends() }));
for (const provider of providers.split(',')) {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model, { executionProviders: [provider as 'cpu'], graphOptimizationLevel: 'all', logSeverityLevel: 2 });
  } catch (error) {
    console.log(JSON.stringify({ provider, started: false, error: (error as Error).message }));
    continue;
  }
  for (const batch of batches.split(',').map(Number)) {
    const count = batch * itemShape.reduce((a, b) => a * b, 1);
    const input = new ort.Tensor('float32', Float32Array.from({ length: count }, () => Math.random() * 2 - 1), [batch, ...itemShape]);
    const feeds = { [session.inputNames[0]]: input };
    for (let i = 0; i < 5; i++) await session.run(feeds);
    let runs = 0;
    const started = performance.now();
    while (performance.now() - started < 5000) {
      await session.run(feeds);
      runs++;
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(JSON.stringify({ provider, started: true, batch, runs, itemsPerSecond: Math.round((runs * batch) / seconds), msPerRun: Number(((seconds * 1000) / runs).toFixed(2)) }));
  }
  await session.release();
}
