/**
 * Structure-aware mutation of valid ModelInferRequests for iris and text-direction, sent to
 * a real mesh (every service its own process): datatypes, shapes, contents, the count and
 * lengths of raw_input_contents, names, ids, versions and parameters are changed, one to
 * three at a time, and some encoded requests are cut or have a byte flipped. No case may
 * answer INTERNAL or UNKNOWN, or hang to its deadline, and no process may exit; a good
 * request succeeds afterwards.
 *
 * Seeded with mulberry32: the seed is printed, and MUTATION_SEED=<seed> replays a run
 * (MUTATION_CASES sets how many cases; 300 by default).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as protoLoader from '@grpc/proto-loader';
import { mulberry32 } from '@infermesh/testing';
import { grpc } from './helpers/client.js';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';

const SEED = Number(process.env.MUTATION_SEED ?? Math.floor(Math.random() * 2 ** 32));
const CASES = Number(process.env.MUTATION_CASES ?? 300);
/** Cases in flight at once: enough to overlap the hops, few enough for a 2-core machine. */
const CONCURRENCY = 8;
/** A request still unanswered after this long did unbounded work: a failure, like INTERNAL. */
const CASE_DEADLINE_MS = 15_000;
const FORBIDDEN = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DEADLINE_EXCEEDED]);

const definition = protoLoader.loadSync(join(ROOT, 'test/fixtures/open-inference-client.proto'), { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true });
const modelInfer = (definition['inference.GRPCInferenceService'] as protoLoader.ServiceDefinition).ModelInfer;

type Json = Record<string, unknown>;
interface Tensor { name?: string; datatype?: string; shape?: (number | string)[]; contents?: Json; parameters?: Json }
interface Request { model_name?: string; model_version?: string; id?: string; parameters?: Json; inputs?: Tensor[]; outputs?: { name?: string; parameters?: Json }[]; raw_input_contents?: Buffer[] }

const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'];
const ODD_STRINGS = ['', ' ', 'fp32', 'FLOAT32', 'x'.repeat(300), 'iris', 'text-direction', 'row', 'image', 'features', 'x', '\u0000', 'ünïcödé', '../../etc/passwd', '%s%n', '1', '-1', '99999999999999999999'];
const ODD_DIMS: (number | string)[] = [0, 1, 2, 3, 4, 31, 32, 33, 64, 65, -1, -2, 1000, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, '9223372036854775807', '-9223372036854775808', '4611686018427387904'];

function bytesTensor(elements: Buffer[]): Buffer {
  return Buffer.concat(elements.flatMap((e) => {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(e.length);
    return [length, e];
  }));
}

const ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };
const upright = readFileSync(join(ROOT, 'models/text-direction/samples/upright.png'));

/** Valid requests to mutate: each model's raw input in both encodings, and iris's feature tensor. */
const SEEDS: (() => Request)[] = [
  () => ({ model_name: 'iris', id: 'r1', inputs: [{ name: 'row', datatype: 'BYTES', shape: [2], contents: { bytes_contents: [Buffer.from(JSON.stringify(ROW)), Buffer.from(JSON.stringify({ ...ROW, petal_width: 0.2 }))] } }] }),
  () => ({ model_name: 'iris', model_version: '1', inputs: [{ name: 'row', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([Buffer.from(JSON.stringify(ROW))])], outputs: [{ name: 'probabilities' }] }),
  () => ({ model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.from(Float32Array.from([6.3, 3.3, 6.0, 2.5]).buffer)], parameters: { priority: { int64_param: 1 } } }),
  () => ({ model_name: 'iris', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [5.1, 3.5, 1.4, 0.2] } }] }),
  () => ({ model_name: 'text-direction', id: 't1', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([upright])] }),
  () => ({ model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [2], contents: { bytes_contents: [upright, upright] } }], outputs: [{ name: 'softmax_0.tmp_0', parameters: { classification: { int64_param: 1 } } }] }),
];

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)];
const int = (random: Random, below: number) => Math.floor(random() * below);

/** A copy of `bytes` changed the way a buggy or hostile client would: cut, grown, a byte flipped, or replaced. */
function mutateBytes(random: Random, bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  switch (int(random, 5)) {
    case 0: return out.subarray(0, int(random, out.length + 1));
    case 1: return Buffer.concat([out, Buffer.from(Array.from({ length: 1 + int(random, 16) }, () => int(random, 256)))]);
    case 2:
      if (out.length > 0) out[int(random, out.length)] ^= 1 << int(random, 8);
      return out;
    case 3:
      // A BYTES length prefix (or any 4 bytes) set to a length past the end.
      if (out.length >= 4) out.writeUInt32LE(pick(random, [out.length, 2 ** 31, 2 ** 32 - 1, out.length + 1]), 4 * int(random, Math.floor(out.length / 4)));
      return out;
    default: return Buffer.from(Array.from({ length: int(random, 64) }, () => int(random, 256)));
  }
}

/** One structure-aware change; returns what it did, for the failure message. */
function mutate(random: Random, request: Request): string {
  const inputs = (request.inputs ??= []);
  const input = inputs.length > 0 ? pick(random, inputs) : undefined;
  switch (int(random, 12)) {
    case 0:
      if (!input) return 'no input to retype';
      input.datatype = random() < 0.8 ? pick(random, DATATYPES) : pick(random, ODD_STRINGS);
      return `datatype ${input.datatype.slice(0, 20)}`;
    case 1: {
      if (!input) return 'no input to reshape';
      const shape = (input.shape ??= []);
      const what = int(random, 3);
      if (what === 0 && shape.length > 0) shape[int(random, shape.length)] = pick(random, ODD_DIMS);
      else if (what === 1) shape.splice(int(random, shape.length + 1), 0, pick(random, ODD_DIMS));
      else shape.splice(int(random, Math.max(1, shape.length)), 1);
      return `shape [${shape.join(', ')}]`;
    }
    case 2: {
      const raw = request.raw_input_contents;
      if (!raw || raw.length === 0) return 'no raw contents to change';
      const at = int(random, raw.length);
      raw[at] = mutateBytes(random, raw[at]);
      return `raw_input_contents[${at}] now ${raw[at].length} bytes`;
    }
    case 3: {
      const raw = (request.raw_input_contents ??= []);
      if (random() < 0.5 && raw.length > 0) raw.splice(int(random, raw.length), 1);
      else raw.push(mutateBytes(random, raw[0] ?? Buffer.alloc(16)));
      return `${raw.length} raw_input_contents entries`;
    }
    case 4: {
      const contents = input?.contents as Record<string, unknown[]> | undefined;
      if (!input || !contents) return 'no typed contents to change';
      const [field, values] = Object.entries(contents)[0] ?? ['fp32_contents', []];
      const target = pick(random, ['bool_contents', 'int_contents', 'int64_contents', 'uint_contents', 'uint64_contents', 'fp32_contents', 'fp64_contents', 'bytes_contents', field]);
      const changed = values.slice(0, int(random, values.length + 2));
      input.contents = { [target]: target === 'bytes_contents' ? changed.map((v) => (Buffer.isBuffer(v) ? mutateBytes(random, v) : Buffer.from(String(v)))) : changed.map(() => (target.startsWith('bool') ? random() < 0.5 : pick(random, [0, 1, -1, 1e39, 3.5, 2 ** 31]))) };
      return `contents.${target} with ${changed.length} values`;
    }
    case 5:
      request.model_name = pick(random, ODD_STRINGS);
      return `model_name '${request.model_name.slice(0, 20)}'`;
    case 6:
      if (!input) return 'no input to rename';
      input.name = pick(random, ODD_STRINGS);
      return `input name '${input.name.slice(0, 20)}'`;
    case 7:
      (request.outputs ??= []).push({ name: pick(random, ODD_STRINGS), parameters: random() < 0.5 ? { classification: { int64_param: pick(random, [0, 1, 3, -1, 1000]) } } : undefined });
      return `${request.outputs.length} requested outputs`;
    case 8: {
      const key = pick(random, ODD_STRINGS) || 'k';
      const value = pick(random, [{ bool_param: true }, { int64_param: '-9223372036854775808' }, { string_param: 'x'.repeat(int(random, 2000)) }]);
      if (input && random() < 0.5) input.parameters = { ...input.parameters, [key]: value };
      else request.parameters = { ...request.parameters, [key]: value };
      return `parameter '${key.slice(0, 20)}'`;
    }
    case 9:
      request.model_version = pick(random, ['0', '2', '-1', '1.0', 'latest', ...ODD_STRINGS]);
      return `model_version '${request.model_version.slice(0, 20)}'`;
    case 10:
      if (random() < 0.5 && inputs.length > 0) inputs.splice(int(random, inputs.length), 1);
      else inputs.push({ ...(input ?? {}), name: random() < 0.5 ? input?.name : pick(random, ODD_STRINGS) });
      return `${inputs.length} inputs`;
    default:
      request.id = pick(random, ODD_STRINGS);
      return `id '${request.id.slice(0, 20)}'`;
  }
}

interface MutatedCase { index: number; seed: string; what: string[]; bytes: Buffer }

/** Case `index` of the run: its own generator from (SEED, index), so any one case can be replayed alone. */
function mutatedCase(index: number): MutatedCase {
  const random = mulberry32((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const seed = int(random, SEEDS.length);
  const request = SEEDS[seed]();
  const what = Array.from({ length: 1 + int(random, 3) }, () => mutate(random, request));
  let bytes: Buffer = modelInfer.requestSerialize(request);
  // Some cases also go wrong below the structure: an encoder's bug, a cut connection's bytes.
  if (random() < 0.15) {
    bytes = mutateBytes(random, bytes);
    what.push(`encoded bytes changed (${bytes.length} bytes)`);
  }
  return { index, seed: `seed request ${seed}`, what, bytes };
}

let mesh: Mesh;
let client: grpc.Client;

function infer(bytes: Buffer, deadlineMs = CASE_DEADLINE_MS): Promise<{ code: grpc.status; details: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', (b: Buffer) => b, (b: Buffer) => b, bytes, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error) =>
      resolve(error ? { code: error.code, details: error.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

const good = () => modelInfer.requestSerialize(SEEDS[0]());

beforeAll(async () => {
  mesh = await startMesh({ traces: false });
  client = new grpc.Client(mesh.routerAddress, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
  // The router learns of the worker from its first heartbeat; both models must answer before the run.
  const ready = async () => (await Promise.all([good(), modelInfer.requestSerialize(SEEDS[4]())].map((bytes) => infer(bytes, 10_000)))).every((a) => a.code === grpc.status.OK);
  for (let i = 0; i < 200 && !(await ready()); i++) await new Promise((resolve) => setTimeout(resolve, 100));
});

afterAll(async () => {
  client?.close();
  await mesh?.stop();
});

describe('mutated ModelInferRequests', () => {
  it('answers every seed request before mutation (the mutations start from valid requests)', async () => {
    for (const seed of SEEDS) {
      const answer = await infer(modelInfer.requestSerialize(seed()));
      expect(answer.code, answer.details).toBe(grpc.status.OK);
    }
  });

  it(`answers ${CASES} mutated requests with no INTERNAL, UNKNOWN or hang, and no process exits`, async () => {
    console.log(`mutation seed ${SEED} (MUTATION_SEED=${SEED} replays this run), ${CASES} cases`);
    const counts = new Map<string, number>();
    const failures: string[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < CASES) {
        const mutated = mutatedCase(next++);
        const answer = await infer(mutated.bytes);
        counts.set(grpc.status[answer.code], (counts.get(grpc.status[answer.code]) ?? 0) + 1);
        if (FORBIDDEN.has(answer.code)) {
          failures.push(`case ${mutated.index} (MUTATION_SEED=${SEED}; ${mutated.seed}: ${mutated.what.join('; ')}): ${grpc.status[answer.code]} ${answer.details.slice(0, 200)}`);
        }
      }
    }));
    console.log(`statuses: ${[...counts].map(([code, n]) => `${code} ${n}`).join(', ')}`);
    expect(failures).toEqual([]);
    const exited = mesh.services.filter((s) => s.process.exitCode !== null || s.process.signalCode !== null).map((s) => s.name);
    expect(exited).toEqual([]);
  }, 120_000);

  it('still answers a good request after the mutated ones', async () => {
    const answer = await infer(good());
    expect(answer.code, answer.details).toBe(grpc.status.OK);
  });
});
