import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { issueDevCertificates } from '@infermesh/grpc';
import { natsConnectOptions, NatsAuthError } from './auth.js';
import { subjects } from './subjects.js';

const s = subjects('infermesh');

describe('NATS permissions per role', () => {
  let nats: NatsServer;
  let admin: NatsConnection;
  const seen: string[] = [];

  const as = (role: 'worker' | 'router' | 'monitor' | 'operator') => {
    const settings = nats.credentials(role);
    return connect({ servers: nats.url, ...natsConnectOptions(settings) });
  };

  beforeAll(async () => {
    nats = await startNatsServer({ auth: true });
    admin = await connect({ servers: nats.url, ...natsConnectOptions(nats.credentials('admin')) });
    const sub = admin.subscribe('infermesh.>');
    void (async () => {
      for await (const msg of sub) seen.push(msg.subject);
    })();
    await admin.flush();
  });

  afterAll(async () => {
    await admin?.close();
    await nats?.stop();
  });

  /**
   * Publishes as `role`, then a marker as admin once the server has taken the publish: the
   * server routes one connection's messages in order, so the marker arrives after the
   * published message, if that was delivered at all.
   */
  async function publishAs(role: 'worker' | 'router' | 'monitor' | 'operator', subject: string): Promise<boolean> {
    const nc = await as(role);
    try {
      seen.length = 0;
      nc.publish(subject, new Uint8Array([1]));
      await nc.flush();
      const marker = `infermesh.marker.${Math.random().toString(36).slice(2)}`;
      admin.publish(marker);
      while (!seen.includes(marker)) await new Promise((resolve) => setTimeout(resolve, 5));
      return seen.includes(subject);
    } finally {
      await nc.close();
    }
  }

  it('refuses a connection without credentials', async () => {
    await expect(connect({ servers: nats.url, reconnect: false })).rejects.toThrow(/Authorization/i);
  });

  it('lets only workers publish heartbeats', async () => {
    expect(await publishAs('worker', s.heartbeat('w1'))).toBe(true);
    expect(await publishAs('router', s.heartbeat('w1'))).toBe(false);
    expect(await publishAs('monitor', s.heartbeat('w1'))).toBe(false);
    expect(await publishAs('operator', s.heartbeat('w1'))).toBe(false);
  });

  it('lets only routers publish prediction records', async () => {
    expect(await publishAs('router', s.prediction('iris'))).toBe(true);
    expect(await publishAs('worker', s.prediction('iris'))).toBe(false);
    expect(await publishAs('operator', s.prediction('iris'))).toBe(false);
  });

  /** How a subscription of `role` to `subject` ends: the server's error when it refuses it. */
  async function subscribing(role: 'worker' | 'router' | 'operator', subject: string): Promise<string> {
    const nc = await as(role);
    const sub = nc.subscribe(subject);
    const outcome = (async () => {
      try {
        for await (const _ of sub) return 'message';
        return 'closed';
      } catch (error) {
        return String(error);
      }
    })();
    await nc.flush().catch(() => undefined);
    const result = await outcome;
    await nc.close();
    return result;
  }

  it("lets no role read another's inbox, where the monitor's records and every reply arrive", async () => {
    for (const role of ['worker', 'router', 'operator'] as const) {
      for (const subject of ['_INBOX.>', '_INBOX_monitor.>']) expect(await subscribing(role, subject), `${role} ${subject}`).toMatch(/Permissions Violation/i);
    }
  });

  it('lets no role but the monitor read prediction records', async () => {
    for (const role of ['worker', 'router', 'operator'] as const) expect(await subscribing(role, s.predictions), role).toMatch(/Permissions Violation/i);
  });
});

describe('natsConnectOptions', () => {
  it('reads the password from its file and never wants it in the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nats-auth-'));
    writeFileSync(join(dir, 'pw'), 'secret\n');
    expect(natsConnectOptions({ NATS_USER: 'router', NATS_PASSWORD_FILE: join(dir, 'pw') })).toMatchObject({ user: 'router', pass: 'secret' });
  });

  it('names what is missing', () => {
    expect(() => natsConnectOptions({ NATS_USER: 'router' })).toThrow(NatsAuthError);
    expect(() => natsConnectOptions({ NATS_USER: 'router' })).toThrow(/NATS_PASSWORD_FILE/);
    expect(() => natsConnectOptions({ NATS_USER: 'router', NATS_PASSWORD_FILE: '/nonexistent/pw' })).toThrow(/cannot read the NATS password file/);
  });
});

describe('NATS over TLS', () => {
  let nats: NatsServer;
  let caFile: string;
  let strangerCa: string;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nats-tls-'));
    const certs = issueDevCertificates(join(dir, 'mesh'), [{ stem: 'nats', identities: [] }]);
    caFile = certs.caFile;
    strangerCa = issueDevCertificates(join(dir, 'stranger'), []).caFile;
    const files = certs.issued.get('nats')!;
    nats = await startNatsServer({ auth: true, tls: { certFile: files.certFile, keyFile: files.keyFile } });
  });

  afterAll(async () => {
    await nats?.stop();
  });

  it('connects with NATS_TLS_CA_FILE naming the CA of the server certificate, and the user credentials', async () => {
    const nc = await connect({ servers: nats.url, reconnect: false, ...natsConnectOptions({ ...nats.credentials('operator'), NATS_TLS_CA_FILE: caFile }) });
    expect(nc.info?.tls_required).toBe(true);
    await nc.close();
  });

  it('refuses a server whose certificate another CA signed', async () => {
    await expect(connect({ servers: nats.url, reconnect: false, ...natsConnectOptions({ ...nats.credentials('operator'), NATS_TLS_CA_FILE: strangerCa }) })).rejects.toThrow();
  });

  it('refuses a client that does not speak TLS', async () => {
    await expect(connect({ servers: nats.url, reconnect: false, ...natsConnectOptions(nats.credentials('operator')) })).rejects.toThrow();
  });
});
