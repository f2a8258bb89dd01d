/** Mutual TLS over both protocols: grpcs:// through grpc-js, https:// with tls options through node:https. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificates, type TestCertificates } from './testing/certs.js';
import { startGrpcStandIn, type GrpcStandIn } from './testing/grpc-stand-in.js';
import { startRestStandIn, type RestStandIn } from './testing/rest-stand-in.js';
import { connect, tensor } from './index.js';

let certs: TestCertificates;
let grpcServer: GrpcStandIn;
let restServer: RestStandIn;

beforeAll(async () => {
  certs = makeCertificates();
  const tls = { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey };
  [grpcServer, restServer] = await Promise.all([startGrpcStandIn({ tls }), startRestStandIn({ tls })]);
});

afterAll(async () => {
  await Promise.all([grpcServer?.close(), restServer?.close()]);
});

describe('mutual TLS', () => {
  it('calls a gRPC server that requires a client certificate (grpcs://)', async () => {
    const client = connect(`grpcs://${grpcServer.address}`, { tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } });
    try {
      const result = await client.infer({ model: 'add-one', inputs: [tensor.fp32('x', [2], [1, 2])] });
      expect(Array.from(result.output('y').data as Float32Array)).toEqual([2, 3]);
    } finally {
      client.close();
    }
  });

  it('is refused by that gRPC server without a client certificate: UNAVAILABLE naming the address', async () => {
    const client = connect(`grpcs://${grpcServer.address}`, { tls: { ca: certs.ca } });
    try {
      await expect(client.serverLive()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining(grpcServer.address) });
    } finally {
      client.close();
    }
  });

  it('calls a REST server that requires a client certificate (https:// with tls options)', async () => {
    const client = connect(restServer.url, { tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } });
    try {
      expect(await client.serverLive()).toBe(true);
      const result = await client.infer({ model: 'echo', inputs: [tensor.bytes('b', [1], [Uint8Array.from([0xff, 0])])] });
      expect(result.output('b').data).toEqual([Buffer.from([0xff, 0])]);
    } finally {
      client.close();
    }
  });

  it('is refused by that REST server without a client certificate, and does not trust an unknown CA', async () => {
    const noCert = connect(restServer.url, { tls: { ca: certs.ca } });
    await expect(noCert.serverLive()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining(restServer.url) });
    noCert.close();
    await expect(connect(restServer.url).serverLive()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
