import { readFile } from 'node:fs/promises';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { IRIS_FEATURES, type IrisRow, evaluateIris, irisConfigYaml, trainIris } from './iris.js';
import { modelConfigFile, modelFile } from './paths.js';

interface IrisConfig {
  inputs: { name: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[]; labels?: string[] }[];
  preprocess: { tabular: { input: string; output: string; features: { name: string; mean: number; std: number }[] } };
  evaluation: { value: number; held_out_rows: number };
}

describe('iris model', () => {
  it('training reproduces the committed model.onnx and config.yaml byte for byte', async () => {
    const training = trainIris();
    const evaluation = await evaluateIris(training);
    expect(evaluation.rows).toBe(30);
    expect(evaluation.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(new Uint8Array(await readFile(modelFile('iris')))).toEqual(training.onnx);
    expect(await readFile(modelConfigFile('iris'), 'utf8')).toBe(irisConfigYaml(training, evaluation));
  });

  it('serves rows the way config.yaml describes', async () => {
    const config = parse(await readFile(modelConfigFile('iris'), 'utf8')) as IrisConfig;
    const { tabular } = config.preprocess;
    expect(tabular.features.map((f) => f.name)).toEqual([...IRIS_FEATURES]);
    expect(tabular.output).toBe(config.inputs[0].name);

    // One textbook flower per species, standardized as the preprocessor will.
    const rows: IrisRow[] = [
      { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
      { sepal_length: 6.4, sepal_width: 3.2, petal_length: 4.5, petal_width: 1.5 },
      { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 },
    ];
    const features = rows.flatMap((row) => tabular.features.map((f) => (row[f.name as keyof IrisRow] - f.mean) / f.std));
    const session = await ort.InferenceSession.create(modelFile('iris'));
    expect(session.outputNames).toEqual(config.outputs.map((o) => o.name));
    const out = await session.run({ features: new ort.Tensor('float32', Float32Array.from(features), [rows.length, 4]) });
    await session.release();

    const labels = config.outputs[0].labels ?? [];
    expect(Array.from(out.label.data as BigInt64Array, (i) => labels[Number(i)])).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(out.probabilities.dims).toEqual([3, 3]);
    expect(out.label.dims).toEqual([3]);
  });
});
