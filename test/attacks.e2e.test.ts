/**
 * Attacks on a secured mesh, as issue "Trust" found them: every service its own process,
 * mutual TLS between services from a development CA, NATS with a user per service. Each case
 * is what an attacker on the network (or holding one service's NATS password) tried, and
 * what the mesh does now.
 */
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { events, natsConnectOptions, subjects, streamName } from '@infermesh/bus';
import { contracts, type WorkerHeartbeat, type WorkerHeartbeat__Output } from '@infermesh/contracts';
import {
  createGrpcServer, issueDevCertificates, loadMeshTls, meshChannelCredentials, meshServerCredentials, meshTlsSettings, type DevCertificates, type GrpcServer,
} from '@infermesh/grpc';
import { createLogger } from '@infermesh/log';
import { startMesh, waitForOutput, ROOT, type Mesh } from './helpers/mesh.js';
import { bytesTensor, codeOf, fp32, grpc, inferenceClient, type InferenceClient } from './helpers/client.js';

const s = subjects('infermesh');
const IRIS_ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };
const irisRequest = (model = 'iris') => ({
  model_name: model,
  inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(JSON.stringify(IRIS_ROW))] } }],
});

let certs: DevCertificates;
let stranger: DevCertificates;
let mesh: Mesh;
let client: InferenceClient;
let admin: NatsConnection;
let realHeartbeat: WorkerHeartbeat__Output;

const tlsOf = (c: DevCertificates, stem: string) => {
  const settings = meshTlsSettings(c, stem);
  return loadMeshTls({ caFile: settings.MESH_TLS_CA_FILE, certFile: settings.MESH_TLS_CERT_FILE, keyFile: settings.MESH_TLS_KEY_FILE });
};

/** A NATS connection as one of the mesh's users (a stolen password), or with none. */
async function natsAs(role: 'worker' | 'router' | 'monitor' | 'operator'): Promise<{ nc: NatsConnection; violations: string[] }> {
  const nc = await connect({ servers: mesh.nats.url, ...natsConnectOptions(mesh.nats.credentials(role)) });
  const violations: string[] = [];
  void (async () => {
    for await (const status of nc.status()) if (status.type === 'error') violations.push(String(status.error));
  })();
  return { nc, violations };
}

/** The server reports a refused publish asynchronously: wait for its report (or give up after 5 s). */
async function reported(violations: string[]): Promise<string> {
  for (let i = 0; i < 100 && violations.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return violations.join('\n');
}

async function irisAnswers(n: number): Promise<number[]> {
  const answers = await Promise.all(Array.from({ length: n }, () => client.call<{ raw_output_contents: Buffer[] }>('ModelInfer', irisRequest())));
  return answers.map((answer) => Math.round(fp32(answer.raw_output_contents[0])[2] * 1000));
}

/** Records the stream holds on one subject. */
async function storedOn(subject: string): Promise<number> {
  const jsm = await jetstreamManager(admin);
  const info = await jsm.streams.info(streamName('infermesh', 'PREDICTIONS'), { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'infermesh-attacks-'));
  certs = issueDevCertificates(join(dir, 'mesh'), [
    { stem: 'router', identities: [{ role: 'router', name: 'router' }] },
    { stem: 'worker', identities: [{ role: 'worker', name: 'worker-0' }] },
    { stem: 'preprocessor', identities: [{ role: 'preprocessor', name: 'preprocessor' }] },
    { stem: 'monitor', identities: [{ role: 'monitor', name: 'monitor' }] },
    { stem: 'operator', identities: [{ role: 'operator', name: 'operator' }] },
  ]);
  stranger = issueDevCertificates(join(dir, 'stranger'), [{ stem: 'router', identities: [{ role: 'router', name: 'router' }] }, { stem: 'worker', identities: [{ role: 'worker', name: 'impostor' }] }]);
  mesh = await startMesh({ natsAuth: true, traces: false, serviceEnv: (service) => meshTlsSettings(certs, service) });
  client = inferenceClient(mesh.routerAddress);
  admin = await connect({ servers: mesh.nats.url, ...natsConnectOptions(mesh.nats.credentials('admin')) });
  const sub = admin.subscribe(s.heartbeats);
  for await (const msg of sub) {
    realHeartbeat = events.heartbeat.decode(msg.data);
    break;
  }
  for (let i = 0; i < 100; i++) {
    if (await client.call('ModelReady', { name: 'iris' }).then((r) => (r as { ready: boolean }).ready, () => false)) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 120_000);

afterAll(async () => {
  client?.close();
  await admin?.close();
  await mesh?.stop();
});

describe('a secured mesh', () => {
  it('serves through mutual TLS on every hop (router → worker → preprocessor)', async () => {
    const answers = await irisAnswers(5);
    expect(new Set(answers).size).toBe(1);
    const image = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
    const response = await client.call<{ model_name: string }>('ModelInfer', {
      model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([image])],
    });
    expect(response.model_name).toBe('text-direction');
  });
});

describe('NATS: only the mesh joins, each service only in its role', () => {
  it('refuses a connection without credentials', async () => {
    await expect(connect({ servers: mesh.nats.url, reconnect: false })).rejects.toThrow(/Authorization/i);
  });

  it('refuses a forged draining heartbeat from a service that is not a worker, and keeps serving', async () => {
    const { nc, violations } = await natsAs('router');
    for (let i = 0; i < 20; i++) nc.publish(s.heartbeat(realHeartbeat.workerId), events.heartbeat.encode({ ...realHeartbeat, draining: true } as WorkerHeartbeat));
    await nc.flush().catch(() => undefined);
    expect(await reported(violations)).toMatch(/Permissions Violation for Publish/);
    await nc.close();
    const answers = await irisAnswers(50);
    expect(answers).toHaveLength(50);
  });

  it('refuses a draining claim (sent with a stolen worker password) that the worker itself denies, and logs it', async () => {
    const { nc } = await natsAs('worker');
    for (let i = 0; i < 20; i++) {
      nc.publish(s.heartbeat(realHeartbeat.workerId), events.heartbeat.encode({ ...realHeartbeat, draining: true } as WorkerHeartbeat));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const answers = await irisAnswers(50);
    await nc.close();
    expect(answers).toHaveLength(50);
    await waitForOutput(mesh.service('router'), 'draining claim refused');
    expect(mesh.service('router').output()).not.toMatch(/"msg":"worker left"/);
  });

  it('refuses a forged prediction record: nothing is stored', async () => {
    const forgedSubject = s.prediction('forged-model');
    for (const role of ['worker', 'operator', 'monitor'] as const) {
      const { nc, violations } = await natsAs(role);
      nc.publish(forgedSubject, new Uint8Array([0x0a, 0x02, 0x08, 0x01]));
      await nc.flush().catch(() => undefined);
      expect(await reported(violations), role).toMatch(/Permissions Violation for Publish/);
      await nc.close();
    }
    expect(await storedOn(forgedSubject)).toBe(0);
    // The router's own records are stored (the filter sees what is there).
    expect(await storedOn(s.prediction('iris'))).toBeGreaterThan(0);
  });

  it('lets no service but the monitor read prediction records', async () => {
    for (const role of ['worker', 'router', 'operator'] as const) {
      const { nc } = await natsAs(role);
      const sub = nc.subscribe(s.predictions);
      const outcome = (async () => {
        try {
          for await (const _ of sub) return 'read a record';
          return 'closed';
        } catch (error) {
          return String(error);
        }
      })();
      await nc.flush().catch(() => undefined);
      expect(await outcome, role).toMatch(/Permissions Violation for Subscription/);
      await nc.close();
    }
  });
});

describe('made-up model names', () => {
  it('5,000 requests for made-up models are refused NOT_FOUND and leave the monitor\'s /metrics small', async () => {
    const before = (await (await fetch(mesh.metricsUrl)).text()).length;
    const codes = new Map<number, number>();
    for (let start = 0; start < 5000; start += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, (_, i) => codeOf(client.call('ModelInfer', irisRequest(`made-up-${start + i}-${'x'.repeat(40)}`)))));
      for (const { code } of batch) codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(Object.fromEntries(codes)).toEqual({ [grpc.status.NOT_FOUND]: 5000 });
    // The records are counted under _unknown (wait for them), and no made-up name becomes a label.
    let metrics = '';
    for (let i = 0; i < 100 && !/model="_unknown"/.test(metrics); i++) {
      metrics = await (await fetch(mesh.metricsUrl)).text();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(metrics).toMatch(/model="_unknown"/);
    expect(metrics).not.toMatch(/made-up/);
    expect(metrics.length - before).toBeLessThan(20_000);
  });
});

describe('the router routes only to workers that prove who they are', () => {
  let impostor: GrpcServer;
  let impostorAddress: string;

  beforeAll(async () => {
    // A server that would answer every batch, with a certificate from another CA naming the id it announces.
    impostor = createGrpcServer({ name: 'impostor', logger: createLogger('impostor', { level: 'silent' }), maxMessageBytes: 1 << 20, credentials: meshServerCredentials(tlsOf(stranger, 'worker')) });
    impostor.addService('inference.GRPCInferenceService', contracts().inference.GRPCInferenceService.service, { ServerLive: async () => ({ live: true }) });
    impostorAddress = `127.0.0.1:${await impostor.listen('127.0.0.1', 0)}`;
    impostor.setServing(true);
  });

  afterAll(() => impostor?.server.forceShutdown());

  it('refuses a heartbeat (sent with a stolen worker password) whose worker cannot prove its id, and logs it', async () => {
    const { nc } = await natsAs('worker');
    const forged = { ...realHeartbeat, workerId: 'impostor', address: impostorAddress, models: realHeartbeat.models.map((m) => ({ ...m, version: '2' })) } as WorkerHeartbeat;
    // And the real worker's address under a new id: its certificate does not name that id.
    const borrowed = { ...realHeartbeat, workerId: 'borrowed' } as WorkerHeartbeat;
    for (let i = 0; i < 3; i++) {
      nc.publish(s.heartbeat('impostor'), events.heartbeat.encode(forged));
      nc.publish(s.heartbeat('borrowed'), events.heartbeat.encode(borrowed));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const answers = await irisAnswers(200);
    await nc.close();
    // Every answer came from the real model (one class for one row), none from version 2.
    expect(new Set(answers).size).toBe(1);
    const router = mesh.service('router');
    await waitForOutput(router, '"worker_id":"impostor"');
    await waitForOutput(router, '"worker_id":"borrowed"');
    const about = (id: string) => router.output().split('\n').filter((line) => line.includes(`"worker_id":"${id}"`)).map((line) => (JSON.parse(line) as { msg: string }).msg);
    for (const id of ['impostor', 'borrowed']) {
      expect(about(id), id).toEqual([expect.stringMatching(/^worker refused/)]);
    }
    const versions = await client.call<{ versions: string[] }>('ModelMetadata', { name: 'iris' });
    expect(versions.versions).not.toContain('2');
  });
});

describe('workers and the preprocessor take calls from the mesh only', () => {
  const workerCall = (credentials: grpc.ChannelCredentials) => {
    const direct = inferenceClient(realHeartbeat.address, credentials);
    return codeOf(direct.call('ModelInfer', irisRequest(), { timeoutMs: 5000 })).finally(() => direct.close());
  };

  it('refuses a plaintext client at the handshake', async () => {
    expect((await workerCall(grpc.credentials.createInsecure())).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a certificate from another CA at the handshake', async () => {
    expect((await workerCall(meshChannelCredentials(tlsOf(stranger, 'router'), { role: 'worker' }))).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a mesh certificate of another role with PERMISSION_DENIED', async () => {
    const refused = await workerCall(meshChannelCredentials(tlsOf(certs, 'operator'), { role: 'worker' }));
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(refused.details).toMatch(/takes calls from router only/);
  });

  it('lets each role call only its own preprocessor method: workers Preprocess, routers OcrCrop', async () => {
    const Preprocessor = contracts().infermesh.v1.Preprocessor;
    const call = (stem: string, method: 'Preprocess' | 'OcrCrop') => {
      const direct = new Preprocessor(mesh.preprocessorAddress, meshChannelCredentials(tlsOf(certs, stem), { role: 'preprocessor' }));
      const request = method === 'Preprocess' ? { modelName: 'x', items: [] } : { image: Buffer.from('not an image'), boxes: [] };
      return new Promise<grpc.status>((resolve) =>
        (direct[method] as (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void)(request, { deadline: Date.now() + 5000 }, (error) => {
          direct.close();
          resolve(error ? error.code : grpc.status.OK);
        }),
      );
    };
    expect(await call('router', 'Preprocess')).toBe(grpc.status.PERMISSION_DENIED);
    expect(await call('operator', 'Preprocess')).toBe(grpc.status.PERMISSION_DENIED);
    expect(await call('operator', 'OcrCrop')).toBe(grpc.status.PERMISSION_DENIED);
    // Admitted, then refused for what it sent (not an image), not for who sent it.
    expect(await call('router', 'OcrCrop')).toBe(grpc.status.INVALID_ARGUMENT);
  });
});
