/**
 * `npm run train -w @infermesh/models`: trains the iris classifier and writes
 * models/iris/1/model.onnx, models/iris/config.yaml and models/iris/1/profile.json, the drift
 * profile of its training rows (all committed; the run is deterministic).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { parse } from 'yaml';
import { modelConfigSchema } from '@infermesh/worker';
import { evaluateIris, irisConfigYaml, trainIris } from './iris.js';
import { MODEL_REPOSITORY_DIR, modelConfigFile, modelFile, modelProfileFile } from './paths.js';
import { describeSummaries, irisProfile } from './profiles.js';

/** Paths are printed relative to the workspace root, wherever npm runs the script from. */
const REPO_ROOT = dirname(MODEL_REPOSITORY_DIR);

const training = trainIris();
const evaluation = await evaluateIris(training);

const onnxPath = modelFile('iris', 1);
const configPath = modelConfigFile('iris');
await mkdir(dirname(onnxPath), { recursive: true });
await writeFile(onnxPath, training.onnx);
const configYaml = irisConfigYaml(training, evaluation);
await writeFile(configPath, configYaml);
const profile = irisProfile(training, modelConfigSchema.parse(parse(configYaml)));
const profilePath = modelProfileFile('iris', 1);
await writeFile(profilePath, profile.text);

const shown = (path: string): string => relative(REPO_ROOT, path);
console.log(`iris: trained on ${training.trainRows} rows, train accuracy ${training.trainAccuracy.toFixed(4)}`);
console.log(`iris: held-out accuracy ${evaluation.accuracy.toFixed(4)} (${evaluation.correct}/${evaluation.rows}) measured with onnxruntime-node`);
console.log(`iris: wrote ${shown(onnxPath)} (${training.onnx.length} bytes), ${shown(configPath)} and ${shown(profilePath)}:\n${describeSummaries(profile.summaries)}`);
