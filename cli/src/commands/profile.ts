/**
 * infermesh profile: builds a model's drift reference profile from a data set and writes it
 * beside the model (models/<name>/<version>/profile.json; format in models/README.md). Rows
 * (.csv with a header, or .jsonl objects) for tabular models, a folder of PNG/JPEG images for
 * image models; the values are read by the same code that reads live inputs (the worker's row
 * parser, the preprocessor's image statistics), so live bins and the profile agree.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, relative } from 'node:path';
import { describeSummaries, ImageValues, MODEL_REPOSITORY_DIR, ProfileDataError, referenceValuesFor, TabularValues } from '@infermesh/models';
import { MAX_PROFILE_BINS, PROFILE_FILE, profileIdOf, readModelConfig, serializeDriftProfile, type ModelConfig } from '@infermesh/worker';
import { readLines } from '../lines.js';

export interface ProfileOptions {
  model: string;
  /** A .csv or .jsonl file of rows, or a folder of images. */
  data: string;
  /** Default: MODEL_REPOSITORY, else the repository's models/. */
  repository?: string;
  /** Default: the newest version folder. */
  version?: string;
  /** Default: <repository>/<model>/<version>/profile.json. */
  out?: string;
  /** Bins per feature at most (2 to MAX_PROFILE_BINS). */
  bins: number;
  /** What was written, and the summaries, as JSON. */
  json: boolean;
}

/** Rows or images read at most: enough for stable deciles, bounded memory. */
export const MAX_PROFILE_INPUTS = 1_000_000;
/** An image file larger than this is refused before it is read. */
const MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024;
/** A line of a rows file longer than this is refused, never held (a CSV header of thousands of columns fits). */
const MAX_LINE_BYTES = 4 * 1024 * 1024;
const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/** A line of a CSV file as fields: commas separate, double quotes quote ("" is a quote). */
export function csvFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

/** The lines of a rows file that are not blank (CRLF and a byte order mark are fine), each bounded. */
async function* lines(file: string): AsyncGenerator<{ line: string; number: number }> {
  const name = basename(file);
  const input = createReadStream(file);
  try {
    for await (const read of readLines(input, MAX_LINE_BYTES)) {
      if ('tooLong' in read) throw new ProfileDataError(`${name} line ${read.number}: ${read.tooLong} bytes, over the ${MAX_LINE_BYTES}-byte limit of a line`);
      if ('notUtf8' in read) throw new ProfileDataError(`${name} line ${read.number}: not valid UTF-8 (save the file as UTF-8)`);
      if (read.text.trim()) yield { line: read.text, number: read.number };
    }
  } finally {
    input.destroy();
  }
}

/** Feeds the rows of a .csv or .jsonl file; returns whether it stopped at MAX_PROFILE_INPUTS. */
async function readRows(file: string, values: TabularValues): Promise<boolean> {
  const name = basename(file);
  const kind = extname(file).toLowerCase();
  if (kind === '.jsonl' || kind === '.ndjson') {
    for await (const { line, number } of lines(file)) {
      if (values.count >= MAX_PROFILE_INPUTS) return true;
      values.add(Buffer.from(line), `${name} line ${number}`);
    }
    return false;
  }
  if (kind !== '.csv') throw new Error(`--data ${file}: rows come as a .csv or .jsonl file`);
  let header: string[] | undefined;
  let wanted: number[] = [];
  for await (const { line, number } of lines(file)) {
    if (!header) {
      header = csvFields(line).map((h) => h.trim());
      const missing = values.features.filter((f) => !header!.includes(f));
      if (missing.length) throw new Error(`${name} has no column for feature${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} (columns: ${header.join(', ')})`);
      wanted = values.features.map((f) => header!.indexOf(f));
      continue;
    }
    if (values.count >= MAX_PROFILE_INPUTS) return true;
    const fields = csvFields(line);
    if (fields.length !== header.length) throw new Error(`${name} line ${number}: ${fields.length} fields, the header has ${header.length}`);
    // The row as a client would send it: the worker parses numeric strings as numbers.
    const row = Object.fromEntries(values.features.map((feature, f) => [feature, fields[wanted[f]].trim()]));
    values.add(Buffer.from(JSON.stringify(row)), `${name} line ${number}`);
  }
  return false;
}

async function imageFiles(folder: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) found.push(join(entry.parentPath, entry.name));
  }
  return found.sort();
}

/** Feeds the images of a folder, a few decoding at once; returns whether it stopped at MAX_PROFILE_INPUTS. */
async function readImages(folder: string, values: ImageValues): Promise<boolean> {
  const files = await imageFiles(folder);
  const taken = files.slice(0, MAX_PROFILE_INPUTS);
  let next = 0;
  const work = async (): Promise<void> => {
    while (next < taken.length) {
      const file = taken[next++];
      const where = relative(folder, file);
      const size = (await stat(file)).size;
      if (size > MAX_IMAGE_FILE_BYTES) throw new ProfileDataError(`${where}: ${size} bytes, over the ${MAX_IMAGE_FILE_BYTES}-byte limit of an image here`);
      await values.add(await readFile(file), where);
    }
  };
  // Order does not matter to a profile: quantiles and shares are of the set of values.
  await Promise.all(Array.from({ length: 4 }, work));
  return files.length > taken.length;
}

async function modelVersions(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && /^\d+$/.test(e.name)).map((e) => e.name).sort((a, b) => Number(a) - Number(b));
}

async function modelOf(repository: string, model: string): Promise<ModelConfig> {
  if (!MODEL_NAME.test(model)) throw new Error(`'${model.slice(0, 64)}' is not a model name (letters, digits, "-" and "_")`);
  const dir = join(repository, model);
  const known = await stat(join(dir, 'config.yaml')).then((s) => s.isFile(), () => false);
  if (!known) {
    const models = await readdir(repository, { withFileTypes: true }).then(
      (entries) => entries.filter((e) => e.isDirectory()).map((e) => e.name).sort(),
      () => undefined,
    );
    if (!models) throw new Error(`cannot read the model repository ${repository}`);
    throw new Error(`unknown model '${model}': no ${model}/config.yaml in ${repository} (models: ${models.join(', ') || 'none'})`);
  }
  return readModelConfig(dir);
}

/** `infermesh profile <model> --data ...`; `print` receives the report (console.log by default). Returns the exit code. */
export async function profile(options: ProfileOptions, print: (line: string) => void = console.log): Promise<number> {
  const { model, bins } = options;
  if (!Number.isInteger(bins) || bins < 2 || bins > MAX_PROFILE_BINS) throw new Error(`--bins must be a whole number from 2 to ${MAX_PROFILE_BINS}, got '${bins}'`);

  const repository = options.repository ?? process.env.MODEL_REPOSITORY ?? MODEL_REPOSITORY_DIR;
  const config = await modelOf(repository, model);
  const versions = await modelVersions(join(repository, model));
  if (options.version !== undefined && !/^\d+$/.test(options.version)) throw new Error(`--version must be a version number, got '${options.version.slice(0, 64)}'`);
  const version = options.version ?? versions.at(-1);
  if (version === undefined) throw new Error(`model '${model}' has no version folder in ${join(repository, model)}; pass --version`);
  if (options.version !== undefined && !versions.includes(version)) throw new Error(`model '${model}' has no version ${version} (versions: ${versions.join(', ') || 'none'})`);

  const values = referenceValuesFor(config);
  const data = options.data;
  const isFolder = await stat(data).then((s) => s.isDirectory(), () => {
    throw new Error(`--data ${data}: no such file or folder`);
  });
  let cut: boolean;
  if (values instanceof ImageValues) {
    if (!isFolder) throw new Error(`--data ${data}: model '${model}' takes images; give a folder of PNG/JPEG files`);
    cut = await readImages(data, values);
  } else {
    if (isFolder) throw new Error(`--data ${data}: model '${model}' takes rows; give a .csv or .jsonl file`);
    cut = await readRows(data, values);
  }
  const what = values.kind === 'image' ? 'images' : 'rows';
  if (values.count === 0) throw new Error(`--data ${data} holds no ${what}`);

  const { profile: built, summaries } = values.build({ source: `infermesh profile ${model} --data ${basename(data)}`, created: new Date().toISOString(), bins });
  const text = serializeDriftProfile(built);
  const out = options.out ?? join(repository, model, version, PROFILE_FILE);
  await mkdir(dirname(out), { recursive: true });
  // Written whole or not at all: a worker loading the model meanwhile never reads half a file.
  await writeFile(`${out}.tmp`, text);
  await rename(`${out}.tmp`, out);

  const profileId = profileIdOf(Buffer.from(text));
  if (options.json) {
    const omitted = values instanceof TabularValues ? values.omitted : 0;
    print(JSON.stringify({ model, version, kind: values.kind, count: values.count, data, out, profileId, cut, omittedFeatures: omitted, summaries }, null, 2));
    return 0;
  }
  print(`${model} version ${version}: profiled ${values.count} ${what} from ${data} → ${out} (profile id ${profileId})`);
  if (cut) print(`  (only the first ${MAX_PROFILE_INPUTS} ${what} were read)`);
  if (values instanceof TabularValues && values.omitted > 0) print(`  (${values.omitted} features past the first ${values.features.length} are not profiled: a profile holds at most ${values.features.length})`);
  print(describeSummaries(summaries));
  return 0;
}
