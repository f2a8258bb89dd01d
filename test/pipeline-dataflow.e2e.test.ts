/**
 * A dataflow pipeline declared in a model repository, every service its own process: iris
 * classifies rows (its worker preprocesses the JSON rows, as for any client), and a second
 * model, `species-group`, reads iris's probabilities and says setosa or not. The pipeline
 * `iris-grouped` chains them; a client that only knows the Open Inference Protocol calls it
 * over gRPC and REST, and its answers are checked against the two models called one after the
 * other by the client itself.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { stringify } from 'yaml';
import { connect, tensor, type InferenceClient } from '@infermesh/client';
import { buildLinearSoftmaxModel } from '@infermesh/testing';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';
import { grpc, inferenceClient } from './helpers/client.js';

/** A client of ModelConfig built from Triton's public protocol alone (not the mesh's proto/). */
const TRITON_PROTO = fileURLToPath(new URL('./fixtures/triton-repository-client.proto', import.meta.url));

const ROWS = [
  { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 },
  { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
  { sepal_length: 5.9, sepal_width: 3.0, petal_length: 4.2, petal_width: 1.5 },
];

/** Iris's probabilities [N, 3] → setosa or another species: a model of its own, served on its own too. */
const GROUP_CONFIG = {
  name: 'species-group',
  max_batch_size: 64,
  inputs: [{ name: 'probabilities', datatype: 'FP32', shape: [3] }],
  outputs: [{ name: 'scores', datatype: 'FP32', shape: [2], labels: ['setosa', 'other'] }, { name: 'group', datatype: 'INT64', shape: [] }],
  dynamic_batching: { max_queue_delay_microseconds: 0 },
};

const PIPELINE_CONFIG = {
  name: 'iris-grouped',
  platform: 'pipeline',
  description: 'Iris species, and whether a row is a setosa, from one row',
  inputs: [{ name: 'row', datatype: 'BYTES', shape: [-1] }],
  outputs: [
    { name: 'species', datatype: 'INT64', shape: [-1] },
    { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
    { name: 'group', datatype: 'INT64', shape: [-1] },
  ],
  pipeline: {
    steps: [
      { name: 'classify', model: 'iris', inputs: { row: 'row' }, outputs: { label: 'species', probabilities: 'probabilities' } },
      { name: 'group', model: 'species-group', inputs: { probabilities: 'probabilities' }, outputs: { group: 'group' } },
    ],
  },
};

let mesh: Mesh;
let repository: string;
let grpcClient: InferenceClient;
let restClient: InferenceClient;

const rowsTensor = (rows: readonly object[]) => tensor.bytes('row', [rows.length], rows.map((r) => JSON.stringify(r)));

beforeAll(async () => {
  repository = await mkdtemp(join(tmpdir(), 'infermesh-dataflow-'));
  await cp(join(ROOT, 'models', 'iris'), join(repository, 'iris'), { recursive: true });
  await mkdir(join(repository, 'species-group', '1'), { recursive: true });
  await writeFile(join(repository, 'species-group', '1', 'model.onnx'), buildLinearSoftmaxModel({
    inputName: 'probabilities', outputName: 'scores', labelName: 'group', weights: [[8, 0, 0], [0, 8, 8]], bias: [0, 0],
  }));
  await writeFile(join(repository, 'species-group', 'config.yaml'), stringify(GROUP_CONFIG));
  await mkdir(join(repository, 'iris-grouped', '1'), { recursive: true });
  await writeFile(join(repository, 'iris-grouped', 'config.yaml'), stringify(PIPELINE_CONFIG));
  // A pipeline whose second step takes a tensor nothing gives: refused when the worker reads it.
  const broken = structuredClone(PIPELINE_CONFIG);
  broken.name = 'iris-broken';
  broken.pipeline.steps[1].inputs = { probabilities: 'scores' };
  await mkdir(join(repository, 'iris-broken', '1'), { recursive: true });
  await writeFile(join(repository, 'iris-broken', 'config.yaml'), stringify(broken));
  mesh = await startMesh({ env: { MODEL_REPOSITORY: repository } });
  grpcClient = connect(mesh.routerAddress);
  restClient = connect(mesh.routerHttpUrl);
}, 120_000);

afterAll(async () => {
  grpcClient?.close();
  restClient?.close();
  await mesh?.stop();
  if (repository) await rm(repository, { recursive: true, force: true });
});

describe('a dataflow pipeline', () => {
  it('is described, listed and ready like a model', async () => {
    // Ready once the router has the worker's heartbeat (the router may serve before it, on a loaded machine).
    const until = Date.now() + 20_000;
    while (!(await grpcClient.modelReady('iris-grouped').catch(() => false)) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await grpcClient.modelReady('iris-grouped')).toBe(true);
    expect(await grpcClient.modelMetadata('iris-grouped')).toMatchObject({
      name: 'iris-grouped', platform: 'pipeline', versions: ['1'],
      inputs: [{ name: 'row', datatype: 'BYTES', shape: [-1] }],
      outputs: [{ name: 'species', datatype: 'INT64' }, { name: 'probabilities', datatype: 'FP32' }, { name: 'group', datatype: 'INT64' }],
    });
  });

  it('answers what the two models answer when a client chains them itself, over gRPC and REST', async () => {
    const direct = await grpcClient.infer({ model: 'iris', inputs: [rowsTensor(ROWS)] });
    const probabilities = direct.output('probabilities');
    const grouped = await grpcClient.infer({ model: 'species-group', inputs: [tensor.fp32('probabilities', probabilities.shape, probabilities.data as Float32Array)] });
    for (const client of [grpcClient, restClient]) {
      const result = await client.infer({ model: 'iris-grouped', id: 'rows-1', inputs: [rowsTensor(ROWS)] });
      expect(result).toMatchObject({ model: 'iris-grouped', version: '1', id: 'rows-1' });
      expect(result.outputs.map((o) => o.name)).toEqual(['species', 'probabilities', 'group']);
      expect(Array.from(result.output('species').data as BigInt64Array)).toEqual([2n, 0n, 1n]);
      expect(Array.from(result.output('species').data as BigInt64Array)).toEqual(Array.from(direct.output('label').data as BigInt64Array));
      expect(Array.from(result.output('probabilities').data as Float32Array)).toEqual(Array.from(probabilities.data as Float32Array));
      expect(Array.from(result.output('group').data as BigInt64Array)).toEqual([1n, 0n, 1n]);
      expect(Array.from(result.output('group').data as BigInt64Array)).toEqual(Array.from(grouped.output('group').data as BigInt64Array));
    }
  });

  it('runs only the steps the requested outputs need', async () => {
    const count = async () => (await grpcClient.modelStatistics('species-group'))[0]?.inferenceCount ?? 0;
    const before = await count();
    const result = await grpcClient.infer({ model: 'iris-grouped', inputs: [rowsTensor(ROWS)], outputs: [{ name: 'species' }] });
    expect(result.outputs.map((o) => o.name)).toEqual(['species']);
    await grpcClient.infer({ model: 'iris-grouped', inputs: [rowsTensor(ROWS)] });
    // The first request ran iris only; the second ran both steps: its rows at species-group (inference_count counts rows, as Triton's).
    expect(await count()).toBe(before + ROWS.length);
  });

  it('classifies an output by the model of its step, with that model\'s labels, unless a later step takes it as scores', async () => {
    const classified = await restClient.infer({ model: 'iris-grouped', inputs: [rowsTensor(ROWS)], outputs: [{ name: 'probabilities', classification: 1 }] });
    expect((classified.output('probabilities').data as Buffer[]).map((b) => String(b).replace(/^[\d.e-]+:/, ''))).toEqual(['2:virginica', '0:setosa', '1:versicolor']);
    const refused = await grpcClient.infer({ model: 'iris-grouped', inputs: [rowsTensor(ROWS)], outputs: [{ name: 'probabilities', classification: 1 }, { name: 'group' }] }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', message: "iris-grouped output 'probabilities' cannot be classified: step 'group' takes it as scores" });
  });

  it('answers a step\'s refusal with its status, naming the step, and goes on serving', async () => {
    const refused = await grpcClient.infer({ model: 'iris-grouped', inputs: [tensor.bytes('row', [1], ['{"sepal_length": 5}'])] }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^iris-grouped step 'classify' \(model iris\): input 'row': row 0 .*sepal_width/) });
    const unknown = await restClient.infer({ model: 'iris-grouped', inputs: [tensor.fp32('features', [1, 4], [1, 2, 3, 4])] }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'INVALID_ARGUMENT', message: "iris-grouped has no input 'features' (inputs: row)" });
    expect((await grpcClient.infer({ model: 'iris-grouped', inputs: [rowsTensor(ROWS.slice(0, 1))] })).output('group').data).toEqual(BigInt64Array.of(1n));
  });

  it('gives its steps as Triton\'s ensemble scheduling in ModelConfig, to a client built from Triton\'s proto and over REST', async () => {
    const definition = protoLoader.loadSync(TRITON_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const Service = (grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: typeof grpc.Client } }).inference.GRPCInferenceService;
    const triton = new Service(mesh.routerAddress, grpc.credentials.createInsecure()) as grpc.Client & { ModelConfig: (request: object, callback: (error: grpc.ServiceError | null, response: { config: Record<string, unknown> }) => void) => void };
    const { config } = await new Promise<{ config: Record<string, unknown> }>((resolve, reject) => triton.ModelConfig({ name: 'iris-grouped' }, (error, response) => (error ? reject(error) : resolve(response))));
    triton.close();
    const steps = [
      { model_name: 'iris', model_version: '-1', input_map: { row: 'row' }, output_map: { label: 'species', probabilities: 'probabilities' } },
      { model_name: 'species-group', model_version: '-1', input_map: { probabilities: 'probabilities' }, output_map: { group: 'group' } },
    ];
    expect(config).toMatchObject({ name: 'iris-grouped', platform: 'pipeline', backend: '', scheduling_choice: 'ensemble_scheduling', ensemble_scheduling: { step: steps } });
    const rest = await (await fetch(`${mesh.routerHttpUrl}/v2/models/iris-grouped/config`)).json() as Record<string, unknown>;
    expect(rest).toMatchObject({ platform: 'pipeline', ensemble_scheduling: { step: steps.map((step) => ({ ...step, model_version: -1 })) } });
    // The router's own OpenAPI document describes the answer.
    const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    ajv.addSchema(await (await fetch(`${mesh.routerHttpUrl}/v2/openapi.json`)).json() as object, 'openapi');
    const validate = ajv.compile({ $ref: 'openapi#/paths/~1v2~1models~1{name}~1config/get/responses/200/content/application~1json/schema' });
    expect(validate(rest), ajv.errorsText(validate.errors)).toBe(true);
  });

  it('lists a pipeline whose steps do not connect as unavailable, the reason naming the step\'s input', async () => {
    const broken = (await grpcClient.repositoryIndex()).find((m) => m.name === 'iris-broken');
    expect(broken).toMatchObject({ state: 'UNAVAILABLE', reason: expect.stringMatching(/pipeline\.steps\.1\.inputs\.probabilities: 'scores' is neither an input of the pipeline nor given by an earlier step/) });
  });

  it('traces a request as one tree: a span per step, each with its model\'s work at the worker under it', async () => {
    const traceId = randomBytes(16).toString('hex');
    const metadata = new grpc.Metadata();
    metadata.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
    const raw = inferenceClient(mesh.routerAddress);
    try {
      await raw.call('ModelInfer', { model_name: 'iris-grouped', inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(JSON.stringify(ROWS[0]))] } }] }, { metadata });
    } finally {
      raw.close();
    }
    const expected = ['infermesh-router: step classify', 'infermesh-router: step group', 'infermesh-worker: infer iris', 'infermesh-worker: infer species-group'];
    const named = (all: typeof mesh.otlp.spans) => all.filter((s) => s.traceId === traceId).map((s) => `${s.service}: ${s.name}`);
    const spans = (await mesh.otlp.waitFor((all) => expected.every((name) => named(all).includes(name)), 30_000)).filter((s) => s.traceId === traceId);
    const byName = (name: string) => spans.find((s) => s.name === name)!;
    const request = byName('inference.GRPCInferenceService/ModelInfer');
    expect(byName('step classify').parentSpanId).toBe(request.spanId);
    expect(byName('step group').parentSpanId).toBe(request.spanId);
    // The group step starts once classify has given the probabilities.
    expect(Number(byName('step group').startTimeUnixNano)).toBeGreaterThanOrEqual(Number(byName('step classify').endTimeUnixNano) - 1_000_000);
  });
});
