/**
 * NATS_STREAM_REPLICAS: the mesh's streams and KV buckets are created with that many replicas,
 * checked on a real three-server JetStream cluster started for this file, and refused by a
 * single server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@infermesh/log';
import { freePort, natsServerBinary, startNatsServer, waitForPort, type NatsServer } from '@infermesh/testing';
import { connectBus, expiringBucket, snapshotStore, streamName, streamReplicas, trafficPolicies, type Bus } from './index.js';

const logger = createLogger('replicas-test', { level: 'silent' });

describe('streamReplicas', () => {
  it('is 1 unless NATS_STREAM_REPLICAS says 1 to 5, and names the setting when it is wrong', () => {
    expect(streamReplicas({})).toBe(1);
    expect(streamReplicas({ NATS_STREAM_REPLICAS: '' })).toBe(1);
    expect(streamReplicas({ NATS_STREAM_REPLICAS: '3' })).toBe(3);
    expect(streamReplicas({ NATS_STREAM_REPLICAS: ' 5 ' })).toBe(5);
    for (const wrong of ['0', '6', 'three', '1.5', '-1']) {
      expect(() => streamReplicas({ NATS_STREAM_REPLICAS: wrong })).toThrow(/NATS_STREAM_REPLICAS must be an integer from 1 to 5/);
    }
  });
});

describe('NATS_STREAM_REPLICAS=3', () => {
  const servers: ChildProcess[] = [];
  const dirs: string[] = [];
  const buses: Bus[] = [];
  let single: NatsServer;
  let clusterUrl: string;
  let sequence = 0;

  beforeAll(async () => {
    const clientPorts = [await freePort(), await freePort(), await freePort()];
    const routePorts = [await freePort(), await freePort(), await freePort()];
    const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
    for (const [i, port] of clientPorts.entries()) {
      const dir = mkdtempSync(join(tmpdir(), `infermesh-nats-cluster-${i}-`));
      dirs.push(dir);
      const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, '-n', `s${i}`, '--cluster_name', 'replicas-test', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes];
      servers.push(spawn(natsServerBinary(), args, { stdio: 'ignore' }));
    }
    for (const [i, port] of clientPorts.entries()) await waitForPort(port, 10_000, () => servers[i]!.exitCode !== null);
    clusterUrl = `nats://127.0.0.1:${clientPorts[0]}`;
    single = await startNatsServer();
    process.env.NATS_STREAM_REPLICAS = '3';
  });

  afterEach(async () => {
    for (const bus of buses.splice(0)) await bus.drain();
  });

  afterAll(async () => {
    delete process.env.NATS_STREAM_REPLICAS;
    await single?.stop();
    for (const server of servers) if (server.exitCode === null) server.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function bus(url: string): Promise<Bus> {
    const connected = await connectBus({ url, name: 'replicas-test', prefix: `r${++sequence}`, logger });
    buses.push(connected);
    return connected;
  }

  /** The cluster elects its JetStream meta leader a moment after the servers listen: retry until then (bounded). */
  async function once<T>(what: string, step: () => Promise<T>): Promise<T> {
    let last: unknown;
    for (let attempt = 0; attempt < 80; attempt++) {
      try {
        return await step();
      } catch (error) {
        last = error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    throw new Error(`${what}: the cluster never took it`, { cause: last });
  }

  it('creates the streams and every KV bucket with 3 replicas on a three-server cluster', async () => {
    const b = await bus(clusterUrl);
    await once('ensureStreams', () => b.ensureStreams());
    await once('traffic policies', () => trafficPolicies(b));
    await once('snapshot store', () => snapshotStore(b, 'monitor'));
    await once('expiring bucket', () => expiringBucket(b, `${b.prefix}_kept`, { maxAgeMs: 60_000 }));
    const jsm = await b.js.jetstreamManager();
    const streams = [streamName(b.prefix, 'PREDICTIONS'), streamName(b.prefix, 'FEEDBACK')];
    for await (const info of jsm.streams.list()) if (info.config.name.startsWith('KV_') && info.config.name.includes(b.prefix)) streams.push(info.config.name);
    expect(streams.length).toBe(5);
    for (const name of streams) {
      const info = await once(`info ${name}`, () => jsm.streams.info(name));
      expect(info.config.num_replicas, name).toBe(3);
      expect(info.cluster?.replicas?.length ?? 0, `${name}: copies beside the leader's`).toBe(2);
    }
  }, 60_000);

  it('a single server refuses them, so the wrong setting fails at start', async () => {
    const b = await bus(single.url);
    await expect(b.ensureStreams()).rejects.toThrow(/replicas/i);
  });
});
