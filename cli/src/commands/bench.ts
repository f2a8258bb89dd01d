/**
 * infermesh bench: a load generator in the spirit of Triton's perf_analyzer. A concurrency
 * sweep (closed loop) or request rates (open loop), each level bounded by a time window
 * and a request count. Prints throughput, client latency percentiles and the server's own
 * queue/compute split (from ModelStatistics), and writes JSON/CSV and an SVG chart.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { inferenceService } from '@infermesh/contracts';
import { encodeBytesElements, elementCount, ELEMENT_SIZE, isDatatype } from '@infermesh/tensor';
import type { ModelInferRequest, ModelMetadataResponse__Output, ModelStatisticsResponse__Output, GRPCInferenceServiceClient } from '@infermesh/contracts';
import { call, routerClient } from '../client.js';
import { closedLoop, openLoop, type LoadResult } from '../bench/load.js';
import { summarize } from '../bench/percentiles.js';
import { latencyThroughputSvg } from '../bench/chart.js';

export interface BenchOptions {
  address: string;
  model: string;
  version: string;
  images: string[];
  rows: string[];
  /** Random data for the model's own tensors, `batch` rows per request. */
  synthetic: boolean;
  /**
   * The tensors --synthetic fills ("name:DATATYPE:dims", dims without the batch dimension,
   * e.g. "features:FP32:4"); by default the inputs ModelMetadata lists, which for a model
   * with a pipeline is its BYTES input (images, rows) that random data cannot fill.
   */
  tensors?: string[];
  batch: number;
  concurrency: number[];
  rates: number[];
  durationMs: number;
  maxRequests: number;
  warmupMs: number;
  output?: string;
  chart?: string;
}

export interface LevelResult {
  mode: 'concurrency' | 'rate';
  level: number;
  requests: number;
  errors: number;
  throughput: number;
  itemsPerSecond: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  mean: number;
  serverQueueMs: number;
  serverComputeMs: number;
  avgBatchSize: number;
  firstError?: string;
}

async function buildRequests(client: GRPCInferenceServiceClient, options: BenchOptions): Promise<{ requests: ModelInferRequest[]; items: number }> {
  if (options.images.length) {
    const images = await Promise.all(options.images.map((f) => readFile(f)));
    return {
      requests: images.map((image) => ({ modelName: options.model, modelVersion: options.version, inputs: [{ name: 'image', datatype: 'BYTES', shape: ['1'] }], rawInputContents: [encodeBytesElements([image])] })),
      items: 1,
    };
  }
  if (options.rows.length) {
    return {
      requests: options.rows.map((row) => ({ modelName: options.model, modelVersion: options.version, inputs: [{ name: 'row', datatype: 'BYTES', shape: ['1'] }], rawInputContents: [encodeBytesElements([Buffer.from(row)])] })),
      items: 1,
    };
  }
  if (!options.synthetic) throw new Error('give --image, --row or --synthetic');
  const described = options.tensors?.length
    ? options.tensors.map(parseTensorSpec)
    : (await call<object, ModelMetadataResponse__Output>(client, client.ModelMetadata, { name: options.model, version: options.version })).inputs;
  const inputs = described.map((input) => {
    if (!isDatatype(input.datatype) || input.datatype === 'BYTES') {
      throw new Error(`--synthetic cannot fill ${input.datatype} input '${input.name}' with random data; name the model tensor to fill instead, e.g. --tensor features:FP32:4 (dimensions after the batch dimension)`);
    }
    const shape = input.shape.map((d, i) => (Number(d) === -1 ? (i === 0 ? options.batch : 1) : Number(d)));
    const count = elementCount(shape);
    const raw = input.datatype === 'FP32' ? Buffer.from(Float32Array.from({ length: count }, () => Math.random() * 2 - 1).buffer) : randomBytes(count * ELEMENT_SIZE[input.datatype]);
    return { tensor: { name: input.name, datatype: input.datatype, shape: shape.map(String) }, raw };
  });
  return {
    requests: [{ modelName: options.model, modelVersion: options.version, inputs: inputs.map((i) => i.tensor), rawInputContents: inputs.map((i) => i.raw) }],
    items: options.batch,
  };
}

/** "name:DATATYPE:d1,d2" → the tensor's metadata, with the batch dimension (-1) first. */
export function parseTensorSpec(spec: string): { name: string; datatype: string; shape: string[] } {
  const match = /^([^:]+):([A-Z0-9]+):(\d+(?:,\d+)*)?$/.exec(spec.trim());
  if (!match || !isDatatype(match[2])) throw new Error(`--tensor '${spec}' is not NAME:DATATYPE:DIMS (e.g. features:FP32:4 or x:UINT8:48,192,3)`);
  return { name: match[1], datatype: match[2], shape: ['-1', ...(match[3] ? match[3].split(',') : [])] };
}

interface ServerTotals {
  count: number;
  queueNs: number;
  computeNs: number;
  executions: number;
  items: number;
}

async function serverTotals(client: GRPCInferenceServiceClient, model: string): Promise<ServerTotals> {
  const response = await call<object, ModelStatisticsResponse__Output>(client, client.ModelStatistics, { name: model }).catch(() => ({ modelStats: [] }) as ModelStatisticsResponse__Output);
  const totals = { count: 0, queueNs: 0, computeNs: 0, executions: 0, items: 0 };
  for (const stats of response.modelStats) {
    totals.count += Number(stats.inferenceStats?.success?.count ?? 0);
    totals.queueNs += Number(stats.inferenceStats?.queue?.ns ?? 0);
    totals.computeNs += Number(stats.inferenceStats?.computeInfer?.ns ?? 0);
    totals.executions += Number(stats.executionCount);
    totals.items += Number(stats.inferenceCount);
  }
  return totals;
}

export async function runBench(options: BenchOptions, log: (line: string) => void = console.log): Promise<LevelResult[]> {
  const client = routerClient(options.address);
  try {
    const { requests, items } = await buildRequests(client, options);
    // Encoded once, like perf_analyzer's prepared inputs: the load generator should cost the
    // machine as little as it can, since it shares it with what it measures. Answers are decoded.
    const infer = inferenceService().ModelInfer as unknown as grpc.MethodDefinition<Buffer, unknown>;
    const encoded = requests.map((request) => (infer.requestSerialize as unknown as (r: ModelInferRequest) => Buffer)(request));
    let next = 0;
    const send = () =>
      new Promise<void>((resolve, reject) => {
        const bytes = encoded[next++ % encoded.length];
        client.makeUnaryRequest(infer.path, (b: Buffer) => b, infer.responseDeserialize, bytes, { deadline: Date.now() + 30_000 }, (error: grpc.ServiceError | null) => (error ? reject(error) : resolve()));
      });
    const levels: { mode: 'concurrency' | 'rate'; level: number }[] = options.rates.length
      ? options.rates.map((level) => ({ mode: 'rate' as const, level }))
      : options.concurrency.map((level) => ({ mode: 'concurrency' as const, level }));
    if (options.warmupMs > 0) await closedLoop(send, levels[0].mode === 'concurrency' ? levels[0].level : 4, { durationMs: options.warmupMs, maxRequests: 0 });
    const results: LevelResult[] = [];
    log(`${'level'.padEnd(14)}${'infer/s'.padStart(10)}${'items/s'.padStart(10)}${'p50 ms'.padStart(9)}${'p90 ms'.padStart(9)}${'p95 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'queue ms'.padStart(10)}${'compute ms'.padStart(12)}${'batch'.padStart(7)}${'errors'.padStart(8)}`);
    for (const { mode, level } of levels) {
      const before = await serverTotals(client, options.model);
      const window = { durationMs: options.durationMs, maxRequests: options.maxRequests };
      const run: LoadResult = mode === 'concurrency' ? await closedLoop(send, level, window) : await openLoop(send, level, window);
      const after = await serverTotals(client, options.model);
      const latency = summarize(run.latenciesMs);
      const served = Math.max(1, after.count - before.count);
      const result: LevelResult = {
        mode,
        level,
        requests: run.latenciesMs.length,
        errors: run.errors,
        throughput: run.latenciesMs.length / (run.elapsedMs / 1000),
        itemsPerSecond: (run.latenciesMs.length * items) / (run.elapsedMs / 1000),
        ...latency,
        serverQueueMs: (after.queueNs - before.queueNs) / served / 1e6,
        serverComputeMs: (after.computeNs - before.computeNs) / served / 1e6,
        avgBatchSize: (after.items - before.items) / Math.max(1, after.executions - before.executions),
        firstError: run.firstError,
      };
      results.push(result);
      const name = `${mode === 'concurrency' ? 'conc' : 'rate'} ${level}`;
      log(`${name.padEnd(14)}${result.throughput.toFixed(1).padStart(10)}${result.itemsPerSecond.toFixed(1).padStart(10)}${result.p50.toFixed(2).padStart(9)}${result.p90.toFixed(2).padStart(9)}${result.p95.toFixed(2).padStart(9)}${result.p99.toFixed(2).padStart(9)}${result.serverQueueMs.toFixed(2).padStart(10)}${result.serverComputeMs.toFixed(2).padStart(12)}${result.avgBatchSize.toFixed(1).padStart(7)}${String(result.errors).padStart(8)}`);
      if (run.firstError) log(`  first error: ${run.firstError}`);
    }
    if (options.output) await writeFile(options.output, options.output.endsWith('.csv') ? toCsv(results) : `${JSON.stringify({ model: options.model, results }, null, 2)}\n`);
    if (options.chart) {
      await writeFile(options.chart, latencyThroughputSvg(`${options.model}: latency against throughput`, results.map((r) => ({ label: `${r.mode === 'concurrency' ? 'c' : 'r'}${r.level}`, throughput: r.throughput, p50: r.p50, p99: r.p99 }))));
    }
    return results;
  } finally {
    client.close();
  }
}

function toCsv(results: readonly LevelResult[]): string {
  const columns = ['mode', 'level', 'requests', 'errors', 'throughput', 'itemsPerSecond', 'p50', 'p90', 'p95', 'p99', 'mean', 'serverQueueMs', 'serverComputeMs', 'avgBatchSize'] as const;
  return [columns.join(','), ...results.map((r) => columns.map((c) => (typeof r[c] === 'number' ? Number((r[c] as number).toFixed(4)) : r[c])).join(','))].join('\n') + '\n';
}
