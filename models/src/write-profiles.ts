/**
 * `npm run profiles -w @infermesh/models`: writes the shipped models' drift profiles,
 * models/iris/1/profile.json and models/text-direction/1/profile.json (both committed; the run
 * is deterministic and offline). `npm run train` writes iris's too, with its model.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { parse } from 'yaml';
import { modelConfigSchema } from '@infermesh/worker';
import { trainIris } from './iris.js';
import { MODEL_REPOSITORY_DIR, modelConfigFile, modelProfileFile } from './paths.js';
import { describeSummaries, irisProfile, textDirectionProfile } from './profiles.js';

/** Paths are printed relative to the workspace root, wherever npm runs the script from. */
const REPO_ROOT = dirname(MODEL_REPOSITORY_DIR);

const configOf = async (name: string) => modelConfigSchema.parse(parse(await readFile(modelConfigFile(name), 'utf8')));

for (const [name, build] of [
  ['iris', async () => irisProfile(trainIris(), await configOf('iris'))],
  ['text-direction', async () => textDirectionProfile(await configOf('text-direction'))],
] as const) {
  const { text, summaries } = await build();
  const path = modelProfileFile(name, 1);
  await writeFile(path, text);
  console.log(`${name}: wrote ${relative(REPO_ROOT, path)}\n${describeSummaries(summaries)}`);
}
