/**
 * Reads a Triton-like model repository: <root>/<name>/config.yaml + <root>/<name>/<version>/model.onnx.
 * A pipeline (platform: pipeline) has no model file: each of its version directories is a version.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { modelConfigSchema, type ModelConfig } from './model-config.js';

export interface RepositoryModel {
  config: ModelConfig;
  /** Version directory names that hold a model.onnx, newest (highest number) last. */
  versions: string[];
  path: string;
}

export class ModelRepositoryError extends Error {
  override readonly name = 'ModelRepositoryError';
}

export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = join(dir, 'config.yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ModelRepositoryError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ModelRepositoryError(`${file} is not valid YAML: ${(error as Error).message}`);
  }
  const parsed = modelConfigSchema.safeParse(document);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new ModelRepositoryError(`${file} is invalid: ${issues.join('; ')}`);
  }
  return parsed.data;
}

/** The model has no <root>/<name>/config.yaml: not in this repository (NOT_FOUND, not a failure). */
export class ModelNotInRepositoryError extends ModelRepositoryError {}

/** A model's config text, as read, beside what was parsed from it: a changed text means a changed config. */
export interface RepositoryModelRead extends RepositoryModel {
  configText: string;
}

/** Reads one model of the repository: its config (checked) and its version directories that hold a model.onnx. */
export async function readRepositoryModel(root: string, name: string): Promise<RepositoryModelRead> {
  const dir = join(root, name);
  if (!(await exists(join(dir, 'config.yaml')))) throw new ModelNotInRepositoryError(`model '${name}' is not in the repository ${root} (no ${name}/config.yaml)`);
  const configText = await readFile(join(dir, 'config.yaml'), 'utf8').catch(() => '');
  const config = await readModelConfig(dir);
  if (config.name !== name) throw new ModelRepositoryError(`${dir}/config.yaml names '${config.name}', its folder is '${name}'`);
  const versions = await versionDirectories(dir, config.platform !== 'pipeline');
  if (versions.length === 0) throw new ModelRepositoryError(config.platform === 'pipeline' ? `${dir} has no <version>/ directory (a pipeline's versions are empty directories)` : `${dir} has no <version>/model.onnx`);
  return { config, versions, path: dir, configText };
}

/** Version directory names (digits) holding a model.onnx (any, for a pipeline), ascending by number. */
async function versionDirectories(dir: string, withModel = true): Promise<string[]> {
  const versions: string[] = [];
  for (const v of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (v.isDirectory() && /^\d+$/.test(v.name) && (!withModel || (await exists(join(dir, v.name, 'model.onnx'))))) versions.push(v.name);
  }
  return versions.sort((a, b) => Number(a) - Number(b));
}

/** The names of the repository's model directories (those with a config.yaml), at most `most`. */
export async function modelNames(root: string, most: number): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (names.length >= most) break;
    if (entry.isDirectory() && (await exists(join(root, entry.name, 'config.yaml')))) names.push(entry.name);
  }
  return names.sort();
}

/**
 * What polling compares: the config text and each version's model.onnx size and time of
 * change. Never throws: a model being copied in gives a fingerprint that changes again once
 * the copy ends, so a half-written file that failed to load is tried again.
 */
export async function modelFingerprint(root: string, name: string): Promise<string> {
  const dir = join(root, name);
  const parts = [await readFile(join(dir, 'config.yaml'), 'utf8').catch(() => '\u0000missing')];
  for (const version of await versionDirectories(dir, false)) {
    const info = await stat(join(dir, version, 'model.onnx')).catch(() => undefined);
    parts.push(`${version}:${info?.size ?? -1}:${info?.mtimeMs ?? -1}`);
  }
  return parts.join('\u0000');
}

export async function scanRepository(root: string, only?: readonly string[]): Promise<{ models: RepositoryModel[]; errors: string[] }> {
  const entries = await readdir(root, { withFileTypes: true }).catch((error: Error) => {
    throw new ModelRepositoryError(`cannot read model repository ${root}: ${error.message}`);
  });
  const models: RepositoryModel[] = [];
  const errors: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || only?.length && !only.includes(entry.name)) continue;
    const dir = join(root, entry.name);
    if (!(await exists(join(dir, 'config.yaml')))) continue;
    try {
      const config = await readModelConfig(dir);
      if (config.name !== entry.name) throw new ModelRepositoryError(`${dir}/config.yaml names '${config.name}', its folder is '${entry.name}'`);
      const versions = await versionDirectories(dir, config.platform !== 'pipeline');
      if (versions.length === 0) throw new ModelRepositoryError(`${dir} has no <version>/model.onnx`);
      models.push({ config, versions, path: dir });
    } catch (error) {
      errors.push((error as Error).message);
    }
  }
  return { models, errors };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
