/**
 * Evaluates one served model version through the mesh: every labelled item goes through the
 * router's public ModelInfer (Triton's classification extension names the top class), then a
 * timed closed-loop load of the set's inputs measures client latency at a given concurrency.
 */
import { createRequire } from 'node:module';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { inferenceService } from '@infermesh/contracts';
import type { GRPCInferenceServiceClient, ModelInferRequest, ModelInferResponse__Output, ModelMetadataResponse__Output, ServerMetadataResponse__Output } from '@infermesh/contracts';
import { decodeRaw, encodeBytesElements } from '@infermesh/tensor';
import { readModelConfig, type ModelConfig } from '@infermesh/worker';
import { call, routerClient } from '../client.js';
import { closedLoop } from '../bench/load.js';
import { summarize } from '../bench/percentiles.js';
import { classificationFigures, type ConfusionMatrix } from './metrics.js';
import { defaultEvaluationPath, loadEvaluationSet, type EvaluationSet } from './dataset.js';
import type { WorkerMemory } from './worker-memory.js';

export const EVALUATION_FILE = 'evaluation.json';
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const MAX_CONCURRENCY = 1024;
const MAX_LOAD_REQUESTS = 1_000_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** The latency load stops after this long even if fewer requests were sent (the report says how many were). */
const MAX_LOAD_MS = 10 * 60_000;

export class EvaluationError extends Error {}

export interface EvaluateOptions {
  /** The router, HOST:PORT. */
  address: string;
  model: string;
  /** The version to evaluate; default the newest version the mesh serves. */
  version?: string;
  /** The model repository: where config.yaml (classes), model.onnx (size) and the default set are, and where evaluation.json goes. */
  repository: string;
  /** The labelled set; default `<repository>/<model>/evaluation/`. */
  data?: string;
  /** Requests in flight, for the accuracy pass and the latency load (default 4). */
  concurrency?: number;
  /** Requests of the latency load (default 200), cycling through the set's inputs. */
  requests?: number;
  /** Progress lines (nothing by default). */
  log?: (line: string) => void;
  /**
   * Reads the memory of the workers serving the version, after the latency load (infermesh
   * evaluate listens to their heartbeats on NATS); without it the report says not measured.
   */
  workerMemory?: (model: string, version: string) => Promise<WorkerMemory>;
}

export interface EvaluationReport {
  model: string;
  version: string;
  /** ISO time the evaluation finished. */
  date: string;
  dataset: { path: string; kind: 'rows' | 'images'; items: number };
  /** The output classified, and accuracy over every item of the set (an item the mesh failed counts as wrong). */
  accuracy: number;
  correct: number;
  items: number;
  errors: number;
  firstError?: string;
  output: string;
  confusion: ConfusionMatrix;
  latency: { concurrency: number; requests: number; errors: number; p50Ms: number; p99Ms: number; meanMs: number; throughput: number };
  /** Bytes of `<repository>/<model>/<version>/model.onnx`; null when the repository has no such file. */
  modelBytes: number | null;
  /**
   * Resident memory of the workers serving the version, as their heartbeats report it: the whole
   * worker process (every model it holds), not the model alone; or why it was not measured.
   */
  workerMemory: WorkerMemory;
  mesh: { router: string; server: string; serverVersion: string; cli: string };
}

const CLI_VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** The classifier output of a config: the one output with `labels`. */
function classifierOutput(config: ModelConfig, model: string): { name: string; classes: string[] } {
  const labelled = config.outputs.filter((o) => o.labels?.length);
  if (labelled.length !== 1) throw new EvaluationError(`model '${model}' is not a classifier infermesh evaluate can score: its config.yaml has ${labelled.length} outputs with "labels" (one is needed)`);
  return { name: labelled[0].name, classes: labelled[0].labels! };
}

async function readConfig(repository: string, model: string): Promise<ModelConfig> {
  if (!MODEL_NAME.test(model)) throw new EvaluationError(`'${model.slice(0, 64)}' is not a model name (letters, digits, "-" and "_")`);
  const known = await stat(join(repository, model, 'config.yaml')).then((s) => s.isFile(), () => false);
  if (!known) throw new EvaluationError(`unknown model '${model}': no ${model}/config.yaml in the repository ${repository} (--repository DIR)`);
  return readModelConfig(join(repository, model));
}

async function servedMetadata(client: GRPCInferenceServiceClient, model: string, version: string): Promise<ModelMetadataResponse__Output> {
  try {
    return await call<{ name: string; version: string }, ModelMetadataResponse__Output>(client, client.ModelMetadata, { name: model, version });
  } catch (error) {
    const e = error as grpc.ServiceError;
    if (e.code === 5 /* NOT_FOUND */) throw new EvaluationError(`the mesh at the router does not serve model '${model}'${version ? ` version ${version}` : ''}: ${e.details}`);
    throw error;
  }
}

/** The raw input clients send: the model's one BYTES input (a pipeline's image or row). */
function rawInputName(metadata: ModelMetadataResponse__Output, set: EvaluationSet): string {
  const bytes = metadata.inputs.filter((i) => i.datatype === 'BYTES');
  if (bytes.length === 1) return bytes[0].name;
  return set.kind === 'images' ? 'image' : 'row';
}

/** "score:index:label" → the index. */
function topClass(response: ModelInferResponse__Output, output: string): number {
  const at = response.outputs.findIndex((o) => o.name === output);
  if (at < 0) throw new Error(`the answer has no output '${output}'`);
  const values = decodeRaw(output, 'BYTES', response.outputs[at].shape.map(Number), response.rawOutputContents[at]);
  const first = Array.isArray(values) ? values[0]?.toString('utf8') : undefined;
  const index = Number(first?.split(':')[1]);
  if (!Number.isInteger(index)) throw new Error(`output '${output}' is not a classification ("score:index:label"): ${first?.slice(0, 80)}`);
  return index;
}

/** Runs `task` over `items` with at most `concurrency` at once, results in order. */
async function pool<T, R>(items: readonly T[], concurrency: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]);
    }
  }));
  return results;
}

export async function evaluateVersion(options: EvaluateOptions): Promise<EvaluationReport> {
  const concurrency = options.concurrency ?? 4;
  const loadRequests = options.requests ?? 200;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) throw new EvaluationError(`concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}, got ${concurrency}`);
  if (!Number.isInteger(loadRequests) || loadRequests < 1 || loadRequests > MAX_LOAD_REQUESTS) throw new EvaluationError(`requests must be a whole number from 1 to ${MAX_LOAD_REQUESTS}, got ${loadRequests}`);
  if (options.version !== undefined && options.version !== '' && !/^\d+$/.test(options.version)) throw new EvaluationError(`--version must be a version number, got '${options.version.slice(0, 64)}'`);
  const log = options.log ?? (() => {});

  // Everything local is checked before the mesh is asked anything.
  const config = await readConfig(options.repository, options.model);
  const { name: output, classes } = classifierOutput(config, options.model);
  const set = await loadEvaluationSet(options.data ?? (await defaultEvaluationPath(options.repository, options.model)), classes);

  const client = routerClient(options.address);
  try {
    const metadata = await servedMetadata(client, options.model, options.version ?? '');
    const version = options.version || [...metadata.versions].sort((a, b) => Number(a) - Number(b)).at(-1);
    if (!version) throw new EvaluationError(`the mesh serves no version of model '${options.model}'`);
    if (!metadata.versions.includes(version)) throw new EvaluationError(`the mesh does not serve version ${version} of model '${options.model}' (versions served: ${metadata.versions.join(', ')})`);
    const server = await call<object, ServerMetadataResponse__Output>(client, client.ServerMetadata, {});
    const inputName = rawInputName(metadata, set);
    const request = (input: Buffer): ModelInferRequest => ({
      modelName: options.model,
      modelVersion: version,
      inputs: [{ name: inputName, datatype: 'BYTES', shape: ['1'] }],
      rawInputContents: [encodeBytesElements([input])],
      // Triton's classification extension: the worker answers "score:index:label" for the top class.
      outputs: [{ name: output, parameters: { classification: { int64Param: '1' } } }],
    });

    log(`${options.model} version ${version}: classifying ${set.items.length} ${set.kind} from ${set.path} (concurrency ${concurrency})`);
    let errors = 0;
    let firstError: string | undefined;
    const predicted = await pool(set.items, concurrency, async (item) => {
      try {
        return topClass(await call<ModelInferRequest, ModelInferResponse__Output>(client, client.ModelInfer, request(item.input), REQUEST_TIMEOUT_MS), output);
      } catch (error) {
        errors++;
        firstError ??= `${item.id}: ${(error as grpc.ServiceError).details ?? (error as Error).message}`;
        return -1;
      }
    });
    const figures = classificationFigures(classes, set.items.map((item, i) => ({ actual: item.label, predicted: predicted[i] })));

    // The latency load sends the same requests, encoded once as bench does, so the client spends
    // as little as it can of a machine it may share with the mesh.
    log(`${options.model} version ${version}: ${loadRequests} timed requests at concurrency ${concurrency}`);
    const infer = inferenceService().ModelInfer as unknown as grpc.MethodDefinition<Buffer, unknown>;
    const serialize = infer.requestSerialize as unknown as (r: ModelInferRequest) => Buffer;
    const encoded = set.items.map((item) => serialize(request(item.input)));
    let next = 0;
    const send = () =>
      new Promise<void>((resolve, reject) => {
        const bytes = encoded[next++ % encoded.length];
        client.makeUnaryRequest(infer.path, (b: Buffer) => b, infer.responseDeserialize, bytes, { deadline: Date.now() + REQUEST_TIMEOUT_MS }, (error: grpc.ServiceError | null) => (error ? reject(error) : resolve()));
      });
    const load = await closedLoop(send, concurrency, { durationMs: MAX_LOAD_MS, maxRequests: loadRequests });
    const latency = summarize(load.latenciesMs);

    const modelBytes = await stat(join(options.repository, options.model, version, 'model.onnx')).then((s) => s.size, () => null);
    const workerMemory: WorkerMemory = options.workerMemory
      ? await options.workerMemory(options.model, version)
      : { measured: false, reason: 'this run did not read the workers\' heartbeats (infermesh evaluate does)' };
    return {
      model: options.model,
      version,
      date: new Date().toISOString(),
      dataset: { path: set.path, kind: set.kind, items: set.items.length },
      accuracy: figures.accuracy,
      correct: figures.correct,
      items: figures.items,
      errors,
      ...(firstError ? { firstError } : {}),
      output,
      confusion: figures.confusion,
      latency: {
        concurrency,
        requests: load.latenciesMs.length + load.errors,
        errors: load.errors,
        p50Ms: latency.p50,
        p99Ms: latency.p99,
        meanMs: latency.mean,
        throughput: load.latenciesMs.length / (load.elapsedMs / 1000),
      },
      modelBytes,
      workerMemory,
      mesh: { router: options.address, server: server.name, serverVersion: server.version, cli: CLI_VERSION },
    };
  } finally {
    client.close();
  }
}

/** `<repository>/<model>/<version>/evaluation.json`, written whole or not at all. Returns the path. */
export async function writeEvaluation(repository: string, report: EvaluationReport): Promise<string> {
  const dir = join(repository, report.model, report.version);
  if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) throw new EvaluationError(`the repository ${repository} has no folder ${report.model}/${report.version} to write ${EVALUATION_FILE} into (--repository DIR)`);
  const path = join(dir, EVALUATION_FILE);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
  return path;
}
