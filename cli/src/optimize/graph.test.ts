/** onnxruntime's graph optimization saved to a file, on small real models. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLinearSoftmaxModel } from '@infermesh/testing';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { optimizeGraph } from './graph.js';
import { decodeModel } from './onnx-model.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'optimize-graph-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function probabilities(model: Uint8Array | string, rows: number[][]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model as string);
  try {
    const x = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, rows[0].length]);
    return (await session.run({ x })).probabilities.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('optimizeGraph', () => {
  const original = buildLinearSoftmaxModel({ weights: [[1, -2, 0.5], [0.3, 0.1, -1]], bias: [0.2, -0.1] });

  it("saves the basic level's rewrite (MatMul + Add fused into Gemm) that computes the same", async () => {
    await writeFile(join(dir, 'linear.onnx'), original);
    await optimizeGraph(join(dir, 'linear.onnx'), join(dir, 'linear-basic.onnx'), 'basic');
    const saved = await readFile(join(dir, 'linear-basic.onnx'));
    expect(decodeModel(saved).graph!.node!.map((n) => n.opType)).toEqual(['Gemm', 'Softmax']);
    const rows = [[1, 2, 3], [-1, 0.5, 2]];
    expect(Array.from(await probabilities(saved, rows))).toEqual(Array.from(await probabilities(original, rows)).map((v) => expect.closeTo(v, 6)));
  });

  it('keeps only the operator sets the graph uses (onnxruntime writes every one it knows)', async () => {
    await writeFile(join(dir, 'linear.onnx'), original);
    await optimizeGraph(join(dir, 'linear.onnx'), join(dir, 'linear-pruned.onnx'), 'basic');
    const model = decodeModel(await readFile(join(dir, 'linear-pruned.onnx')));
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 13]]);
  });
});
