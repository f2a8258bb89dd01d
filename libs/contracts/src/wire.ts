/**
 * The inference messages at the protobuf wire level, for the router: it reads what routing
 * needs from a client's ModelInferRequest (names, version, id, tensor headers) and forwards
 * the request's bytes and the worker's answer bytes untouched. Decoding a 110 KB tensor
 * only to encode it again was most of the router's CPU (docs/performance.md).
 *
 * Field numbers are those of proto/inference/grpc_service.proto and
 * proto/infermesh/v1/worker.proto; wire.test.ts checks every reader and writer here
 * against the protobufjs codecs that the rest of the mesh uses.
 */
import { isUtf8 } from 'node:buffer';

/** Bytes that are not the protobuf message they claim to be. */
export class WireFormatError extends Error {
  override readonly name = 'WireFormatError';
  /** INVALID_ARGUMENT: how the services' status table (libs/grpc) reads it. */
  readonly grpcCode = 3;
}

/**
 * A request whose names, ids or counts exceed REQUEST_LIMITS. The message names the field
 * and the limit, never the value: a client-chosen string is not echoed back.
 */
export class RequestLimitError extends Error {
  override readonly name = 'RequestLimitError';
  /** INVALID_ARGUMENT: how the services' status table (libs/grpc) reads it. */
  readonly grpcCode = 3;
}

/**
 * What the router takes in a ModelInferRequest, checked while it reads the routing fields
 * (before any lookup). Lengths are UTF-8 bytes. Names in the model repository are far
 * shorter; the bounds keep every message, log line, span and prediction record that quotes
 * them small, and a NATS record within max_payload.
 */
export const REQUEST_LIMITS = {
  /** model_name, id, input and output names, parameter keys. */
  nameBytes: 256,
  /** model_version (a number in the model repository). */
  versionBytes: 64,
  /** An input's datatype ("FP32", "BYTES": 5 at most). */
  datatypeBytes: 16,
  /** Inputs, and requested outputs, each. */
  tensors: 1024,
  /** Entries of one parameters map. */
  parameters: 256,
  /** Dimensions of one input's shape. */
  dims: 64,
} as const;

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

/** A forward-only protobuf reader over one buffer. */
class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a number; exact up to 2^53, approximate beyond (only shape dims can be that large). */
  varint(): number {
    let result = 0;
    let factor = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireFormatError('message ends inside a varint');
      const byte = this.buf[this.pos++];
      result += (byte & 0x7f) * factor;
      if (byte < 0x80) return result;
      factor *= 128;
    }
    throw new WireFormatError('varint longer than 10 bytes');
  }

  tag(): { field: number; type: number } {
    const key = this.varint();
    const field = Math.floor(key / 8);
    if (field === 0) throw new WireFormatError('field number 0');
    return { field, type: key & 7 };
  }

  /** The bounds of a length-delimited field's payload; moves past it. */
  delimited(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (length > this.end - start) throw new WireFormatError(`a field of ${length} bytes runs past the end of its message`);
    this.pos = start + length;
    return [start, this.pos];
  }

  string(): string {
    const [start, end] = this.delimited();
    return this.buf.toString('utf8', start, end);
  }

  /**
   * A string field of at most `most` UTF-8 bytes, checked before it is decoded; invalid
   * UTF-8 is refused, as proto3 requires of strings (decoded, it would change under the client).
   */
  boundedString(field: string, most: number): string {
    const [start, end] = this.delimited();
    if (end - start > most) throw new RequestLimitError(`${field} is ${end - start} bytes, over the limit of ${most}`);
    if (!isUtf8(this.buf.subarray(start, end))) throw new RequestLimitError(`${field} is not valid UTF-8`);
    return this.buf.toString('utf8', start, end);
  }

  bytes(): Buffer {
    const [start, end] = this.delimited();
    return this.buf.subarray(start, end);
  }

  skip(type: number): void {
    switch (type) {
      case VARINT:
        this.varint();
        return;
      case FIXED64:
        this.advance(8);
        return;
      case LEN:
        this.delimited();
        return;
      case FIXED32:
        this.advance(4);
        return;
      default:
        throw new WireFormatError(`unsupported wire type ${type}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new WireFormatError('message ends inside a fixed-size field');
    this.pos += n;
  }
}

/** What a worker needs to know of one input tensor, without its contents. */
export interface TensorHeader {
  name: string;
  datatype: string;
  /** Dimensions as sent; a negative or oversized dimension reads as -1. */
  shape: number[];
}

/** The parts of a ModelInferRequest that route it: never the tensors. */
export interface InferRequestHeader {
  modelName: string;
  modelVersion: string;
  id: string;
  inputs: TensorHeader[];
}

/** Fields 1-7 of ModelInferRequest, and 1, 2, 4, 5 of its InferInputTensor, are all length-delimited. */
function expectLen(message: string, field: number, type: number, known: (field: number) => boolean): void {
  if (known(field) && type !== LEN) throw new WireFormatError(`${message} field ${field} has wire type ${type}; it is length-delimited`);
}

/**
 * Reads the routing fields of an encoded ModelInferRequest, skipping tensor contents.
 * Throws WireFormatError for bytes that are not one, RequestLimitError for one over
 * REQUEST_LIMITS (requested outputs and parameter keys are checked, not kept).
 */
export function readInferRequestHeader(bytes: Uint8Array): InferRequestHeader {
  const buf = asBuffer(bytes);
  const reader = new Reader(buf);
  const header: InferRequestHeader = { modelName: '', modelVersion: '', id: '', inputs: [] };
  let outputs = 0;
  let parameters = 0;
  while (!reader.done) {
    const { field, type } = reader.tag();
    // A known field of the wrong type is refused here: forwarded, it would fail to decode at the worker.
    expectLen('ModelInferRequest', field, type, (f) => f >= 1 && f <= 7);
    if (field === 1 && type === LEN) header.modelName = reader.boundedString('model_name', REQUEST_LIMITS.nameBytes);
    else if (field === 2 && type === LEN) header.modelVersion = reader.boundedString('model_version', REQUEST_LIMITS.versionBytes);
    else if (field === 3 && type === LEN) header.id = reader.boundedString('id', REQUEST_LIMITS.nameBytes);
    else if (field === 4 && type === LEN) checkParameter(reader, 'parameters', ++parameters);
    else if (field === 5 && type === LEN) {
      if (header.inputs.length === REQUEST_LIMITS.tensors) throw new RequestLimitError(`the request has more than ${REQUEST_LIMITS.tensors} inputs`);
      const [start, end] = reader.delimited();
      header.inputs.push(readTensorHeader(buf, start, end, header.inputs.length));
    } else if (field === 6 && type === LEN) {
      if (++outputs > REQUEST_LIMITS.tensors) throw new RequestLimitError(`the request has more than ${REQUEST_LIMITS.tensors} outputs`);
      checkRequestedOutput(reader, outputs - 1);
    } else reader.skip(type);
  }
  return header;
}

function readTensorHeader(buf: Buffer, start: number, end: number, index: number): TensorHeader {
  const reader = new Reader(buf, start, end);
  const tensor: TensorHeader = { name: '', datatype: '', shape: [] };
  const dim = (value: number) => (Number.isSafeInteger(value) ? value : -1);
  const addDim = (value: number) => {
    if (tensor.shape.length === REQUEST_LIMITS.dims) throw new RequestLimitError(`inputs[${index}].shape has more than ${REQUEST_LIMITS.dims} dimensions`);
    tensor.shape.push(dim(value));
  };
  let parameters = 0;
  while (!reader.done) {
    const { field, type } = reader.tag();
    expectLen('InferInputTensor', field, type, (f) => f === 1 || f === 2 || f === 4 || f === 5);
    if (field === 1 && type === LEN) tensor.name = reader.boundedString(`inputs[${index}].name`, REQUEST_LIMITS.nameBytes);
    else if (field === 2 && type === LEN) tensor.datatype = reader.boundedString(`inputs[${index}].datatype`, REQUEST_LIMITS.datatypeBytes);
    else if (field === 3 && type === LEN) {
      // Packed (what proto3 encoders write) ...
      const [s, e] = reader.delimited();
      const packed = new Reader(buf, s, e);
      while (!packed.done) addDim(packed.varint());
    } else if (field === 3 && type === VARINT) addDim(reader.varint()); // ... or one by one (also valid).
    else if (field === 4 && type === LEN) checkParameter(reader, `inputs[${index}].parameters`, ++parameters);
    else reader.skip(type);
  }
  return tensor;
}

/** A requested output (InferRequestedOutputTensor): its name and parameter keys within the limits. */
function checkRequestedOutput(outer: Reader, index: number): void {
  const [start, end] = outer.delimited();
  const reader = new Reader(outer.buf, start, end);
  let parameters = 0;
  while (!reader.done) {
    const { field, type } = reader.tag();
    expectLen('InferRequestedOutputTensor', field, type, (f) => f === 1 || f === 2);
    if (field === 1 && type === LEN) reader.boundedString(`outputs[${index}].name`, REQUEST_LIMITS.nameBytes);
    else if (field === 2 && type === LEN) checkParameter(reader, `outputs[${index}].parameters`, ++parameters);
    else reader.skip(type);
  }
}

/** One entry of a map<string, InferParameter>: its key within the limits, and not too many entries. */
function checkParameter(outer: Reader, map: string, count: number): void {
  if (count > REQUEST_LIMITS.parameters) throw new RequestLimitError(`${map} has more than ${REQUEST_LIMITS.parameters} entries`);
  const [start, end] = outer.delimited();
  const reader = new Reader(outer.buf, start, end);
  while (!reader.done) {
    const { field, type } = reader.tag();
    expectLen(`${map} entry`, field, type, (f) => f === 1 || f === 2);
    if (field === 1 && type === LEN) reader.boundedString(`${map} key ${count - 1}`, REQUEST_LIMITS.nameBytes);
    else reader.skip(type);
  }
}

/** Leading dimension of the first input: the request's items (rows), 0 when it has none. */
export function itemsOf(header: InferRequestHeader): number {
  const first = header.inputs[0]?.shape[0];
  return first !== undefined && first > 0 ? first : 0;
}

/**
 * How far a batch message may exceed the public message limit (GRPC_MAX_MESSAGE_BYTES): a
 * router packs requests into messages of at most the limit, but one request of nearly the
 * limit still gets its framing and trace context around it. Routers and workers allow this
 * much more between themselves.
 */
export const BATCH_HEADROOM_BYTES = 1024 * 1024;

/** Bytes a request adds to a batch message beyond its own: framing, timings, traceparent. */
export const BATCHED_REQUEST_OVERHEAD_BYTES = 128;

/** The longest error message a PreprocessResult carries (UTF-8 bytes). */
export const PREPROCESS_ERROR_BYTES = 1024;
/** What a PreprocessResult's own framing adds at most: its tag and length, the pixels', the count. */
const PREPROCESS_RESULT_FRAMING_BYTES = 32;
/** One image's ImageStatistics in a PreprocessResult at most: tag and length, two varints, two doubles. */
const IMAGE_STATISTICS_BYTES = 32;

/**
 * The most bytes a PreprocessResult for `images` images of `frameBytes` each can take in the
 * answer: its frames and their statistics, or its error message, and its framing. The worker
 * packs its calls with it and the preprocessor refuses calls by it, so the two agree on what fits.
 */
export function preprocessResultBytes(images: number, frameBytes: number): number {
  return Math.max(images * (frameBytes + IMAGE_STATISTICS_BYTES), PREPROCESS_ERROR_BYTES) + PREPROCESS_RESULT_FRAMING_BYTES;
}

/** One client request as a router hands it to a worker (infermesh.v1.BatchedRequest). */
export interface BatchedRequestParts {
  /** The client's ModelInferRequest bytes, forwarded as they are. */
  request: Uint8Array;
  queuedUs: number;
  timeoutUs: number;
  traceparent: string;
  /** Ask the worker for the answer's output sample (BatchedRequest.sample_outputs): the router compares this answer with a shadow's. */
  sampleOutputs?: boolean;
}

/**
 * Values of an output sample (BatchedResponse.output_sample) at most: enough to tell two
 * versions' numbers apart, small enough for every answer the router compares.
 */
export const OUTPUT_SAMPLE_VALUES = 64;

/** Encodes an infermesh.v1.InferBatchRequest around the clients' request bytes (copied once, never decoded). */
export function encodeInferBatchRequest(modelName: string, modelVersion: string, requests: readonly BatchedRequestParts[], batchId = 0): Buffer {
  const nameLength = Buffer.byteLength(modelName);
  const versionLength = Buffer.byteLength(modelVersion);
  const itemLengths = requests.map((r) => {
    const traceLength = r.traceparent.length; // ASCII by definition (W3C trace context)
    return (
      lenField(1, r.request.byteLength)
      + (r.queuedUs > 0 ? 1 + varintSize(r.queuedUs) : 0)
      + (r.timeoutUs > 0 ? 1 + varintSize(r.timeoutUs) : 0)
      + (traceLength > 0 ? lenField(4, traceLength) : 0)
      + (r.sampleOutputs ? 2 : 0)
    );
  });
  let total = (nameLength ? lenField(1, nameLength) : 0) + (versionLength ? lenField(2, versionLength) : 0) + (batchId > 0 ? 1 + varintSize(batchId) : 0);
  for (const length of itemLengths) total += lenField(3, length);
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  if (nameLength) {
    pos = writeTagLength(out, pos, 1, nameLength);
    pos += out.write(modelName, pos, 'utf8');
  }
  if (versionLength) {
    pos = writeTagLength(out, pos, 2, versionLength);
    pos += out.write(modelVersion, pos, 'utf8');
  }
  requests.forEach((r, i) => {
    pos = writeTagLength(out, pos, 3, itemLengths[i]);
    pos = writeTagLength(out, pos, 1, r.request.byteLength);
    out.set(r.request, pos);
    pos += r.request.byteLength;
    if (r.queuedUs > 0) {
      out[pos++] = (2 << 3) | VARINT;
      pos = writeVarint(out, pos, r.queuedUs);
    }
    if (r.timeoutUs > 0) {
      out[pos++] = (3 << 3) | VARINT;
      pos = writeVarint(out, pos, r.timeoutUs);
    }
    if (r.traceparent.length > 0) {
      pos = writeTagLength(out, pos, 4, r.traceparent.length);
      pos += out.write(r.traceparent, pos, 'latin1');
    }
    if (r.sampleOutputs) {
      out[pos++] = (5 << 3) | VARINT;
      out[pos++] = 1;
    }
  });
  if (batchId > 0) {
    out[pos++] = (4 << 3) | VARINT;
    pos = writeVarint(out, pos, batchId);
  }
  if (pos !== total) throw new Error(`InferBatchRequest encoder wrote ${pos} of ${total} bytes`);
  return out;
}

/** One answer of a worker's infermesh.v1.InferBatchResponse. */
export interface BatchedResponseParts {
  /** The encoded ModelInferResponse, a view into the response (empty when the request failed). */
  response: Buffer;
  statusCode: number;
  errorMessage: string;
  preprocessUs: number;
  queueUs: number;
  computeUs: number;
  batchSize: number;
  /** For the prediction record (see infermesh.v1.BatchedResponse): a view into the response, like `response`. */
  driftBins: Buffer;
  profileId: string;
  predictedLabels: string[];
  /** The id the response carries ('' when the worker did not say). */
  requestId: string;
  /** The first values of the answer's first output, when asked for and the model has no labels; at most OUTPUT_SAMPLE_VALUES kept. */
  outputSample: number[];
}

/** A worker's infermesh.v1.InferBatchResponse: the batch it answers, and each request's answer. */
export interface InferBatchResponseParts {
  batchId: number;
  /** Non-zero when the batch as a whole could not run (then `answers` is empty). */
  statusCode: number;
  errorMessage: string;
  answers: BatchedResponseParts[];
}

const EMPTY = Buffer.alloc(0);

/** Splits an encoded InferBatchResponse into its answers without decoding them. */
export function readInferBatchResponse(bytes: Uint8Array): InferBatchResponseParts {
  const buf = asBuffer(bytes);
  const reader = new Reader(buf);
  const parts: InferBatchResponseParts = { batchId: 0, statusCode: 0, errorMessage: '', answers: [] };
  const answers = parts.answers;
  while (!reader.done) {
    const { field, type } = reader.tag();
    if (field === 2 && type === VARINT) {
      parts.batchId = reader.varint();
      continue;
    }
    if (field === 3 && type === VARINT) {
      parts.statusCode = reader.varint();
      continue;
    }
    if (field === 4 && type === LEN) {
      parts.errorMessage = reader.string();
      continue;
    }
    if (field !== 1 || type !== LEN) {
      reader.skip(type);
      continue;
    }
    const [start, end] = reader.delimited();
    const item = new Reader(buf, start, end);
    const answer: BatchedResponseParts = {
      response: EMPTY, statusCode: 0, errorMessage: '', preprocessUs: 0, queueUs: 0, computeUs: 0, batchSize: 0, driftBins: EMPTY, profileId: '', predictedLabels: [], requestId: '', outputSample: [],
    };
    while (!item.done) {
      const { field: f, type: t } = item.tag();
      if (f === 1 && t === LEN) answer.response = item.bytes();
      else if (f === 2 && t === VARINT) answer.statusCode = item.varint();
      else if (f === 3 && t === LEN) answer.errorMessage = item.string();
      else if (f === 4 && t === VARINT) answer.preprocessUs = item.varint();
      else if (f === 5 && t === VARINT) answer.queueUs = item.varint();
      else if (f === 6 && t === VARINT) answer.computeUs = item.varint();
      else if (f === 7 && t === VARINT) answer.batchSize = item.varint();
      else if (f === 8 && t === LEN) answer.driftBins = item.bytes();
      else if (f === 9 && t === LEN) answer.profileId = item.string();
      else if (f === 10 && t === LEN) answer.predictedLabels.push(item.string());
      else if (f === 11 && t === LEN) answer.requestId = item.string();
      else if (f === 12 && t === LEN) readFloats(item, answer.outputSample);
      else if (f === 12 && t === FIXED32) readFloats(item, answer.outputSample, 4);
      else item.skip(t);
    }
    answers.push(answer);
  }
  return parts;
}

/**
 * Floats of a repeated float field onto `into`, up to OUTPUT_SAMPLE_VALUES in all (the rest
 * skipped): packed (what proto3 encoders write), or one unpacked value of `bytes` (4) bytes.
 */
function readFloats(reader: Reader, into: number[], bytes?: number): void {
  const [start, end] = bytes === undefined ? reader.delimited() : [reader.pos, reader.pos + bytes];
  if (end > reader.end || (end - start) % 4 !== 0) throw new WireFormatError('a repeated float field whose length is not a multiple of 4 bytes');
  reader.pos = end;
  for (let at = start; at < end && into.length < OUTPUT_SAMPLE_VALUES; at += 4) into.push(reader.buf.readFloatLE(at));
}

/** The reader behind the readers here, for a service's own reader of a message it takes as bytes (the router's FeedbackRequest). */
export { Reader as WireReader };

/** A ModelStreamInferResponse whose `infer_response` (field 2) is the given encoded ModelInferResponse. */
export function encodeStreamInferResponse(inferResponse: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(lenField(2, inferResponse.byteLength));
  const pos = writeTagLength(out, 0, 2, inferResponse.byteLength);
  out.set(inferResponse, pos);
  return out;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** Size of a length-delimited field: key, length, payload. */
function lenField(field: number, length: number): number {
  return varintSize(field * 8 + LEN) + varintSize(length) + length;
}

function writeVarint(out: Buffer, pos: number, value: number): number {
  while (value >= 128) {
    out[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}

function writeTagLength(out: Buffer, pos: number, field: number, length: number): number {
  return writeVarint(out, writeVarint(out, pos, field * 8 + LEN), length);
}
