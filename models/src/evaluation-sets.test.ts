import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVALUATION_LABELS_FILE, EVALUATION_ROWS_FILE, evaluationLabels, irisEvaluationRows, renderEvaluationLine, TEXT_STYLES, textDirectionEvaluationLines } from './evaluation-sets.js';
import { IRIS_FEATURES, trainIris } from './iris.js';
import { modelEvaluationDir } from './paths.js';

describe('iris evaluation set', () => {
  it('is the committed rows.jsonl: the 30 held-out rows, 10 per species, in cm with their label', async () => {
    const text = irisEvaluationRows(trainIris());
    expect(await readFile(join(modelEvaluationDir('iris'), EVALUATION_ROWS_FILE), 'utf8')).toBe(text);
    const rows = text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows).toHaveLength(30);
    expect(Object.keys(rows[0]).sort()).toEqual([...IRIS_FEATURES, 'label'].sort());
    const perClass: Record<string, number> = {};
    for (const row of rows) perClass[String(row.label)] = (perClass[String(row.label)] ?? 0) + 1;
    expect(perClass).toEqual({ setosa: 10, versicolor: 10, virginica: 10 });
  });

  it('holds none of the rows the model was trained on', () => {
    const training = trainIris();
    const key = (row: object) => JSON.stringify(row);
    const trained = new Set(training.trainFeatures.map(key));
    // Iris has a few duplicate measurements across rows; none of them straddles the split here.
    expect(training.heldOutRows.filter((row) => trained.has(key(row)))).toEqual([]);
  });
});

describe('text-direction evaluation set', () => {
  const lines = textDirectionEvaluationLines();

  it('covers every style, four sizes, one to eight words and both classes about equally', () => {
    expect(lines).toHaveLength(200);
    expect(new Set(lines.map((l) => l.style))).toEqual(new Set(Object.keys(TEXT_STYLES)));
    expect(new Set(lines.map((l) => l.scale))).toEqual(new Set([3, 4, 5, 6]));
    const words = lines.map((l) => l.text.split(' ').length);
    expect([Math.min(...words), Math.max(...words)]).toEqual([1, 8]);
    const rotated = lines.filter((l) => l.label === 'rotated_180').length;
    expect(rotated).toBeGreaterThan(80);
    expect(rotated).toBeLessThan(120);
  });

  it('is the committed labels.jsonl and images, byte for byte', async () => {
    const dir = modelEvaluationDir('text-direction');
    expect(await readFile(join(dir, EVALUATION_LABELS_FILE), 'utf8')).toBe(evaluationLabels(lines));
    expect((await readdir(dir)).filter((f) => f.endsWith('.png')).sort()).toEqual(lines.map((l) => l.file).sort());
    for (const line of lines) expect((await readFile(join(dir, line.file))).equals(await renderEvaluationLine(line)), line.file).toBe(true);
  });
});
