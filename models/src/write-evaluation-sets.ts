/**
 * `npm run evaluation-sets -w @infermesh/models`: writes the shipped models' labelled evaluation
 * sets, models/iris/evaluation/rows.jsonl and models/text-direction/evaluation/ (all committed;
 * the run is deterministic and offline).
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { EVALUATION_LABELS_FILE, EVALUATION_ROWS_FILE, evaluationLabels, irisEvaluationRows, renderEvaluationLine, textDirectionEvaluationLines } from './evaluation-sets.js';
import { trainIris } from './iris.js';
import { MODEL_REPOSITORY_DIR, modelEvaluationDir } from './paths.js';

/** Paths are printed relative to the workspace root, wherever npm runs the script from. */
const REPO_ROOT = dirname(MODEL_REPOSITORY_DIR);

const irisDir = modelEvaluationDir('iris');
await mkdir(irisDir, { recursive: true });
const rows = irisEvaluationRows(trainIris());
await writeFile(join(irisDir, EVALUATION_ROWS_FILE), rows);
console.log(`iris: wrote ${relative(REPO_ROOT, join(irisDir, EVALUATION_ROWS_FILE))} (${rows.split('\n').length - 1} rows)`);

const textDir = modelEvaluationDir('text-direction');
await mkdir(textDir, { recursive: true });
// Images of an earlier, longer set would linger and be listed without labels: start clean.
for (const name of await readdir(textDir)) if (name.endsWith('.png')) await rm(join(textDir, name));
const lines = textDirectionEvaluationLines();
let bytes = 0;
for (const line of lines) {
  const png = await renderEvaluationLine(line);
  bytes += png.length;
  await writeFile(join(textDir, line.file), png);
}
await writeFile(join(textDir, EVALUATION_LABELS_FILE), evaluationLabels(lines));
console.log(`text-direction: wrote ${lines.length} lines (${bytes} bytes of PNG) and ${EVALUATION_LABELS_FILE} to ${relative(REPO_ROOT, textDir)}`);
