/**
 * Mesh TLS with real certificates from openssl, a real server and a real client: who may
 * connect, who may call, and that a peer must hold the identity the caller expects.
 */
import { mkdtempSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { contracts, inferenceService, type GRPCInferenceServiceClient, type ServerLiveResponse__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import {
  createGrpcServer, issueDevCertificates, loadMeshTls, meshChannelCredentials, meshServerCredentials, meshTlsFromConfig, meshTlsSettings,
  identitiesOf, TlsConfigError, type DevCertificates, type GrpcServer, type MeshTls, type Role,
} from './index.js';

const logger = createLogger('tls-test', { level: 'silent' });

let certs: DevCertificates;
let stranger: DevCertificates;
const tlsOf = (c: DevCertificates, stem: string): MeshTls => {
  const s = meshTlsSettings(c, stem);
  return loadMeshTls({ caFile: s.MESH_TLS_CA_FILE, certFile: s.MESH_TLS_CERT_FILE, keyFile: s.MESH_TLS_KEY_FILE });
};

let server: GrpcServer;
let address: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'infermesh-tls-'));
  certs = issueDevCertificates(join(dir, 'mesh'), [
    { stem: 'router', identities: [{ role: 'router', name: 'router' }] },
    { stem: 'worker', identities: [{ role: 'worker', name: 'w1' }, { role: 'worker', name: 'w2' }] },
    { stem: 'preprocessor', identities: [{ role: 'preprocessor', name: 'preprocessor' }] },
  ]);
  // The same identity, signed by a CA the mesh does not trust.
  stranger = issueDevCertificates(join(dir, 'stranger'), [{ stem: 'router', identities: [{ role: 'router', name: 'router' }] }]);
  // A worker's server: only routers may call it.
  server = createGrpcServer({ name: 'worker', logger, maxMessageBytes: 1 << 20, credentials: meshServerCredentials(tlsOf(certs, 'worker')) });
  server.addService('inference.GRPCInferenceService', inferenceService(), { ServerLive: async () => ({ live: true }) }, { callers: ['router'] });
  address = `127.0.0.1:${await server.listen('127.0.0.1', 0)}`;
  server.setServing(true);
});

afterAll(() => server?.server.forceShutdown());

function live(credentials: grpc.ChannelCredentials): Promise<ServerLiveResponse__Output> {
  const client: GRPCInferenceServiceClient = new (contracts().inference.GRPCInferenceService)(address, credentials);
  return new Promise<ServerLiveResponse__Output>((resolve, reject) =>
    client.ServerLive({}, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response!))),
  ).finally(() => client.close());
}

const as = (c: DevCertificates, stem: string, expected: { role: Role; name?: string }) => meshChannelCredentials(tlsOf(c, stem), expected);

describe('mesh TLS', () => {
  it('names its holders as URI SANs', () => {
    const tls = tlsOf(certs, 'worker');
    expect(identitiesOf({ subjectaltname: new X509Certificate(tls.cert).subjectAltName })).toEqual([
      { role: 'worker', name: 'w1' },
      { role: 'worker', name: 'w2' },
    ]);
  });

  it('reads only names of its own trust domain and roles, one segment each', () => {
    const of = (san: string) => identitiesOf({ subjectaltname: san });
    expect(of('URI:spiffe://infermesh/worker/w-1, DNS:localhost')).toEqual([{ role: 'worker', name: 'w-1' }]);
    expect(of('URI:spiffe://other/worker/w1')).toEqual([]);
    expect(of('URI:spiffe://infermesh/admin/w1')).toEqual([]);
    expect(of('URI:spiffe://infermesh/worker/a/b')).toEqual([]);
    expect(of('URI:spiffe://infermesh/worker/')).toEqual([]);
    expect(of('URI:"spiffe://infermesh/worker/w1, URI:spiffe://infermesh/router/r"')).toEqual([]);
  });

  it('lets a router call a worker whose certificate names the worker id it expects', async () => {
    await expect(live(as(certs, 'router', { role: 'worker', name: 'w2' }))).resolves.toEqual({ live: true });
  });

  it('refuses a worker whose certificate does not name the announced worker id', async () => {
    await expect(live(as(certs, 'router', { role: 'worker', name: 'forged' }))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a caller without a client certificate', async () => {
    const noCert = grpc.credentials.createSsl(tlsOf(certs, 'router').ca, null, null, { checkServerIdentity: () => undefined });
    await expect(live(noCert)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a plaintext caller', async () => {
    await expect(live(grpc.credentials.createInsecure())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a certificate from another CA', async () => {
    await expect(live(as(stranger, 'router', { role: 'worker', name: 'w1' }))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('answers PERMISSION_DENIED to a mesh service whose role may not call', async () => {
    await expect(live(as(certs, 'preprocessor', { role: 'worker' }))).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/takes calls from router only; the caller's certificate names preprocessor\/preprocessor/),
    });
  });
});

describe('meshTlsFromConfig', () => {
  it('is plaintext when no file is named', () => {
    expect(meshTlsFromConfig({})).toBeUndefined();
  });

  it('refuses a half-configured mesh instead of running in plaintext', () => {
    expect(() => meshTlsFromConfig({ MESH_TLS_CA_FILE: certs.caFile })).toThrow(TlsConfigError);
  });

  it('names a file it cannot read', () => {
    expect(() => meshTlsFromConfig({ MESH_TLS_CA_FILE: '/nonexistent/ca.crt', MESH_TLS_CERT_FILE: 'x', MESH_TLS_KEY_FILE: 'y' })).toThrow(/cannot read the mesh CA file \/nonexistent\/ca.crt/);
  });
});
