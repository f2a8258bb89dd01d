import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MODEL_REPOSITORY_DIR } from '@infermesh/models';
import { defaultEvaluationPath, loadEvaluationSet } from './dataset.js';

const irisClasses = ['setosa', 'versicolor', 'virginica'];
const row = (label: string) => JSON.stringify({ sepal_length: 5, sepal_width: 3, petal_length: 1.5, petal_width: 0.2, label });
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'evaluation-set-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadEvaluationSet: rows', () => {
  it('sends each row without its label and keeps the label as a class index', async () => {
    const file = join(dir, 'rows.jsonl');
    await writeFile(file, `${row('virginica')}\n\n${row('setosa')}\r\n`);
    const set = await loadEvaluationSet(file, irisClasses);
    expect(set.kind).toBe('rows');
    expect(set.items.map((i) => i.label)).toEqual([2, 0]);
    expect(JSON.parse(set.items[0].input.toString())).toEqual({ sepal_length: 5, sepal_width: 3, petal_length: 1.5, petal_width: 0.2 });
    expect(set.items[1].id).toBe('rows.jsonl line 3');
  });

  it('names the line of a label that is not a class', async () => {
    const file = join(dir, 'rows.jsonl');
    await writeFile(file, `${row('setosa')}\n${row('rose')}\n`);
    await expect(loadEvaluationSet(file, irisClasses)).rejects.toThrow("rows.jsonl line 2: label 'rose' is not one of the model's classes (setosa, versicolor, virginica)");
  });

  it('names the line of a row without a label', async () => {
    const file = join(dir, 'rows.jsonl');
    await writeFile(file, '{"sepal_length": 5}\n');
    await expect(loadEvaluationSet(file, irisClasses)).rejects.toThrow('rows.jsonl line 1: no "label"');
  });

  it('refuses a file that is not .jsonl', async () => {
    const file = join(dir, 'rows.csv');
    await writeFile(file, 'a,b\n');
    await expect(loadEvaluationSet(file, irisClasses)).rejects.toThrow(/rows come as a \.jsonl file/);
  });
});

describe('loadEvaluationSet: images', () => {
  it('reads the images labels.jsonl lists, with their labels', async () => {
    await writeFile(join(dir, 'a.png'), 'png bytes');
    await writeFile(join(dir, 'labels.jsonl'), '{"file": "a.png", "label": "rotated_180"}\n');
    const set = await loadEvaluationSet(dir, ['upright', 'rotated_180']);
    expect(set).toMatchObject({ kind: 'images', items: [{ id: 'a.png', label: 1 }] });
    expect(set.items[0].input.toString()).toBe('png bytes');
  });

  it('refuses a file outside the set\'s folder', async () => {
    await mkdir(join(dir, 'set'));
    await writeFile(join(dir, 'secret.png'), 'x');
    await writeFile(join(dir, 'set', 'labels.jsonl'), '{"file": "../secret.png", "label": "upright"}\n');
    await expect(loadEvaluationSet(join(dir, 'set'), ['upright', 'rotated_180'])).rejects.toThrow(/is outside/);
  });

  it('names a listed image that is missing', async () => {
    await writeFile(join(dir, 'labels.jsonl'), '{"file": "gone.png", "label": "upright"}\n');
    await expect(loadEvaluationSet(dir, ['upright', 'rotated_180'])).rejects.toThrow('labels.jsonl line 1: no image gone.png');
  });
});

describe('the shipped evaluation sets', () => {
  it('iris: 30 labelled rows, found by default in models/iris/evaluation/', async () => {
    const path = await defaultEvaluationPath(MODEL_REPOSITORY_DIR, 'iris');
    const set = await loadEvaluationSet(path, irisClasses);
    expect(set.items).toHaveLength(30);
  });

  it('text-direction: 200 labelled images, found by default in models/text-direction/evaluation/', async () => {
    const path = await defaultEvaluationPath(MODEL_REPOSITORY_DIR, 'text-direction');
    const set = await loadEvaluationSet(path, ['upright', 'rotated_180']);
    expect(set.kind).toBe('images');
    expect(set.items).toHaveLength(200);
  });

  it('a model without a set is told to pass --data', async () => {
    await expect(defaultEvaluationPath(dir, 'iris')).rejects.toThrow(/model 'iris' has no labelled evaluation set .* pass --data/);
  });
});
