/** Reads a Triton-like model repository: <root>/<name>/config.yaml + <root>/<name>/<version>/model.onnx. */
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
      const versions: string[] = [];
      for (const v of await readdir(dir, { withFileTypes: true })) {
        if (v.isDirectory() && /^\d+$/.test(v.name) && (await exists(join(dir, v.name, 'model.onnx')))) versions.push(v.name);
      }
      versions.sort((a, b) => Number(a) - Number(b));
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
