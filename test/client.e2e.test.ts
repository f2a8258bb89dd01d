/**
 * @infermesh/client against the real mesh (router, preprocessor, worker, monitor as processes,
 * real onnxruntime on the shipped models), over gRPC and over the router's REST endpoint.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, InferenceError, tensor, type InferenceClient, type InferRequest, type StreamResult } from '@infermesh/client';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';

let mesh: Mesh;
let upright: Buffer;
let upsideDown: Buffer;

const VIRGINICA = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };
const SETOSA = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 };

/** iris takes rows as JSON text, one BYTES element per row. */
const irisRows = (rows: object[], id?: string): InferRequest => ({
  model: 'iris', id, inputs: [tensor.bytes('row', [rows.length], rows.map((r) => JSON.stringify(r)))],
});

async function collect(results: AsyncIterable<StreamResult>): Promise<StreamResult[]> {
  const all: StreamResult[] = [];
  for await (const r of results) all.push(r);
  return all;
}

beforeAll(async () => {
  mesh = await startMesh({ traces: false });
  upright = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
  upsideDown = await readFile(join(ROOT, 'models/text-direction/samples/upside-down.png'));
  const client = connect(mesh.routerAddress);
  for (let i = 0; i < 100 && !(await client.modelReady('text-direction')); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  client.close();
});

afterAll(async () => {
  await mesh?.stop();
});

/** The same cases over both protocols: the client hides which one is spoken. */
describe.each([
  ['gRPC', () => connect(mesh.routerAddress)],
  ['REST (router HTTP port)', () => connect(mesh.routerHttpUrl)],
])('@infermesh/client over %s against the mesh', (_protocol, open) => {
  let client: InferenceClient;
  beforeAll(() => {
    client = open();
  });
  afterAll(() => client?.close());

  it('sees the server live and ready and reads a model\'s metadata', async () => {
    expect(await client.serverLive()).toBe(true);
    expect(await client.serverReady()).toBe(true);
    expect(await client.modelReady('iris')).toBe(true);
    expect(await client.serverMetadata()).toMatchObject({ name: 'infermesh' });
    expect(await client.modelMetadata('iris')).toMatchObject({ name: 'iris', versions: expect.arrayContaining(['1']), inputs: [{ name: 'row', datatype: 'BYTES', shape: [-1] }] });
  });

  it('classifies iris rows sent as BYTES JSON, the label an INT64 tensor', async () => {
    const result = await client.infer(irisRows([VIRGINICA, SETOSA], 'two-rows'));
    expect(result).toMatchObject({ model: 'iris', version: '1', id: 'two-rows' });
    expect(Array.from(result.output('label').data as BigInt64Array)).toEqual([2n, 0n]);
    expect(result.output('label').shape).toEqual([2]);
  });

  it('gives the same probabilities for the FP32 features tensor as for the row', async () => {
    const fromRow = await client.infer(irisRows([VIRGINICA]));
    const fromTensor = await client.infer({
      model: 'iris',
      inputs: [tensor.fp32('features', [1, 4], [VIRGINICA.sepal_length, VIRGINICA.sepal_width, VIRGINICA.petal_length, VIRGINICA.petal_width])],
    });
    const probabilities = fromTensor.output('probabilities').data as Float32Array;
    expect(probabilities).toBeInstanceOf(Float32Array);
    expect(Array.from(probabilities)).toEqual(Array.from(fromRow.output('probabilities').data as Float32Array));
    expect(Math.max(...probabilities)).toBeGreaterThan(0.9);
  });

  it('sends PNG images as BYTES (binary, not UTF-8) and reads the text direction', async () => {
    const result = await client.infer({ model: 'text-direction', inputs: [tensor.bytes('image', [2], [upright, upsideDown])] });
    const softmax = result.outputs[0];
    expect(softmax).toMatchObject({ datatype: 'FP32', shape: [2, 2] });
    const [uprightUp, , , flippedRotated] = softmax.data as Float32Array;
    expect(uprightUp).toBeGreaterThan(0.9);
    expect(flippedRotated).toBeGreaterThan(0.9);
  });

  it('streams a set of requests within a window, a bad one failing alone', async () => {
    const requests = Array.from({ length: 24 }, (_, i) =>
      i === 5
        ? { model: 'iris', id: 'bad', inputs: [tensor.bytes('rows', [1], ['{}'])] }
        : irisRows([i % 2 ? SETOSA : VIRGINICA], `row-${i}`));
    const results = await collect(client.inferStream(requests, { window: 4 }));
    expect(results).toHaveLength(24);
    for (const r of results) {
      if (r.request.id === 'bad') {
        expect(r.ok).toBe(false);
        // Over gRPC the stream item's status comes from its message ("INVALID_ARGUMENT: ..."); over REST from the answer.
        if (!r.ok) expect(r.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^input 'rows'.*'row'|'row'.*'rows'/) });
        continue;
      }
      if (!r.ok) throw r.error;
      const index = Number(r.request.id!.slice(4));
      expect(r.result.id).toBe(r.request.id);
      expect(Array.from(r.result.output('label').data as BigInt64Array)).toEqual([index % 2 ? 0n : 2n]);
    }
  });

  it('answers an unknown model with NOT_FOUND and the router\'s message', async () => {
    const error = await client.infer({ ...irisRows([VIRGINICA]), model: 'no-such-model' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceError);
    expect(error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/model 'no-such-model' is not served/) });
  });

  it('reads the models\' statistics and the repository index', async () => {
    const stats = await client.modelStatistics('iris');
    expect(stats.length).toBeGreaterThan(0);
    expect(stats[0]).toMatchObject({ name: 'iris', inferenceCount: expect.any(Number) });
    expect((await client.repositoryIndex()).map((m) => m.name)).toEqual(expect.arrayContaining(['iris', 'text-direction']));
  });
});
