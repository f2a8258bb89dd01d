/**
 * The infermesh CLI against a running mesh: predict and models (over gRPC, and over the
 * router's REST port with an http:// address), batch (a data set streamed through the
 * router's ModelStreamInfer, resumed after a partial run), a short bench smoke, and ocr
 * (page images read by the ocr pipeline, printed, as JSON, and through batch).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderOcrPages, writeOcrPages, type OcrPage } from '@infermesh/models';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';
import { characterErrorRate } from './helpers/ocr-score.js';

let mesh: Mesh;
let dir: string;

/** The CLI with --address: the router's gRPC address unless another is given (its REST URL). */
function cli(args: string[], address = mesh.routerAddress): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), ...args, '--address', address], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

async function lines(file: string): Promise<{ id: string; error?: string; outputs?: Record<string, number[]> }[]> {
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

beforeAll(async () => {
  mesh = await startMesh();
  dir = await mkdtemp(join(tmpdir(), 'infermesh-batch-'));
  await mkdir(join(dir, 'images'));
  await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      copyFile(join(ROOT, 'models/text-direction/samples', i % 2 ? 'upside-down.png' : 'upright.png'), join(dir, `images/${String(i).padStart(2, '0')}-${i % 2 ? 'down' : 'up'}.png`)),
    ),
  );
  await writeFile(join(dir, 'images/zz-broken.png'), 'not an image');
});

afterAll(async () => {
  await mesh?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const IRIS_ROW = '{"sepal_length":6.3,"sepal_width":3.3,"petal_length":6.0,"petal_width":2.5}';

describe('infermesh predict and models', () => {
  it('prints the top classes of each image', async () => {
    const samples = join(ROOT, 'models/text-direction/samples');
    const run = await cli(['predict', '--model', 'text-direction', '--image', join(samples, 'upside-down.png'), '--image', join(samples, 'upright.png')]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('text-direction (version 1)\n  upside-down.png: rotated_180 1.0000, upright 0.0000\n  upright.png: upright 1.0000, rotated_180 0.0000\n');
  });

  it('prints the top --top classes of a row and its other outputs, or all outputs as JSON', async () => {
    const run = await cli(['predict', '--model', 'iris', '--row', IRIS_ROW, '--top', '3']);
    expect(run.stdout).toBe('iris (version 1)\n  row 0: virginica 0.9999, versicolor 0.0001, setosa 0.0000  label=2\n');
    const json = await cli(['predict', '--model', 'iris', '--row', IRIS_ROW, '--json']);
    const answer = JSON.parse(json.stdout) as { model: string; version: string; outputs: { name: string; datatype: string; shape: number[]; values: unknown[] }[] };
    expect(answer).toMatchObject({ model: 'iris', version: '1', outputs: [{ name: 'probabilities', datatype: 'BYTES', shape: [1, 2] }, { name: 'label', datatype: 'INT64', shape: [1], values: [2] }] });
    expect(answer.outputs[0].values[0]).toMatch(/^0\.99\d*:2:virginica$/);
  });

  it('prints text outputs as text, and a pipeline\'s class scores classified by its step\'s model (ocr-line: recognition and direction at once)', async () => {
    const samples = join(ROOT, 'models/text-direction/samples');
    const run = await cli(['predict', '--model', 'ocr-line', '--image', join(samples, 'upright.png'), '--image', join(samples, 'upside-down.png')]);
    expect(run.code, run.stderr).toBe(0);
    const [, upright, upsideDown] = run.stdout.split('\n');
    expect(upright).toMatch(/^  upright\.png: text="Hello World 2026"  score=0\.9\d*  upright 1\.0000, rotated_180 0\.0000$/);
    expect(upsideDown).toMatch(/^  upside-down\.png: text=".*"  score=[\d.e-]+  rotated_180 1\.0000, upright 0\.0000$/);
  });

  it('says what the mesh refused, with exit code 1', async () => {
    const run = await cli(['predict', '--model', 'nope', '--row', IRIS_ROW]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe("infermesh: NOT_FOUND: model 'nope' is not served by this mesh (models: iris, ocr, ocr-detection, ocr-line, ocr-recognition, text-direction)\n");
  });

  it('answers the same over the router\'s REST port (an http:// address) as over gRPC', async () => {
    const samples = join(ROOT, 'models/text-direction/samples');
    for (const args of [
      ['predict', '--model', 'text-direction', '--image', join(samples, 'upside-down.png'), '--image', join(samples, 'upright.png')],
      ['predict', '--model', 'iris', '--row', IRIS_ROW, '--top', '3'],
      ['predict', '--model', 'iris', '--row', '{"x":1}'],
      ['models'],
    ]) {
      const [grpc, rest] = [await cli(args), await cli(args, mesh.routerHttpUrl)];
      expect(rest, args.join(' ')).toEqual(grpc);
    }
    const [grpc, rest] = [await cli(['predict', '--model', 'iris', '--row', IRIS_ROW, '--json']), await cli(['predict', '--model', 'iris', '--row', IRIS_ROW, '--json'], mesh.routerHttpUrl)];
    expect(JSON.parse(rest.stdout)).toEqual(JSON.parse(grpc.stdout));
  });

  it('lists the models with their tensors', async () => {
    const run = await cli(['models']);
    expect(run.stdout).toContain('iris  versions 1  (onnxruntime_onnx)\n  in   row  BYTES [-1]\n');
    expect(run.stdout).toContain('  out  softmax_0.tmp_0  FP32 [-1, 2]\n');
  });
});

describe('infermesh batch', () => {
  it('streams a folder of images and writes one answer per image, with the broken one as an error', async () => {
    const output = join(dir, 'images.jsonl');
    const run = await cli(['batch', '--model', 'text-direction', '--input', join(dir, 'images'), '--output', output, '--window', '8']);
    expect(run.stderr).toMatch(/31 sent, 31 answered \(1 errors\)/);
    expect(run.code).toBe(3); // some items failed
    const records = await lines(output);
    expect(records).toHaveLength(31);
    const broken = records.find((r) => r.id === 'zz-broken.png')!;
    expect(broken.error).toMatch(/^INVALID_ARGUMENT: input 'image': element 0 is not a known image format/);
    for (const record of records.filter((r) => !r.error)) {
      const [up, rotated] = record.outputs!['softmax_0.tmp_0'];
      expect(record.id.includes('down') ? rotated > 0.9 : up > 0.9, record.id).toBe(true);
    }
  });

  it('resumes a partial output: answered items are kept and skipped, failed and missing ones are sent', async () => {
    const output = join(dir, 'resumed.jsonl');
    await cli(['batch', '--model', 'text-direction', '--input', join(dir, 'images'), '--output', output]);
    const full = (await readFile(output, 'utf8')).split('\n').filter(Boolean);
    // As if the first run had stopped after 10 lines, the last one cut short.
    await writeFile(output, `${full.slice(0, 10).join('\n')}\n${full[10].slice(0, 15)}`);
    const kept = full.slice(0, 10).filter((line) => !JSON.parse(line).error).length;
    const run = await cli(['batch', '--model', 'text-direction', '--input', join(dir, 'images'), '--output', output]);
    expect(run.stderr).toMatch(new RegExp(`resuming: ${kept} items already`));
    expect(run.stderr).toMatch(new RegExp(`${31 - kept} sent, ${31 - kept} answered`));
    const records = await lines(output);
    expect(new Set(records.map((r) => r.id)).size).toBe(31);
    expect(records).toHaveLength(31);
  });

  it('streams rows from a .jsonl file, each answered under its own id', async () => {
    const input = join(dir, 'rows.jsonl');
    const rows = [
      { id: 'setosa-1', sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
      { id: 'virginica-1', sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 },
      { id: 'missing-feature', sepal_length: 6.3 },
    ];
    await writeFile(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const output = join(dir, 'rows.out.jsonl');
    await cli(['batch', '--model', 'iris', '--input', input, '--output', output]);
    const byId = new Map((await lines(output)).map((r) => [r.id, r]));
    expect(byId.get('setosa-1')!.outputs!.label).toEqual([0]);
    expect(byId.get('virginica-1')!.outputs!.label).toEqual([2]);
    expect(byId.get('missing-feature')!.error).toMatch(/no value for feature 'sepal_width'/);
  });

  it('prints the summary as JSON on stdout with --json', async () => {
    const input = join(dir, 'json-rows.jsonl');
    await writeFile(input, `${JSON.stringify({ id: 'a', sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 })}\n${JSON.stringify({ id: 'b', sepal_length: 1 })}\n`);
    const output = join(dir, 'json-rows.out.jsonl');
    const run = await cli(['batch', '--model', 'iris', '--input', input, '--output', output, '--json']);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toMatchObject({ model: 'iris', output, resumed: 0, sent: 2, answered: 2, errors: 1, complete: true, interrupted: false });
  });

  it('streams over the router\'s REST port (an http:// address) with the same answers', async () => {
    const input = join(dir, 'rest-rows.jsonl');
    await writeFile(input, `${JSON.stringify({ id: 'a', sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 })}\n${JSON.stringify({ id: 'b', sepal_length: 1 })}\n`);
    const [grpc, rest] = [join(dir, 'rest-rows.grpc.jsonl'), join(dir, 'rest-rows.rest.jsonl')];
    await cli(['batch', '--model', 'iris', '--input', input, '--output', grpc]);
    const run = await cli(['batch', '--model', 'iris', '--input', input, '--output', rest], mesh.routerHttpUrl);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/2 sent, 2 answered \(1 errors\)/);
    const sorted = async (file: string) => (await lines(file)).sort((a, b) => a.id.localeCompare(b.id));
    expect(await sorted(rest)).toEqual(await sorted(grpc));
    expect((await sorted(rest))[1].error).toMatch(/^INVALID_ARGUMENT: input 'row': row 0 has no value for feature 'sepal_width'/);
  });

  it('refuses an input that is neither a folder nor a .jsonl file', async () => {
    const run = await cli(['batch', '--model', 'iris', '--input', join(ROOT, 'README.md'), '--output', join(dir, 'x.jsonl')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/--input must be a folder of images or a \.jsonl file/);
  });
});

describe('infermesh bench', () => {
  it('sweeps concurrency levels, each bounded by its window, and writes JSON and an SVG chart', async () => {
    const output = join(dir, 'bench.json');
    const chart = join(dir, 'bench.svg');
    const run = await cli(['bench', '--model', 'iris', '--synthetic', '--tensor', 'features:FP32:4', '--concurrency', '1,4', '--duration', '1', '--warmup', '0', '--output', output, '--chart', chart]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/conc 1 .*\n.*conc 4 /s);
    const report = JSON.parse(await readFile(output, 'utf8')) as { results: { level: number; requests: number; errors: number; throughput: number; p99: number; serverComputeMs: number }[] };
    expect(report.results.map((r) => r.level)).toEqual([1, 4]);
    for (const level of report.results) {
      expect(level.requests).toBeGreaterThan(0);
      expect(level.errors).toBe(0);
      expect(level.p99).toBeGreaterThan(0);
      expect(level.serverComputeMs).toBeGreaterThan(0);
    }
    expect(await readFile(chart, 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*<path d="M/);
  });

  it('prints the results as JSON instead of the table with --json', async () => {
    const run = await cli(['bench', '--model', 'iris', '--synthetic', '--tensor', 'features:FP32:4', '--concurrency', '2', '--requests', '20', '--duration', '5', '--warmup', '0', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { model: string; results: { mode: string; level: number; requests: number; errors: number }[] };
    expect(report.model).toBe('iris');
    expect(report.results).toMatchObject([{ mode: 'concurrency', level: 2, requests: 20, errors: 0 }]);
  });

  it('says how to name the model tensor when --synthetic meets an input that takes rows or images', async () => {
    const run = await cli(['bench', '--model', 'iris', '--synthetic', '--concurrency', '1', '--duration', '1', '--warmup', '0']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/--synthetic cannot fill BYTES input 'row'.*--tensor features:FP32:4/);
  });

  it('holds a request rate with an open loop and stops at the request bound', async () => {
    const output = join(dir, 'rate.csv');
    const run = await cli(['bench', '--model', 'iris', '--row', '{"sepal_length":5,"sepal_width":3,"petal_length":1.5,"petal_width":0.2}', '--rate', '50', '--duration', '5', '--requests', '40', '--warmup', '0', '--output', output]);
    expect(run.code, run.stderr).toBe(0);
    const [header, row] = (await readFile(output, 'utf8')).trim().split('\n');
    expect(header.split(',').slice(0, 4)).toEqual(['mode', 'level', 'requests', 'errors']);
    expect(row.split(',').slice(0, 4)).toEqual(['rate', '50', '40', '0']);
  });
});

describe('infermesh ocr', () => {
  let pages: OcrPage[];
  let files: string[];
  beforeAll(async () => {
    // Two pages, the second with every other line upside down; a third folder item is not an image.
    pages = await renderOcrPages({ count: 2, seed: 3, rotation: (i) => (i === 1 ? 'alternate' : 'none') });
    files = await writeOcrPages(join(dir, 'pages'), pages);
  });

  it('prints each page\'s lines top to bottom with score, box and text', async () => {
    const run = await cli(['ocr', ...files]);
    expect(run.code, run.stderr).toBe(0);
    const printed = run.stdout.trimEnd().split('\n');
    let at = 0;
    for (const [i, page] of pages.entries()) {
      expect(printed[at++]).toBe(`${files[i]}: ${page.lines.length} line${page.lines.length === 1 ? '' : 's'}`);
      for (const line of page.lines) {
        const [, score, x0, y0, x1, y1, text] = /^ {2}(\d\.\d{3}) {2}(\d+),(\d+) (\d+),(\d+) +(.*)$/.exec(printed[at++]) ?? [];
        expect(Number(score)).toBeGreaterThan(0.5);
        // the box printed lies on the true line (within a few pixels: DB boxes are unclipped outward, by unclip_ratio 2.0)
        expect(Math.abs(Number(y0) - line.box[0][1])).toBeLessThan(18);
        expect(Math.abs(Number(y1) - line.box[2][1])).toBeLessThan(18);
        expect(Number(x0)).toBeLessThan(line.box[0][0] + 18);
        expect(Number(x1)).toBeGreaterThan(line.box[2][0] - 18);
        // what the CLI prints is what the mesh read (its accuracy is ocr-accuracy.e2e.test.ts's to judge)
        expect(characterErrorRate(text, line.text), `${text} for ${line.text}`).toBeLessThan(0.3);
      }
    }
    expect(at).toBe(printed.length);
  });

  it('prints the lines of every page as JSON with --json', async () => {
    const run = await cli(['ocr', files[1], '--json']);
    expect(run.code, run.stderr).toBe(0);
    const answer = JSON.parse(run.stdout) as { model: string; version: string; pages: { page: string; lines: { text: string; score: number; box: number[][] }[] }[] };
    expect(answer).toMatchObject({ model: 'ocr', version: '1', pages: [{ page: files[1] }] });
    expect(answer.pages[0].lines).toHaveLength(pages[1].lines.length);
    for (const line of answer.pages[0].lines) {
      expect(line.box).toHaveLength(4);
      expect(line.box.every((p) => p.length === 2)).toBe(true);
      expect(line.score).toBeGreaterThan(0.5);
    }
  });

  it('batch --model ocr writes one JSON line per page with its lines', async () => {
    const output = join(dir, 'ocr-lines.jsonl');
    const run = await cli(['batch', '--model', 'ocr', '--input', join(dir, 'pages'), '--output', output]);
    expect(run.code, run.stderr).toBe(0);
    const records = (await readFile(output, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; model: string; lines: { text: string; score: number; box: number[][] }[] });
    expect(records.map((r) => r.id).sort()).toEqual(pages.map((p) => p.name));
    for (const record of records) {
      const page = pages.find((p) => p.name === record.id)!;
      expect(record.model).toBe('ocr');
      expect(record.lines.map((l) => l.text)).toHaveLength(page.lines.length);
      expect(Object.keys(record.lines[0]).sort()).toEqual(['box', 'score', 'text']);
    }
  });

  it('refuses a page that does not exist before calling the mesh, with exit code 1', async () => {
    const run = await cli(['ocr', files[0], join(dir, 'pages/missing.png')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`infermesh: page ${join(dir, 'pages/missing.png')} does not exist or is not a file\n`);
    expect(run.stdout).toBe('');
  });

  it('reports a page the mesh refuses and reads the others, with exit code 3', async () => {
    const broken = join(dir, 'broken-page.png');
    await writeFile(broken, 'not an image');
    const run = await cli(['ocr', broken, files[0]]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(new RegExp(`^${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: failed: INVALID_ARGUMENT: `));
    expect(run.stdout).toMatch(new RegExp(`^${files[0].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${pages[0].lines.length} line`));
  });
});
