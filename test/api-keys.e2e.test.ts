/**
 * API keys on the public API, end to end: keys made with `infermesh keys create` into a keys
 * file, a router started with ROUTER_API_KEYS_FILE, every service its own process, called
 * with a plain Open Inference Protocol client (and the mesh's own client for the Triton
 * extensions: streaming, statistics, repository index).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { encodeBytesElements } from '@infermesh/tensor';
import { contracts, type GRPCInferenceServiceClient, type ModelStreamInferResponse__Output, type PredictionBatch__Output } from '@infermesh/contracts';
import { connectBus, events, streamName } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startMesh, waitForOutput, ROOT, type Mesh } from './helpers/mesh.js';
import { codeOf, grpc, inferenceClient, type InferenceClient } from './helpers/client.js';

const IRIS_ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };

let mesh: Mesh;
let dir: string;
let keysFile: string;
let client: InferenceClient;
let meshClient: GRPCInferenceServiceClient;
/** A key with a known id and a wrong secret. */
let forged = '';
/** Each key by id, as `infermesh keys create` printed it. */
const keys: Record<string, string> = {};
/** The digests the keys file holds. */
let digests: string[] = [];

function cli(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), ...args], { timeout: 60_000, env: { ...process.env, INFERMESH_API_KEY: '', ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

async function createKey(id: string, ...options: string[]): Promise<void> {
  const made = await cli(['keys', 'create', '--id', id, '--file', keysFile, ...options]);
  expect(made.code, made.stderr).toBe(0);
  keys[id] = made.stdout.trim();
}

const bearer = (key: string) => {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  return metadata;
};

function irisRequest(id = '', rows = 1) {
  const row = Buffer.from(JSON.stringify(IRIS_ROW));
  return { id, model_name: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: [rows], contents: { bytes_contents: Array.from({ length: rows }, () => row) } }] };
}

/** A ModelStreamInfer stream of `requests`, its answers in order of arrival, or the status it ended with. */
function stream(metadata: grpc.Metadata, requests: object[]): Promise<{ answers: ModelStreamInferResponse__Output[]; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const answers: ModelStreamInferResponse__Output[] = [];
    const call = meshClient.ModelStreamInfer(metadata, { deadline: Date.now() + 20_000 });
    call.on('data', (answer: ModelStreamInferResponse__Output) => answers.push(answer));
    call.on('error', (error: grpc.ServiceError) => resolve({ answers, error }));
    call.on('end', () => resolve({ answers }));
    for (const request of requests) call.write(request);
    call.end();
  });
}

const streamItem = (id: string, model: string) => ({
  id,
  modelName: model,
  inputs: [{ name: 'row', datatype: 'BYTES', shape: ['1'] }],
  rawInputContents: [encodeBytesElements([Buffer.from(JSON.stringify(IRIS_ROW))])],
});

function unary<Res>(method: 'ModelStatistics' | 'RepositoryIndex', request: object, metadata: grpc.Metadata): Promise<Res> {
  return new Promise((resolve, reject) =>
    (meshClient[method] as unknown as (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Res) => void) => void)
      .call(meshClient, request, metadata, { deadline: Date.now() + 20_000 }, (error, response) => (error ? reject(error) : resolve(response!))),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'infermesh-keys-'));
  keysFile = join(dir, 'keys.yaml');
  await createKey('ops', '--admin');
  await createKey('iris-only', '--models', 'iris');
  await createKey('one-shot', '--rate', '0.001', '--burst', '1');
  await createKey('trial', '--quota-requests', '2', '--quota-period', 'day');
  await createKey('counted', '--models', 'iris');
  await createKey('revoked-later');
  digests = [...(await readFile(keysFile, 'utf8')).matchAll(/sha256: ([0-9a-f]{64})/g)].map((m) => m[1]);
  mesh = await startMesh({ routerEnv: { ROUTER_API_KEYS_FILE: keysFile } });
  client = inferenceClient(mesh.routerAddress);
  meshClient = new (contracts().inference.GRPCInferenceService)(mesh.routerAddress, grpc.credentials.createInsecure());
  for (let i = 0; i < 100; i++) {
    const ready = await client.call<{ ready: boolean }>('ModelReady', { name: 'iris' }, { metadata: bearer(keys.ops) });
    if (ready.ready) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

afterAll(async () => {
  client?.close();
  meshClient?.close();
  await mesh?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a router with a keys file', () => {
  it('answers the probes without a key', async () => {
    expect(await client.call('ServerLive', {})).toEqual({ live: true });
    expect(await client.call('ServerReady', {})).toEqual({ ready: true });
  });

  it('refuses a call without a key as UNAUTHENTICATED, saying how to send one', async () => {
    expect(await codeOf(client.call('ModelInfer', irisRequest()))).toEqual({ code: grpc.status.UNAUTHENTICATED, details: "missing API key: send 'authorization: Bearer <key>'" });
    expect((await codeOf(client.call('ServerMetadata', {}))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('refuses a key with a known id and a wrong secret, without echoing it', async () => {
    forged = `${keys['iris-only'].slice(0, -4)}AAAA`;
    expect(await codeOf(client.call('ModelInfer', irisRequest(), { metadata: bearer(forged) }))).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'unknown API key' });
  });

  it('serves a good key sent as a bearer token or as x-api-key', async () => {
    const response = await client.call<{ model_name: string }>('ModelInfer', irisRequest(), { metadata: bearer(keys['iris-only']) });
    expect(response.model_name).toBe('iris');
    const metadata = new grpc.Metadata();
    metadata.set('x-api-key', keys.ops);
    expect(await client.call('ModelInfer', irisRequest(), { metadata })).toMatchObject({ model_name: 'iris' });
  });

  it('refuses a model the key may not call as PERMISSION_DENIED, naming model and key', async () => {
    const request = { ...irisRequest(), model_name: 'text-direction' };
    expect(await codeOf(client.call('ModelInfer', request, { metadata: bearer(keys['iris-only']) }))).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: "key iris-only may not call model 'text-direction'",
    });
    expect((await codeOf(client.call('ModelMetadata', { name: 'text-direction' }, { metadata: bearer(keys['iris-only']) }))).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('refuses admin calls by a key that is not an admin key, and serves them to one that is', async () => {
    expect(await codeOf(unary('ModelStatistics', {}, bearer(keys['iris-only'])))).toEqual({ code: grpc.status.PERMISSION_DENIED, details: 'key iris-only may not call ModelStatistics: it is not an admin key' });
    expect((await codeOf(unary('RepositoryIndex', {}, bearer(keys['iris-only'])))).code).toBe(grpc.status.PERMISSION_DENIED);
    const index = await unary<{ models: { name: string }[] }>('RepositoryIndex', {}, bearer(keys.ops));
    expect(index.models.map((m) => m.name)).toContain('iris');
  });

  it('refuses a key over its rate as RESOURCE_EXHAUSTED', async () => {
    await client.call('ModelInfer', irisRequest(), { metadata: bearer(keys['one-shot']) });
    expect(await codeOf(client.call('ModelInfer', irisRequest(), { metadata: bearer(keys['one-shot']) }))).toEqual({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: 'key one-shot is over its rate limit of 0.001 requests/s',
    });
  });

  it('refuses a key past its quota as RESOURCE_EXHAUSTED, naming the quota and when it resets', async () => {
    await client.call('ModelInfer', irisRequest(), { metadata: bearer(keys.trial) });
    await client.call('ModelInfer', irisRequest(), { metadata: bearer(keys.trial) });
    const refused = await codeOf(client.call('ModelInfer', irisRequest(), { metadata: bearer(keys.trial) }));
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/^key trial has used its quota of 2 requests per day; it resets at \d{4}-\d\d-\d\dT00:00:00Z$/);
  });

  it('ends a stream without a key as UNAUTHENTICATED', async () => {
    const { answers, error } = await stream(new grpc.Metadata(), [streamItem('s0', 'iris')]);
    expect(answers).toEqual([]);
    expect(error?.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('checks each item of a stream against the stream\'s key: an item for a model it may not call fails alone', async () => {
    const { answers, error } = await stream(bearer(keys['iris-only']), [streamItem('ok-1', 'iris'), streamItem('denied', 'text-direction'), streamItem('ok-2', 'iris')]);
    expect(error).toBeUndefined();
    const byId = new Map(answers.map((a) => [a.inferResponse?.id, a.errorMessage]));
    expect(byId).toEqual(new Map([['ok-1', ''], ['denied', "PERMISSION_DENIED: key iris-only may not call model 'text-direction'"], ['ok-2', '']]));
  });
});

describe('changing the keys', () => {
  it('revokes a removed key when the router is sent SIGHUP', async () => {
    const revoked = bearer(keys['revoked-later']);
    await client.call('ModelInfer', irisRequest(), { metadata: revoked });
    const file = parse(await readFile(keysFile, 'utf8')) as { keys: { id: string }[] };
    await writeFile(keysFile, stringify({ keys: file.keys.filter((k) => k.id !== 'revoked-later') }));
    mesh.service('router').process.kill('SIGHUP');
    await waitForOutput(mesh.service('router'), 'API keys reloaded');
    expect(await codeOf(client.call('ModelInfer', irisRequest(), { metadata: revoked }))).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'unknown API key' });
    expect(await client.call('ModelInfer', irisRequest(), { metadata: bearer(keys.ops) })).toMatchObject({ model_name: 'iris' });
  });

  it('does not start a router whose keys file has a wrong entry, and names the entry', async () => {
    const bad = join(dir, 'bad-keys.yaml');
    await writeFile(bad, `keys:\n  - id: fine\n    sha256: ${'a'.repeat(64)}\n    models: "*"\n  - id: typo\n    sha256: ${'a'.repeat(64)}\n    modles: [iris]\n`);
    const exit = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(process.execPath, [join(ROOT, 'services/router/dist/main.js')], { timeout: 60_000, env: { ...process.env, NATS_URL: mesh.nats.url, ROUTER_PORT: '0', ROUTER_API_KEYS_FILE: bad } }, (error, stdout, stderr) =>
        resolve({ code: (error as { code?: number } | null)?.code ?? 0, output: stdout + stderr }),
      ),
    );
    expect(exit.code).toBe(1);
    expect(exit.output).toContain(`${bad} entry 2 (id 'typo'): `);
  });
});

describe('the CLI', () => {
  it('sends INFERMESH_API_KEY and is refused without it', async () => {
    const refused = await cli(['models', '--address', mesh.routerAddress]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('UNAUTHENTICATED: missing API key');
    const listed = await cli(['models', '--address', mesh.routerAddress], { INFERMESH_API_KEY: keys.ops });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('iris');
  });

  it('adds keys to a JSON keys file, and refuses an id the file already has', async () => {
    const file = join(dir, 'keys.json');
    const first = await cli(['keys', 'create', '--id', 'j1', '--models', 'iris,text-direction', '--quota-items', '10', '--file', file]);
    const second = await cli(['keys', 'create', '--id', 'j2', '--admin', '--rate', '5', '--file', file]);
    expect([first.code, second.code]).toEqual([0, 0]);
    const hash = async (key: string) => (await cli(['keys', 'hash'], {}, key)).stdout.trim();
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      keys: [
        { id: 'j1', sha256: await hash(first.stdout), models: ['iris', 'text-direction'], admin: false, quota: { items: 10, period: 'day' } },
        { id: 'j2', sha256: await hash(second.stdout), models: '*', admin: true, rate: { per_second: 5 } },
      ],
    });
    const again = await cli(['keys', 'create', '--id', 'j1', '--file', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("already has a key with id 'j1'");
    expect(again.stdout).toBe('');
  });

  it('hashes a key read on stdin to the digest in the keys file', async () => {
    const hashed = await cli(['keys', 'hash'], {}, `${keys.trial}\n`);
    expect(hashed.code, hashed.stderr).toBe(0);
    expect(await readFile(keysFile, 'utf8')).toContain(`sha256: ${hashed.stdout.trim()}`);
  });
});

describe('what leaves the router', () => {
  it('labels each prediction record with the id of the key behind it', async () => {
    await client.call('ModelInfer', irisRequest('by-ops'), { metadata: bearer(keys.ops) });
    await client.call('ModelInfer', irisRequest('by-iris-only'), { metadata: bearer(keys['iris-only']) });
    const logger = createLogger('test', { level: 'silent' });
    const bus = await connectBus({ url: mesh.nats.url, name: 'api keys test', prefix: 'infermesh', logger });
    try {
      const jsm = await bus.js.jetstreamManager();
      const stream = streamName('infermesh', 'PREDICTIONS');
      const clientOf = new Map<string, string>();
      for (let attempt = 0; attempt < 100 && clientOf.size < 2; attempt++) {
        const info = await jsm.streams.info(stream);
        for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
          const stored = await jsm.streams.getMessage(stream, { seq });
          const batch: PredictionBatch__Output = events.predictionBatch.decode(stored!.data);
          for (const record of batch.records) if (record.requestId.startsWith('by-')) clientOf.set(record.requestId, record.clientId);
        }
        if (clientOf.size < 2) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(clientOf).toEqual(new Map([['by-ops', 'ops'], ['by-iris-only', 'iris-only']]));
    } finally {
      await bus.drain();
    }
  });

  it('lets the monitor count each key\'s requests and items', async () => {
    await client.call('ModelInfer', irisRequest('', 1), { metadata: bearer(keys.counted) });
    await client.call('ModelInfer', irisRequest('', 3), { metadata: bearer(keys.counted) });
    const monitor = new (contracts().infermesh.v1.Monitor)(mesh.monitorAddress, grpc.credentials.createInsecure());
    try {
      let usage: unknown[] = [];
      for (let attempt = 0; attempt < 100; attempt++) {
        // NOT_FOUND until the monitor has the key's first record.
        usage = await new Promise<unknown[]>((resolve, reject) =>
          monitor.GetClientUsage({ clientId: 'counted' }, (error, response) => (error?.code === grpc.status.NOT_FOUND ? resolve([]) : error ? reject(error) : resolve(response!.usage))),
        );
        if ((usage[0] as { requestCount?: string } | undefined)?.requestCount === '2') break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(usage).toEqual([{ clientId: 'counted', model: 'iris', requestCount: '2', errorCount: '0', items: '4' }]);
    } finally {
      monitor.close();
    }
  });

  it('writes no key, secret or digest to any service\'s log', async () => {
    expect(digests).toHaveLength(Object.keys(keys).length);
    const secrets = [...Object.values(keys), forged].map((key) => key.slice(-43));
    const logs = mesh.services.map((s) => s.output()).join('\n');
    expect(mesh.service('router').output()).toContain('API keys required');
    for (const text of [...Object.values(keys), forged, ...secrets, ...digests]) expect(logs).not.toContain(text);
  });
});
