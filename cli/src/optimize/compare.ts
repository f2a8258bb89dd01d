/**
 * Original against optimized, in this process with onnxruntime-node, as the worker serves them
 * (pipeline prelude prepended, graph optimization 'all', the CPU provider): top-class agreement
 * and accuracy on the sample items, and latency at fixed batch sizes.
 *
 * Latency runs alternate between the two models, so a noisy neighbour on a shared machine slows
 * both alike instead of whichever ran second.
 */
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { preparedModel, type ModelConfig } from '@infermesh/worker';
import { summarize } from '../bench/percentiles.js';
import { classesOf, type SampleSet } from './samples.js';

export interface LatencyFigures {
  batch: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ModelFigures {
  bytes: number;
  latency: LatencyFigures[];
  /** Correct top classes over the labelled items; null when the items have no labels. */
  accuracy: number | null;
}

export interface Comparison {
  samples: { source: string; items: number; labelled: number };
  /** The output whose top class is compared. */
  output: string;
  original: ModelFigures;
  optimized: ModelFigures;
  /** Items whose top class is the same in both versions. */
  agreement: { same: number; items: number; rate: number };
  /** The largest difference of any value of `output` between the versions. */
  maxAbsDifference: number;
  runs: number;
  warmup: number;
  threads: number;
}

export interface CompareOptions {
  batches?: readonly number[];
  /** Timed runs per model and batch size. */
  runs?: number;
  warmup?: number;
  /**
   * onnxruntime's intra-op threads per session. One by default: with the default (every core)
   * two sessions and whatever else runs on the machine fight for cores, and p99 measures that.
   */
  threads?: number;
}

export const DEFAULT_BATCHES = [1, 8] as const;
export const DEFAULT_RUNS = 100;
export const DEFAULT_WARMUP = 10;

type Feeds = Record<string, ort.Tensor>;

/** The tensors of the items at `indices`, as one batch. */
function feedsOf(config: ModelConfig, samples: SampleSet, indices: readonly number[]): Feeds {
  const feeds: Feeds = {};
  for (const input of samples.inputs) {
    const size = input.itemShape.reduce((a, b) => a * b, 1);
    const data = input.type === 'uint8' ? new Uint8Array(indices.length * size) : new Float32Array(indices.length * size);
    indices.forEach((item, n) => data.set(input.data.subarray(item * size, (item + 1) * size), n * size));
    // A model without batching (max_batch_size 0) takes one item, without a batch dimension.
    const shape = config.max_batch_size > 0 ? [indices.length, ...input.itemShape] : input.itemShape;
    feeds[input.name] = new ort.Tensor(input.type, data, shape);
  }
  return feeds;
}

async function servedSession(config: ModelConfig, onnx: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(preparedModel(config, onnx), { graphOptimizationLevel: 'all', executionProviders: ['cpu'], intraOpNumThreads: threads, logSeverityLevel: 3 });
}

function argmax(values: Float32Array, start: number, length: number): number {
  let best = 0;
  for (let i = 1; i < length; i++) if (values[start + i] > values[start + best]) best = i;
  return best;
}

/** The compared output's values for every item, in batches the model accepts. */
async function outputsOf(session: ort.InferenceSession, config: ModelConfig, samples: SampleSet, output: string): Promise<Float32Array[]> {
  const batch = Math.max(1, Math.min(8, config.max_batch_size));
  const perItem: Float32Array[] = [];
  for (let start = 0; start < samples.count; start += batch) {
    const indices = Array.from({ length: Math.min(batch, samples.count - start) }, (_, n) => start + n);
    const result = (await session.run(feedsOf(config, samples, indices), [output]))[output];
    if (result.type !== 'float32') throw new Error(`output '${output}' is ${result.type}: only float32 outputs are compared`);
    const values = result.data as Float32Array;
    const size = values.length / indices.length;
    for (let n = 0; n < indices.length; n++) perItem.push(values.slice(n * size, (n + 1) * size));
  }
  return perItem;
}

async function latencies(sessions: readonly ort.InferenceSession[], config: ModelConfig, samples: SampleSet, batch: number, runs: number, warmup: number): Promise<number[][]> {
  const feeds = feedsOf(config, samples, Array.from({ length: batch }, (_, n) => n % samples.count));
  const times = sessions.map(() => [] as number[]);
  for (let run = -warmup; run < runs; run++) {
    for (const [s, session] of sessions.entries()) {
      const start = performance.now();
      await session.run(feeds);
      if (run >= 0) times[s].push(performance.now() - start);
    }
  }
  return times;
}

/** Compares `optimized` with `original` (both model.onnx bytes of `config`'s model) on `samples`. */
export async function compareModels(config: ModelConfig, original: Uint8Array, optimized: Uint8Array, samples: SampleSet, options: CompareOptions = {}): Promise<Comparison> {
  const runs = options.runs ?? DEFAULT_RUNS;
  const warmup = options.warmup ?? DEFAULT_WARMUP;
  const threads = options.threads ?? 1;
  const batches = (options.batches ?? DEFAULT_BATCHES).filter((b) => b === 1 || b <= config.max_batch_size);
  if (samples.count === 0) throw new Error('no sample items to compare on');
  const output = classesOf(config)?.output ?? config.outputs.find((o) => o.datatype === 'FP32')?.name;
  if (!output) throw new Error(`model '${config.name}' has no FP32 output to compare`);

  const sessions = [await servedSession(config, original, threads), await servedSession(config, optimized, threads)];
  try {
    const [before, after] = [await outputsOf(sessions[0], config, samples, output), await outputsOf(sessions[1], config, samples, output)];
    let same = 0;
    let maxAbsDifference = 0;
    const correct = [0, 0];
    let labelled = 0;
    for (let item = 0; item < samples.count; item++) {
      const [a, b] = [before[item], after[item]];
      const [top0, top1] = [argmax(a, 0, a.length), argmax(b, 0, b.length)];
      if (top0 === top1) same++;
      for (let i = 0; i < a.length; i++) maxAbsDifference = Math.max(maxAbsDifference, Math.abs(a[i] - b[i]));
      const label = samples.labels[item];
      if (label === undefined) continue;
      labelled++;
      if (top0 === label) correct[0]++;
      if (top1 === label) correct[1]++;
    }
    const latency: LatencyFigures[][] = [[], []];
    for (const batch of batches) {
      const times = await latencies(sessions, config, samples, batch, runs, warmup);
      times.forEach((t, s) => {
        const { p50, p99 } = summarize(t);
        latency[s].push({ batch, p50Ms: p50, p99Ms: p99 });
      });
    }
    const figures = (s: number, bytes: number): ModelFigures => ({ bytes, latency: latency[s], accuracy: labelled > 0 ? correct[s] / labelled : null });
    return {
      samples: { source: samples.source, items: samples.count, labelled }, output,
      original: figures(0, original.length), optimized: figures(1, optimized.length),
      agreement: { same, items: samples.count, rate: same / samples.count }, maxAbsDifference, runs, warmup, threads,
    };
  } finally {
    await Promise.all(sessions.map((s) => s.release()));
  }
}
