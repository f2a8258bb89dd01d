/**
 * infermesh batch: streams a data set (a folder of images, or a .jsonl file of rows)
 * through @infermesh/client's inferStream (gRPC: one ModelStreamInfer call; REST: concurrent
 * infer calls) and writes one JSON line per item: its outputs, or for an OCR model the page's
 * lines ({text, score, box}, top to bottom). Resumes a partial output
 * file: items already answered are skipped, failed ones are tried again.
 */
import { createReadStream, existsSync } from 'node:fs';
import { readdir, readFile, rename, stat, writeFile, open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { extname, join, relative } from 'node:path';
import { connect, tensor, type InferRequest, type InferResult } from '@infermesh/client';
import { Progress } from '../progress.js';
import { routerClientOptions, valuesOf } from './predict.js';
import { isOcrResult, ocrLines } from './ocr.js';

export interface BatchOptions {
  /** The router: HOST:PORT or grpc://HOST:PORT (gRPC), http(s)://HOST:PORT (REST). */
  address: string;
  model: string;
  version: string;
  input: string;
  output: string;
  inputName?: string;
  /** Items sent and not yet answered, at most. */
  window: number;
  /** The summary as JSON on stdout (it goes to stderr as a line otherwise). */
  json?: boolean;
}

interface Item {
  id: string;
  load(): Promise<Buffer>;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

async function listImages(folder: string): Promise<Item[]> {
  const walk = async (dir: string): Promise<string[]> =>
    (await readdir(dir, { withFileTypes: true })).flatMap((entry) => (entry.isDirectory() ? [] : [join(dir, entry.name)])).concat(
      ...(await Promise.all((await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => walk(join(dir, e.name))))),
    );
  const files = (await walk(folder)).filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase())).sort();
  return files.map((file) => ({ id: relative(folder, file), load: () => readFile(file) }));
}

async function* jsonlRows(file: string): AsyncGenerator<Item> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let number = 0;
  for await (const line of lines) {
    number++;
    if (!line.trim()) continue;
    let id = `line-${number}`;
    try {
      const parsed = JSON.parse(line) as { id?: unknown };
      if (typeof parsed.id === 'string' || typeof parsed.id === 'number') id = String(parsed.id);
    } catch {
      // Sent as is: the mesh answers this item with a clear error and the rest go on.
    }
    yield { id, load: async () => Buffer.from(line) };
  }
}

/** Keeps the answered lines of an earlier run; returns their ids. */
async function resume(output: string): Promise<Set<string>> {
  const done = new Set<string>();
  if (!existsSync(output)) return done;
  const kept: string[] = [];
  for (const line of (await readFile(output, 'utf8')).split('\n')) {
    if (!line.trim()) continue;
    try {
      const record = JSON.parse(line) as { id?: string; error?: string };
      if (record.id !== undefined && !record.error && !done.has(record.id)) {
        done.add(record.id);
        kept.push(line);
      }
    } catch {
      // A line cut short when the earlier run stopped: dropped, its item is sent again.
    }
  }
  await writeFile(`${output}.tmp`, kept.length ? `${kept.join('\n')}\n` : '');
  await rename(`${output}.tmp`, output);
  return done;
}

function toRecord(result: InferResult): Record<string, unknown> {
  // An OCR model's flat outputs (boxes [K, 4, 2] as 8K numbers) as the page's lines instead.
  if (isOcrResult(result)) return { id: result.id, model: result.model, version: result.version, lines: ocrLines(result, 1)[0] };
  const outputs: Record<string, unknown> = {};
  for (const output of result.outputs) outputs[output.name] = valuesOf(output);
  return { id: result.id, model: result.model, version: result.version, outputs };
}

export async function batch(options: BatchOptions): Promise<void> {
  const info = await stat(options.input).catch(() => undefined);
  if (!info) throw new Error(`--input ${options.input} does not exist`);
  const images = info.isDirectory();
  if (!images && !options.input.endsWith('.jsonl')) throw new Error('--input must be a folder of images or a .jsonl file of rows');
  const inputName = options.inputName ?? (images ? 'image' : 'row');

  const done = await resume(options.output);
  const listed = images ? await listImages(options.input) : undefined;
  let total: number | undefined = listed?.length;
  if (!images) {
    total = 0;
    for await (const _ of jsonlRows(options.input)) total++;
  }
  if (done.size > 0) process.stderr.write(`resuming: ${done.size} items already in ${options.output}\n`);
  const todo = (total ?? 0) - done.size;
  const progress = new Progress(total, options.model);
  const out = await open(options.output, 'a');
  const client = connect(options.address, routerClientOptions());
  const started = Date.now();
  let answered = done.size;
  let errors = 0;
  let sent = 0;
  let failed: Error | undefined;
  let interrupted = false;
  const stop = new AbortController();
  const onSigint = () => {
    interrupted = true;
    stop.abort();
  };
  process.once('SIGINT', onSigint);

  // Pulled by the stream only while fewer than `window` items are in flight: an item is read when it is sent.
  const items: AsyncIterable<Item> | Iterable<Item> = listed ?? jsonlRows(options.input);
  const version = options.version || undefined;
  async function* requests(): AsyncGenerator<InferRequest> {
    for await (const item of items) {
      if (done.has(item.id)) continue;
      const element = await item.load();
      sent++;
      yield { model: options.model, version, id: item.id, inputs: [tensor.bytes(inputName, [1], [element])] };
    }
  }
  try {
    for await (const answer of client.inferStream(requests(), { window: options.window, signal: stop.signal })) {
      const error = answer.ok ? undefined : `${answer.error.code}: ${answer.error.message}`;
      const record = answer.ok ? toRecord(answer.result) : { id: answer.request.id ?? '', model: options.model, error };
      if (!answer.ok) errors++;
      await out.write(`${JSON.stringify(record)}\n`);
      answered++;
      progress.update(answered, errors);
    }
  } catch (error) {
    if (!interrupted) failed = error as Error;
  } finally {
    process.off('SIGINT', onSigint);
    client.close();
    await out.close();
  }
  progress.update(answered, errors, true);
  const seconds = (Date.now() - started) / 1000;
  const summary = `${sent} sent, ${answered - done.size} answered (${errors} errors) in ${seconds.toFixed(1)} s, ${((answered - done.size) / Math.max(seconds, 0.001)).toFixed(1)} items/s → ${options.output}`;
  if (failed) throw new Error(`the stream broke after ${summary}: ${failed.message}. Run the same command again to resume.`);
  const incomplete = todo > 0 && answered - done.size < todo;
  if (options.json) {
    const itemsPerSecond = Number(((answered - done.size) / Math.max(seconds, 0.001)).toFixed(1));
    console.log(JSON.stringify({ model: options.model, output: options.output, resumed: done.size, sent, answered: answered - done.size, errors, seconds: Number(seconds.toFixed(3)), itemsPerSecond, complete: !interrupted && !incomplete, interrupted }, null, 2));
  }
  if (interrupted) {
    process.stderr.write(`interrupted: ${summary}. Run the same command again to resume.\n`);
    process.exitCode = 130;
    return;
  }
  process.stderr.write(`${summary}${incomplete ? ' (incomplete)' : ''}\n`);
  if (errors > 0) process.exitCode = 3;
}
