/** infermesh predict: one ModelInfer call with images or rows, answer printed as labels and scores. */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { connect, tensor, type ClientOptions, type InferResult, type Tensor } from '@infermesh/client';

export interface PredictOptions {
  /** The router: HOST:PORT or grpc://HOST:PORT (gRPC), http(s)://HOST:PORT (REST). */
  address: string;
  model: string;
  version: string;
  images: string[];
  rows: string[];
  inputName?: string;
  top: number;
  json: boolean;
}

/** How the CLI's calls to the router are made: INFERMESH_API_KEY sent as `authorization: Bearer <key>`. */
export function routerClientOptions(): ClientOptions {
  const apiKey = process.env.INFERMESH_API_KEY?.trim();
  return apiKey ? { apiKey } : {};
}

/** A tensor's elements as JSON values: BYTES as UTF-8 text, 64-bit integers as numbers. */
export function valuesOf(output: Tensor): (string | number | boolean)[] {
  if (output.datatype === 'BYTES') return (output.data as (string | Uint8Array)[]).map((b) => (typeof b === 'string' ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')));
  if (Array.isArray(output.data)) return output.data as boolean[];
  return Array.from(output.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
}

export async function predict(options: PredictOptions): Promise<void> {
  if (options.images.length === 0 && options.rows.length === 0) throw new Error('give --image <file> (repeatable) or --row <json> (repeatable)');
  if (options.images.length > 0 && options.rows.length > 0) throw new Error('give either --image or --row, not both');
  const client = connect(options.address, routerClientOptions());
  try {
    const elements = options.images.length
      ? await Promise.all(options.images.map((file) => readFile(file)))
      : options.rows.map((row) => Buffer.from(row));
    const inputName = options.inputName ?? (options.images.length ? 'image' : 'row');
    const version = options.version || undefined;
    const metadata = await client.modelMetadata(options.model, version);
    // Triton's classification extension: top-k "score:index:label" per row for the outputs of class scores (float, [N, C]).
    const classified = new Set(metadata.outputs.filter((o) => o.datatype.startsWith('FP') && o.shape.length === 2).map((o) => o.name));
    const result = await client.infer({
      model: options.model,
      version,
      inputs: [tensor.bytes(inputName, [elements.length], elements)],
      outputs: metadata.outputs.map((o) => (classified.has(o.name) ? { name: o.name, classification: options.top } : { name: o.name })),
    });
    const names = options.images.length ? options.images.map((f) => basename(f)) : options.rows.map((_, i) => `row ${i}`);
    print(result, names, classified, options.json);
  } finally {
    client.close();
  }
}

function print(result: InferResult, names: string[], classified: ReadonlySet<string>, json: boolean): void {
  const decoded = result.outputs.map((output) => ({ name: output.name, datatype: output.datatype, shape: output.shape, values: valuesOf(output) }));
  if (json) {
    console.log(JSON.stringify({ model: result.model, version: result.version, outputs: decoded }, null, 2));
    return;
  }
  console.log(`${result.model} (version ${result.version})`);
  names.forEach((name, row) => {
    const parts = decoded.map((output) => {
      const perRow = output.values.length / names.length;
      const slice = output.values.slice(row * perRow, (row + 1) * perRow);
      if (output.datatype === 'BYTES' && !classified.has(output.name)) return `${output.name}=${slice.map((s) => JSON.stringify(s)).join(',')}`;
      if (output.datatype === 'BYTES') {
        return slice.map((s) => {
          const [score, index, label] = String(s).split(':');
          return `${label ?? `class ${index}`} ${Number(score).toFixed(4)}`;
        }).join(', ');
      }
      return `${output.name}=${slice.join(',')}`;
    });
    console.log(`  ${name}: ${parts.join('  ')}`);
  });
}

