/**
 * Writes the corpus cases whose requests are too large or too binary to write by hand
 * (a 100 KB name, 10,000 images, 100,000-deep nesting, bytes that are not UTF-8), as raw
 * ModelInferRequest bytes, gzipped and base64-encoded. The other cases are written by hand.
 * Run it again after changing a case here: node test/hostile/generate.ts
 */
import { gzipSync, crc32, deflateSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
// keepCase: the cases are written with the proto's own (snake_case) field names, as clients see them.
const root = new protobuf.Root().loadSync(fileURLToPath(new URL('../fixtures/open-inference-client.proto', import.meta.url)), { keepCase: true });
const ModelInferRequest = root.lookupType('inference.ModelInferRequest');

interface Case {
  why: string;
  status: string;
  /** A pattern the status message must match (it names what was wrong). */
  details?: string;
  /** The model whose good request follows the case. */
  model?: 'iris' | 'text-direction';
}

const encode = (request: object) => Buffer.from(ModelInferRequest.encode(ModelInferRequest.fromObject(request)).finish());

function write(name: string, meta: Case, bytes: Buffer): void {
  const file = { ...meta, raw_gzip_base64: gzipSync(bytes, { level: 9 }).toString('base64') };
  writeFileSync(`${HERE}${name}.json`, `${JSON.stringify(file, null, 2)}\n`);
}

/** BYTES elements framed as the protocol defines: 4-byte little-endian length, then the bytes. */
function bytesTensor(elements: Buffer[]): Buffer {
  return Buffer.concat(elements.flatMap((e) => {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(e.length);
    return [length, e];
  }));
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A PNG whose header declares width x height RGB pixels, with a one-row IDAT (a bomb's header, without the bomb). */
function png(width: number, height: number, idat: Buffer): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', header), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

// One row of image data: filter byte 0, then one grey pixel.
const ONE_ROW = deflateSync(Buffer.from([0, 128, 128, 128]));
const ONE_PIXEL = png(1, 1, ONE_ROW);

const row = (text: string) => ({ model_name: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([Buffer.from(text)])] });

write('model-name-100kb', {
  why: 'a 100 KB model name was echoed into the error and wedged the HTTP/2 connection; names are limited before any lookup',
  status: 'INVALID_ARGUMENT', details: '^model_name is 100000 bytes, over the limit of 256$',
}, encode({ model_name: 'm'.repeat(100_000), inputs: [{ name: 'row', datatype: 'BYTES', shape: [1] }] }));

write('model-name-1mb-unknown', {
  why: 'a 1 MB model name, past NATS max_payload had it reached a prediction record',
  status: 'INVALID_ARGUMENT', details: '^model_name is 1048576 bytes, over the limit of 256$',
}, encode({ model_name: 'n'.repeat(1024 * 1024) }));

write('request-id-100kb', {
  why: 'a 100 KB request id would be copied into spans, records and logs',
  status: 'INVALID_ARGUMENT', details: '^id is 100000 bytes, over the limit of 256$',
}, encode({ ...row('{"sepal_length":1,"sepal_width":1,"petal_length":1,"petal_width":1}'), id: 'i'.repeat(100_000) }));

write('model-name-not-utf8', {
  why: 'a model name that is not UTF-8 would be decoded differently by each service (proto3 strings must be UTF-8)',
  status: 'INVALID_ARGUMENT', details: '^model_name is not valid UTF-8$',
}, Buffer.concat([Buffer.from([0x0a, 0x04, 0x69, 0x72, 0xff, 0xfe]), encode({ inputs: [{ name: 'row', datatype: 'BYTES', shape: [1] }] })]));

write('input-name-not-utf8', {
  why: 'an input name that is not UTF-8 (an overlong encoding of "/")',
  status: 'INVALID_ARGUMENT', details: '^inputs\\[0\\]\\.name is not valid UTF-8$',
}, Buffer.concat([Buffer.from([0x0a, 0x04]), Buffer.from('iris'), Buffer.from([0x2a, 0x04, 0x0a, 0x02, 0xc0, 0xaf])]));

write('images-10000', {
  why: '10,000 1x1 PNGs in one request were all decoded before max_batch_size (32) was checked: 27 s and 3.5 GB',
  status: 'INVALID_ARGUMENT', details: "batch size 10000, model 'text-direction' accepts 1 to 32", model: 'text-direction',
}, encode({ model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [10_000] }], raw_input_contents: [bytesTensor(Array.from({ length: 10_000 }, () => ONE_PIXEL))] }));

write('png-bomb-header', {
  why: 'a 69-byte PNG declaring 100,000 x 100,000 pixels is refused from its header, before the decoder allocates',
  status: 'INVALID_ARGUMENT', details: 'element 0 declares 100000 x 100000 pixels, over the limit of 25000000 per image', model: 'text-direction',
}, encode({ model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([png(100_000, 100_000, ONE_ROW)])] }));

write('png-headers-over-request-pixels', {
  why: 'five PNGs each declaring 5000 x 4999 pixels, each under the per-image limit, together over the per-request pixel budget',
  status: 'INVALID_ARGUMENT', details: "the request's 5 images and their frames come to at least \\d+ pixels, over the limit of 100000000 per request", model: 'text-direction',
}, encode({ model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [5] }], raw_input_contents: [bytesTensor(Array.from({ length: 5 }, () => png(5000, 4999, ONE_ROW)))] }));

write('png-wide-bomb-header', {
  why: 'a PNG declaring 2^31-1 x 1 pixels: refused by the per-image pixel limit read from its IHDR, before any decoder sees it',
  status: 'INVALID_ARGUMENT', details: 'element 0 declares 2147483647 x 1 pixels, over the limit', model: 'text-direction',
}, encode({ model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([png(2 ** 31 - 1, 1, ONE_ROW)])] }));

write('row-nested-100000-deep', {
  why: '100,000-deep JSON nesting overflowed the stack in the error path (INTERNAL); refused by its size and depth before parsing',
  status: 'INVALID_ARGUMENT', details: "input 'row': row 0 ", model: 'iris',
}, encode(row(`{"sepal_length":${'['.repeat(100_000)}${']'.repeat(100_000)}}`)));

write('row-nested-10000-deep', {
  why: '10,000-deep nesting inside a small row: refused by its depth, never walked recursively',
  status: 'INVALID_ARGUMENT', details: "row 0 nests objects or arrays deeper than 8 levels", model: 'iris',
}, encode(row(`{"sepal_length":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`)));

write('inputs-1025', {
  why: 'more inputs than any model takes: each would be decoded by the worker',
  status: 'INVALID_ARGUMENT', details: '^the request has more than 1024 inputs$',
}, encode({ model_name: 'iris', inputs: Array.from({ length: 1025 }, (_, i) => ({ name: `in${i}`, datatype: 'FP32', shape: [1] })) }));

write('parameters-257', {
  why: 'more request parameters than the router takes',
  status: 'INVALID_ARGUMENT', details: '^parameters has more than 256 entries$',
}, encode({ model_name: 'iris', parameters: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`p${i}`, { bool_param: true }])) }));

write('garbage-bytes', {
  why: 'bytes that are not a ModelInferRequest (a length that runs past the end)',
  status: 'INVALID_ARGUMENT', details: 'not a ModelInferRequest',
}, Buffer.from([0x0a, 0x40, 0x69, 0x72]));

write('wrong-wire-type', {
  why: 'model_name sent as a varint: the worker could not decode what the router forwarded',
  status: 'INVALID_ARGUMENT', details: 'not a ModelInferRequest: ModelInferRequest field 1 has wire type 0',
}, Buffer.from([0x08, 0x01]));

write('group-wire-type', {
  why: 'a deprecated group wire type (field 1, start group) after a model name',
  status: 'INVALID_ARGUMENT', details: 'not a ModelInferRequest: ModelInferRequest field 1 has wire type 3',
}, Buffer.concat([encode({ model_name: 'iris' }), Buffer.from([0x0b])]));

write('varint-11-bytes', {
  why: 'a varint longer than 10 bytes in a shape',
  status: 'INVALID_ARGUMENT', details: 'not a ModelInferRequest',
}, Buffer.concat([encode({ model_name: 'iris' }), Buffer.from([0x2a, 0x0d, 0x18, ...Array(11).fill(0xff), 0x01])]));
