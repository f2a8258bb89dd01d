/**
 * `infermesh profile` on temporary model repositories holding copies of the shipped models'
 * configs: rows from .csv and .jsonl, images from a folder, the file it writes (read back with
 * the worker's loader) and its errors. The last test runs the built command line.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IRIS_FEATURES, modelConfigFile, modelProfileFile, renderTextImage, trainIris } from '@infermesh/models';
import { loadDriftProfile, readModelConfig } from '@infermesh/worker';
import { csvFields, profile, type ProfileOptions } from './profile.js';

let repository: string;
let data: string;
let printed: string[];

beforeEach(async () => {
  repository = await mkdtemp(join(tmpdir(), 'infermesh-profile-repo-'));
  data = await mkdtemp(join(tmpdir(), 'infermesh-profile-data-'));
  printed = [];
  for (const name of ['iris', 'text-direction']) {
    await mkdir(join(repository, name, '1'), { recursive: true });
    await copyFile(modelConfigFile(name), join(repository, name, 'config.yaml'));
  }
});

afterEach(async () => {
  await rm(repository, { recursive: true, force: true });
  await rm(data, { recursive: true, force: true });
});

/** profile() with the options of a command line: run('iris', '--data', file, '--bins', '4'). */
const run = (model: string, ...flags: string[]) => {
  const given = new Map<string, string>();
  for (let i = 0; i < flags.length; i += 2) given.set(flags[i].replace(/^--/, ''), flags[i + 1]);
  const options: ProfileOptions = { model, data: given.get('data')!, repository, version: given.get('version'), out: given.get('out'), bins: Number(given.get('bins') ?? 10), json: given.has('json') };
  return profile(options, (line) => printed.push(line));
};
const failure = (model: string, ...flags: string[]) => run(model, ...flags).then(() => '', (error: Error) => error.message);
const written = async (name: string, version = '1') => (await loadDriftProfile(join(repository, name), version, await readModelConfig(join(repository, name))))!;

const ROWS = [
  { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
  { sepal_length: 6.4, sepal_width: 3.2, petal_length: 4.5, petal_width: 1.5 },
  { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 },
  { sepal_length: 4.9, sepal_width: 3.0, petal_length: 1.4, petal_width: 0.2 },
];
/** Columns in another order than the model's features, with a quoted label column among them. */
const csv = (rows: readonly Record<string, number>[]) => [
  'petal_width,species,sepal_length,petal_length,sepal_width',
  ...rows.map((r, i) => `${r.petal_width},"kind ""${i}"", a",${r.sepal_length},${r.petal_length},${r.sepal_width}`),
].join('\n');

describe('infermesh profile, rows', () => {
  it('profiles a .csv file\'s feature columns into the newest version\'s profile.json, and says what it wrote', async () => {
    await writeFile(join(data, 'train.csv'), csv(ROWS));
    expect(await run('iris', '--data', join(data, 'train.csv'))).toBe(0);
    const loaded = await written('iris');
    expect(loaded.profile).toMatchObject({ format: 1, kind: 'tabular', rows: 4 });
    expect(loaded.profile.features.map((f) => f.name)).toEqual([...IRIS_FEATURES]);
    expect(printed[0]).toBe(`iris version 1: profiled 4 rows from ${join(data, 'train.csv')} → ${join(repository, 'iris', '1', 'profile.json')} (profile id ${loaded.profileId})`);
    expect(printed.at(-1)).toMatch(/^ {2}sepal_length +\d+ bins {2}min 4\.9 {2}median 5\.1 {2}max 6\.4\n {2}sepal_width/);
  });

  it('reads a .jsonl file of rows as it reads the same rows in a .csv file', async () => {
    await writeFile(join(data, 'train.csv'), csv(ROWS));
    await writeFile(join(data, 'train.jsonl'), `${ROWS.map((r) => JSON.stringify(r)).join('\n')}\n\n`);
    await run('iris', '--data', join(data, 'train.csv'), '--out', join(data, 'from-csv.json'));
    await run('iris', '--data', join(data, 'train.jsonl'), '--out', join(data, 'from-jsonl.json'));
    const features = async (file: string) => (JSON.parse(await readFile(file, 'utf8')) as { features: unknown }).features;
    expect(await features(join(data, 'from-jsonl.json'))).toEqual(await features(join(data, 'from-csv.json')));
  });

  it('reproduces the shipped iris profile from its training rows: the same code reads both', async () => {
    await writeFile(join(data, 'train.csv'), csv(trainIris().trainFeatures));
    await run('iris', '--data', join(data, 'train.csv'));
    const shipped = JSON.parse(await readFile(modelProfileFile('iris'), 'utf8')) as { features: unknown };
    expect((await written('iris')).profile.features).toEqual(shipped.features);
  });

  it('writes where --version and --out say, with --bins bins at most', async () => {
    await mkdir(join(repository, 'iris', '7'));
    await writeFile(join(data, 'train.csv'), csv(trainIris().trainFeatures));
    await run('iris', '--data', join(data, 'train.csv'), '--version', '1', '--bins', '4');
    expect((await written('iris', '1')).profile.features.every((f) => f.expected.length <= 4)).toBe(true);
    await run('iris', '--data', join(data, 'train.csv'));
    expect((await written('iris', '7')).file).toBe(join(repository, 'iris', '7', 'profile.json'));
  });

  it('reads files saved on Windows (a byte order mark, CRLF line endings) as the same rows', async () => {
    await writeFile(join(data, 'train.csv'), csv(ROWS));
    await writeFile(join(data, 'excel.csv'), `\uFEFF${csv(ROWS).replaceAll('\n', '\r\n')}\r\n`);
    await writeFile(join(data, 'windows.jsonl'), `\uFEFF${ROWS.map((r) => JSON.stringify(r)).join('\r\n')}\r\n`);
    await run('iris', '--data', join(data, 'train.csv'), '--out', join(data, 'plain.json'));
    await run('iris', '--data', join(data, 'excel.csv'), '--out', join(data, 'excel.json'));
    await run('iris', '--data', join(data, 'windows.jsonl'), '--out', join(data, 'windows.json'));
    const features = async (file: string) => (JSON.parse(await readFile(file, 'utf8')) as { features: unknown }).features;
    const plain = await features(join(data, 'plain.json'));
    expect([await features(join(data, 'excel.json')), await features(join(data, 'windows.json'))]).toEqual([plain, plain]);
  });

  it('names a line over the limit of a row instead of holding it (a binary file given as rows)', async () => {
    await writeFile(join(data, 'binary.jsonl'), Buffer.alloc(8 * 1024 * 1024, 0x01));
    expect(await failure('iris', '--data', join(data, 'binary.jsonl'))).toBe(`binary.jsonl line 1: ${8 * 1024 * 1024} bytes, over the 4194304-byte limit of a line`);
  });

  it('names a feature column the file lacks, and the columns it has', async () => {
    await writeFile(join(data, 'short.csv'), 'sepal_length,sepal_width\n5.1,3.5\n');
    expect(await failure('iris', '--data', join(data, 'short.csv'))).toBe("short.csv has no column for features 'petal_length', 'petal_width' (columns: sepal_length, sepal_width)");
  });

  it('names the line and the feature of a value that is not a number', async () => {
    await writeFile(join(data, 'bad.csv'), `${csv(ROWS)}\n0.1,x,5.0,1.0,`);
    expect(await failure('iris', '--data', join(data, 'bad.csv'))).toBe(`bad.csv line 6: feature 'sepal_width' is "", expected a number`);
  });

  it('refuses a file with no rows', async () => {
    await writeFile(join(data, 'empty.csv'), `${IRIS_FEATURES.join(',')}\n`);
    expect(await failure('iris', '--data', join(data, 'empty.csv'))).toBe(`--data ${join(data, 'empty.csv')} holds no rows`);
  });

  it('refuses a folder for a model that takes rows', async () => {
    expect(await failure('iris', '--data', data)).toMatch(/model 'iris' takes rows; give a .csv or .jsonl file/);
  });
});

describe('infermesh profile, images', () => {
  it('profiles the five image statistics of a folder\'s images, searched recursively', async () => {
    await mkdir(join(data, 'more'));
    await writeFile(join(data, 'a.png'), await renderTextImage('Hello'));
    await writeFile(join(data, 'more', 'b.png'), await renderTextImage('upside down line', { rotate180: true, scale: 3 }));
    await writeFile(join(data, 'notes.txt'), 'not an image, not read');
    expect(await run('text-direction', '--data', data)).toBe(0);
    const { profile: built } = await written('text-direction');
    expect(built).toMatchObject({ kind: 'image', rows: 2 });
    expect(built.features.map((f) => f.name)).toEqual(['image.width', 'image.height', 'image.aspect_ratio', 'image.brightness', 'image.contrast']);
    expect(printed[0]).toMatch(/^text-direction version 1: profiled 2 images from /);
  });

  it('names an image that cannot be read', async () => {
    await writeFile(join(data, 'a.png'), await renderTextImage('Hello'));
    await writeFile(join(data, 'broken.png'), 'not a png');
    expect(await failure('text-direction', '--data', data)).toMatch(/^broken.png: is not a known image format/);
  });

  it('refuses a folder without images', async () => {
    expect(await failure('text-direction', '--data', data)).toBe(`--data ${data} holds no images`);
  });
});

describe('infermesh profile, arguments', () => {
  it('names an unknown model and the models there are', async () => {
    expect(await failure('tulips', '--data', data)).toBe(`unknown model 'tulips': no tulips/config.yaml in ${repository} (models: iris, text-direction)`);
  });

  it('refuses a model name that is a path', async () => {
    expect(await failure('../iris', '--data', data)).toMatch(/'..\/iris' is not a model name/);
  });

  it('names a version that does not exist, and a --bins out of range', async () => {
    await writeFile(join(data, 'train.csv'), csv(ROWS));
    expect(await failure('iris', '--data', join(data, 'train.csv'), '--version', '3')).toBe("model 'iris' has no version 3 (versions: 1)");
    expect(await failure('iris', '--data', join(data, 'train.csv'), '--bins', '64')).toBe("--bins must be a whole number from 2 to 32, got '64'");
  });

  it('names data that is not there', async () => {
    expect(await failure('iris', '--data', join(data, 'nope.csv'))).toBe(`--data ${join(data, 'nope.csv')}: no such file or folder`);
  });
});

describe('csvFields', () => {
  it('splits on commas outside quotes, with "" for a quote', () => {
    expect(csvFields('a,"b,c","say ""hi""",')).toEqual(['a', 'b,c', 'say "hi"', '']);
  });
});

describe('the infermesh command line', () => {
  const main = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
  const cli = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [main, ...args], { timeout: 60_000 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr })));

  it('runs profile, exiting 0 with the summary, or 1 with the error', async () => {
    await writeFile(join(data, 'train.csv'), csv(ROWS));
    const ok = await cli(['profile', 'iris', '--data', join(data, 'train.csv'), '--repository', repository]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/iris version 1: profiled 4 rows/);
    const bad = await cli(['profile', 'tulips', '--data', data, '--repository', repository]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^infermesh: unknown model 'tulips'/);
  });

  it('prints what it wrote as JSON with --json', async () => {
    await writeFile(join(data, 'train.csv'), csv(ROWS));
    const run = await cli(['profile', 'iris', '--data', join(data, 'train.csv'), '--repository', repository, '--bins', '4', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { model: string; version: string; kind: string; count: number; out: string; profileId: string; summaries: unknown[] };
    expect(result).toMatchObject({ model: 'iris', version: '1', kind: 'tabular', count: 4, out: join(repository, 'iris', '1', 'profile.json') });
    expect(result.profileId).toMatch(/\S/);
    expect(result.summaries.length).toBeGreaterThan(0);
    expect((await written('iris')).profile.features.map((f) => f.name)).toEqual([...IRIS_FEATURES]);
  });
});
