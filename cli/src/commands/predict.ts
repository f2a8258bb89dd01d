/** infermesh predict: one ModelInfer call with images or rows, answer printed as labels and scores. */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { encodeBytesElements, decodeRaw, isDatatype } from '@infermesh/tensor';
import type { ModelInferRequest, ModelInferResponse__Output, ModelMetadataResponse__Output } from '@infermesh/contracts';
import { call, routerClient } from '../client.js';

export interface PredictOptions {
  address: string;
  model: string;
  version: string;
  images: string[];
  rows: string[];
  inputName?: string;
  top: number;
  json: boolean;
}

export async function predict(options: PredictOptions): Promise<void> {
  if (options.images.length === 0 && options.rows.length === 0) throw new Error('give --image <file> (repeatable) or --row <json> (repeatable)');
  if (options.images.length > 0 && options.rows.length > 0) throw new Error('give either --image or --row, not both');
  const client = routerClient(options.address);
  try {
    const elements = options.images.length
      ? await Promise.all(options.images.map((file) => readFile(file)))
      : options.rows.map((row) => Buffer.from(row));
    const inputName = options.inputName ?? (options.images.length ? 'image' : 'row');
    const metadata = await call<{ name: string; version: string }, ModelMetadataResponse__Output>(client, client.ModelMetadata, { name: options.model, version: options.version });
    const request: ModelInferRequest = {
      modelName: options.model,
      modelVersion: options.version,
      inputs: [{ name: inputName, datatype: 'BYTES', shape: [String(elements.length)] }],
      rawInputContents: [encodeBytesElements(elements)],
      // Triton's classification extension: top-k "score:index:label" per row for float outputs.
      outputs: metadata.outputs.map((o) => (o.datatype.startsWith('FP') ? { name: o.name, parameters: { classification: { int64Param: String(options.top) } } } : { name: o.name })),
    };
    const response = await call<ModelInferRequest, ModelInferResponse__Output>(client, client.ModelInfer, request);
    const names = options.images.length ? options.images.map((f) => basename(f)) : options.rows.map((_, i) => `row ${i}`);
    print(response, names, options.json);
  } finally {
    client.close();
  }
}

function print(response: ModelInferResponse__Output, names: string[], json: boolean): void {
  const decoded = response.outputs.map((output, i) => {
    const shape = output.shape.map(Number);
    const data = isDatatype(output.datatype) ? decodeRaw(output.name, output.datatype, shape, response.rawOutputContents[i]) : [];
    const values = Array.isArray(data) ? data.map((b) => b.toString('utf8')) : Array.from(data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
    return { name: output.name, datatype: output.datatype, shape, values };
  });
  if (json) {
    console.log(JSON.stringify({ model: response.modelName, version: response.modelVersion, outputs: decoded }, null, 2));
    return;
  }
  console.log(`${response.modelName} (version ${response.modelVersion})`);
  names.forEach((name, row) => {
    const parts = decoded.map((output) => {
      const perRow = output.values.length / names.length;
      const slice = output.values.slice(row * perRow, (row + 1) * perRow);
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

