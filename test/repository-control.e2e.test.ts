/**
 * Repository control through the public API, every service its own process: a Triton
 * client's RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload and ModelConfig (built
 * from test/fixtures/triton-repository-client.proto) against the router, with two workers
 * serving a copy of the models in a temporary repository. A version change (version 2 added
 * and loaded, version 1 unloaded) under steady traffic from a few clients answers every
 * request; a load that fails leaves the serving version serving; only admin keys may load
 * or unload when keys are on.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as protoLoader from '@grpc/proto-loader';
import { stringify } from 'yaml';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';
import { codeOf, grpc, inferenceClient, type InferenceClient, type Json } from './helpers/client.js';

const PROTO = fileURLToPath(new URL('./fixtures/triton-repository-client.proto', import.meta.url));
const IRIS_ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };
const CLIENTS = 4;

interface ModelIndex { name: string; version: string; state: string; reason: string }

let mesh: Mesh;
let repository: string;
let keysDir: string;
let inference: InferenceClient;
let repositoryApi: InferenceClient;
let keyedApi: InferenceClient;
const adminKey = apiKey('ops');
const readerKey = apiKey('reader');

/** A key as `infermesh keys create` makes one: imk_<id>_<32 random bytes, base64url>. */
function apiKey(id: string): { id: string; key: string; sha256: string } {
  const key = `imk_${id}_${randomBytes(32).toString('base64url')}`;
  return { id, key, sha256: createHash('sha256').update(key).digest('hex') };
}

/** A client of the repository RPCs built from the fixture alone (snake_case, as Triton's Python client sees them). */
function repositoryClient(address: string): InferenceClient {
  const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const Service = (grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: typeof grpc.Client } }).inference.GRPCInferenceService;
  const client = new Service(address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, (req: Json, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void>;
  return {
    call<T>(method: string, request: Json, options: { metadata?: grpc.Metadata; timeoutMs?: number } = {}) {
      return new Promise<T>((resolve, reject) =>
        client[method](request, options.metadata ?? new grpc.Metadata(), { deadline: Date.now() + (options.timeoutMs ?? 60_000) }, (error, response) => (error ? reject(error) : resolve(response as T))),
      );
    },
    close: () => client.close(),
  };
}

const bearer = (key: string) => {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  return metadata;
};

const irisRequest = () => ({
  model_name: 'iris',
  inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(JSON.stringify(IRIS_ROW))] } }],
});

async function index(): Promise<ModelIndex[]> {
  return (await repositoryApi.call<{ models: ModelIndex[] }>('RepositoryIndex', {})).models.filter((m) => m.name === 'iris');
}

const versionParameter = (versions: string) => ({ version: { string_param: versions } });

/** Requests sent by `CLIENTS` clients one after another until stopped: the versions that answered, and every failure. */
function steadyTraffic() {
  let running = true;
  const answeredBy = new Map<string, number>();
  const errors: string[] = [];
  const clients = Array.from({ length: CLIENTS }, async () => {
    while (running) {
      try {
        const response = await inference.call<{ model_version: string }>('ModelInfer', irisRequest(), { timeoutMs: 30_000 });
        answeredBy.set(response.model_version, (answeredBy.get(response.model_version) ?? 0) + 1);
      } catch (error) {
        errors.push((error as grpc.ServiceError).details ?? String(error));
      }
    }
  });
  return {
    answeredBy,
    errors,
    /** Waits until `version` has answered `count` more requests. */
    async until(version: string, count: number) {
      const start = answeredBy.get(version) ?? 0;
      while ((answeredBy.get(version) ?? 0) < start + count) await new Promise((resolve) => setTimeout(resolve, 20));
    },
    async stop() {
      running = false;
      await Promise.all(clients);
    },
  };
}

beforeAll(async () => {
  repository = await mkdtemp(join(tmpdir(), 'infermesh-repository-'));
  await cp(join(ROOT, 'models', 'iris'), join(repository, 'iris'), { recursive: true });
  keysDir = await mkdtemp(join(tmpdir(), 'infermesh-repository-keys-'));
  const keysFile = join(keysDir, 'keys.yaml');
  await writeFile(keysFile, stringify({ keys: [
    { id: adminKey.id, sha256: adminKey.sha256, models: '*', admin: true },
    { id: readerKey.id, sha256: readerKey.sha256, models: '*', admin: false },
  ] }));
  // Polling off: versions change here only when the API asks.
  // NATS with the mesh's users and permissions: routers may ask workers, workers may only answer.
  mesh = await startMesh({ workers: 2, natsAuth: true, env: { MODEL_REPOSITORY: repository }, workerEnv: { WORKER_REPOSITORY_POLL_MS: '0', WORKER_UNLOAD_DELAY_MS: '1000' } });
  const keyed = await mesh.startRouter('keyed-router', { env: { ROUTER_API_KEYS_FILE: keysFile } });
  inference = inferenceClient(mesh.routerAddress);
  repositoryApi = repositoryClient(mesh.routerAddress);
  keyedApi = repositoryClient(keyed.address);
}, 180_000);

afterAll(async () => {
  inference?.close();
  repositoryApi?.close();
  keyedApi?.close();
  await mesh?.stop();
  await rm(repository, { recursive: true, force: true });
  await rm(keysDir, { recursive: true, force: true });
});

describe('repository control through the public API', () => {
  it('answers ModelConfig with the fields of config.yaml in Triton\'s ModelConfig', async () => {
    const { config } = await repositoryApi.call<{ config: Json }>('ModelConfig', { name: 'iris' });
    expect(config).toMatchObject({
      name: 'iris', platform: 'onnxruntime_onnx', backend: 'onnxruntime', max_batch_size: 64,
      input: [{ name: 'row', data_type: 'TYPE_STRING', dims: [] }],
      output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: ['3'] }, { name: 'label', data_type: 'TYPE_INT64', dims: [] }],
      instance_group: [{ count: 1, kind: 'KIND_CPU' }],
      dynamic_batching: { preferred_batch_size: [16, 32], max_queue_delay_microseconds: '0' },
    });
  });

  it('changes versions under steady traffic with no failed request: one added and loaded, the old one unloaded; then by the version policy', async () => {
    const traffic = steadyTraffic();
    try {
      await traffic.until('1', 20);
      // Version 2 added and loaded beside 1, then 1 unloaded at once: requests pinned to 1 drain.
      await cp(join(repository, 'iris', '1'), join(repository, 'iris', '2'), { recursive: true });
      await repositoryApi.call('RepositoryModelLoad', { model_name: 'iris' });
      await repositoryApi.call('RepositoryModelUnload', { model_name: 'iris', parameters: versionParameter('1') });
      expect(await index()).toEqual([
        { name: 'iris', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
        { name: 'iris', version: '2', state: 'READY', reason: '' },
      ]);
      await traffic.until('2', 20);
      // Version 3 and a policy of the latest one: one load puts 3 in and drains 2.
      await cp(join(repository, 'iris', '1'), join(repository, 'iris', '3'), { recursive: true });
      await rm(join(repository, 'iris', '1'), { recursive: true });
      const config = await readFile(join(repository, 'iris', 'config.yaml'), 'utf8');
      await writeFile(join(repository, 'iris', 'config.yaml'), `${config}\nversion_policy: {latest: {num_versions: 1}}\n`);
      await repositoryApi.call('RepositoryModelLoad', { model_name: 'iris' });
      expect(await index()).toEqual([
        { name: 'iris', version: '2', state: 'UNAVAILABLE', reason: 'unloaded' },
        { name: 'iris', version: '3', state: 'READY', reason: '' },
      ]);
      await traffic.until('3', 20);
    } finally {
      await traffic.stop();
    }
    expect(traffic.errors).toEqual([]);
    expect([...traffic.answeredBy.keys()].sort()).toEqual(['1', '2', '3']);
  });

  it('refuses a load whose model file is broken with FAILED_PRECONDITION and the reason, the serving version serving', async () => {
    await mkdir(join(repository, 'iris', '4'), { recursive: true });
    await writeFile(join(repository, 'iris', '4', 'model.onnx'), 'not an onnx model');
    try {
      const refused = await codeOf(repositoryApi.call('RepositoryModelLoad', { model_name: 'iris', parameters: versionParameter('4') }));
      expect(refused.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(refused.details).toContain("failed to load model 'iris'");
      expect(refused.details).toContain('version 4');
      const four = (await index()).find((m) => m.version === '4')!;
      expect(four.state).toBe('UNAVAILABLE');
      expect(four.reason).not.toBe('');
      const answer = await inference.call<{ model_version: string }>('ModelInfer', irisRequest());
      expect(answer.model_version).toBe('3');
    } finally {
      await rm(join(repository, 'iris', '4'), { recursive: true, force: true });
    }
  });

  it('answers NOT_FOUND for a model no worker\'s repository has', async () => {
    const refused = await codeOf(repositoryApi.call('RepositoryModelLoad', { model_name: 'no-such-model' }));
    expect(refused.code).toBe(grpc.status.NOT_FOUND);
    expect(refused.details).toContain("no worker's model repository has model 'no-such-model'");
  });

  it('refuses load and unload to a key that is not an admin key, and takes them from an admin key', async () => {
    const refused = await codeOf(keyedApi.call('RepositoryModelLoad', { model_name: 'iris' }, { metadata: bearer(readerKey.key) }));
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    const unload = await codeOf(keyedApi.call('RepositoryModelUnload', { model_name: 'iris' }, { metadata: bearer(readerKey.key) }));
    expect(unload.code).toBe(grpc.status.PERMISSION_DENIED);
    await keyedApi.call('RepositoryModelLoad', { model_name: 'iris', parameters: versionParameter('3') }, { metadata: bearer(adminKey.key) });
  });
});
