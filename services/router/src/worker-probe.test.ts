/**
 * WorkerProbe against real gRPC servers on port 0 (grpc.health.v1 as every service serves
 * it): admission of workers by a direct check, checks instead of heartbeat age while NATS
 * is down, and when the routing table counts as filled.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WorkerHeartbeat__Output } from '@infermesh/contracts';
import { createGrpcServer, type GrpcServer } from '@infermesh/grpc';
import { createLogger } from '@infermesh/log';
import { freePort } from '@infermesh/testing';
import { RoutingTable } from './routing-table.js';
import { WorkerPool } from './worker-pool.js';
import { WorkerProbe, checkHealth } from './worker-probe.js';

const STALE_MS = 2500;
const logger = createLogger('worker-probe-test', { level: 'silent' });
const servers: GrpcServer[] = [];
const probes: WorkerProbe[] = [];
const pools: WorkerPool[] = [];

/** A server as a worker runs it (health only matters here); SERVING unless told otherwise. */
async function worker(serving = true): Promise<{ server: GrpcServer; address: string }> {
  const server = createGrpcServer({ name: 'fake-worker', logger, maxMessageBytes: 4 * 1024 * 1024 });
  const port = await server.listen('127.0.0.1', 0);
  server.setServing(serving);
  servers.push(server);
  return { server, address: `127.0.0.1:${port}` };
}

async function nothingListening(): Promise<string> {
  return `127.0.0.1:${await freePort()}`;
}

function heartbeat(workerId: string, address: string, overrides: Partial<WorkerHeartbeat__Output> = {}): WorkerHeartbeat__Output {
  return {
    workerId, address, device: 'cpu', queueDepth: 0, inFlight: 0, sentAtMs: '0', draining: false, executionProvider: 'cpu', rssBytes: '0',
    models: [{ name: 'iris', version: '1', ready: true, state: 'READY', platform: 'onnxruntime_onnx', inputs: [], outputs: [], maxBatchSize: 8, reason: '', dynamicBatching: null, instances: 1, driftReference: null, classLabels: [], pipelineSteps: [], placement: null }],
    ...overrides,
  };
}

function probeOf(options: { fillMs?: number; outageCheckMs?: number; retryRefusedMs?: number } = {}) {
  const table = new RoutingTable(STALE_MS);
  const pool = new WorkerPool(table, 4 * 1024 * 1024);
  const log = createLogger('worker-probe-test', { level: 'silent' });
  const warn = vi.spyOn(log, 'warn');
  const probe = new WorkerProbe({ table, pool, logger: log, checkTimeoutMs: 2000, outageCheckMs: options.outageCheckMs ?? 20, retryRefusedMs: options.retryRefusedMs ?? 60_000, fillMs: options.fillMs ?? 3_600_000 });
  probes.push(probe);
  pools.push(pool);
  return { table, pool, probe, warn };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${what} did not happen`);
}

afterEach(() => {
  for (const probe of probes.splice(0)) probe.close();
  for (const pool of pools.splice(0)) pool.closeAll();
  for (const server of servers.splice(0)) server.server.forceShutdown();
});

describe('checkHealth', () => {
  it('finds nothing wrong with a server that says SERVING', async () => {
    const { address } = await worker();
    const { pool } = probeOf();
    expect(await pool.withClient('w1', address, (client) => checkHealth(client, 2000))).toBeUndefined();
  });

  it('names NOT_SERVING for a server that says so', async () => {
    const { address } = await worker(false);
    const { pool } = probeOf();
    expect(await pool.withClient('w1', address, (client) => checkHealth(client, 2000))).toBe('health says NOT_SERVING');
  });

  it('names UNAVAILABLE when nothing listens at the address', async () => {
    const address = await nothingListening();
    const { pool } = probeOf();
    expect(await pool.withClient('w1', address, (client) => checkHealth(client, 2000))).toMatch(/^UNAVAILABLE: /);
  });
});

describe('admission', () => {
  it('routes to a worker heard of for the first time only once its check at the announced address succeeds', async () => {
    const { address } = await worker();
    const { table, probe } = probeOf();
    probe.heartbeat(heartbeat('w1', address));
    expect(table.get('w1')).toBeUndefined();
    await probe.settled();
    expect(table.get('w1')).toMatchObject({ id: 'w1', address });
  });

  it('refuses a worker whose announced address has nothing listening', async () => {
    const address = await nothingListening();
    const { table, probe } = probeOf();
    probe.heartbeat(heartbeat('forged', address));
    await probe.settled();
    expect(table.get('forged')).toBeUndefined();
    expect(table.holders('iris')).toEqual([]);
  });

  it('refuses a worker whose server says NOT_SERVING', async () => {
    const { address } = await worker(false);
    const { table, probe } = probeOf();
    probe.heartbeat(heartbeat('w1', address));
    await probe.settled();
    expect(table.get('w1')).toBeUndefined();
  });

  it('logs a refused worker once, however many heartbeats (and checks) it causes', async () => {
    const address = await nothingListening();
    const { probe, warn } = probeOf({ retryRefusedMs: 0 });
    for (let i = 0; i < 20; i++) {
      probe.heartbeat(heartbeat('forged', address));
      await probe.settled();
    }
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.[0]).toMatchObject({ worker_id: 'forged', address });
  });

  it('keeps routing a known worker at its checked address when a heartbeat claims its id at an address that fails', async () => {
    const { address } = await worker();
    const { table, probe } = probeOf();
    probe.heartbeat(heartbeat('w1', address));
    await probe.settled();
    probe.heartbeat(heartbeat('w1', await nothingListening()));
    await probe.settled();
    expect(table.get('w1')?.address).toBe(address);
  });

  it('moves a known worker to a new address once the new address answers its check', async () => {
    const first = await worker();
    const second = await worker();
    const { table, probe } = probeOf();
    probe.heartbeat(heartbeat('w1', first.address));
    await probe.settled();
    probe.heartbeat(heartbeat('w1', second.address));
    expect(table.get('w1')?.address).toBe(first.address);
    await probe.settled();
    expect(table.get('w1')?.address).toBe(second.address);
  });

  it('does not admit a worker that drains (says NOT_SERVING) while its check runs', async () => {
    const { server, address } = await worker();
    const { table, probe } = probeOf();
    server.setServing(false);
    probe.heartbeat(heartbeat('w1', address));
    probe.heartbeat(heartbeat('w1', address, { draining: true }));
    await probe.settled();
    expect(table.get('w1')).toBeUndefined();
  });

  it('admits a worker whose admission a forged draining claim tried to cancel', async () => {
    const { address } = await worker();
    const { table, probe } = probeOf();
    probe.heartbeat(heartbeat('w1', address));
    probe.heartbeat(heartbeat('w1', address, { draining: true }));
    await probe.settled();
    expect(table.get('w1')?.address).toBe(address);
  });

  it('refuses an announced address that is not host:port, without a check and without failing', async () => {
    const { table, probe, warn } = probeOf();
    for (const address of ['', 'no-port', ':', 'a:b', 'x'.repeat(300) + ':1', 'dns:///x:1']) probe.heartbeat(heartbeat(`w-${address.length}-${address.slice(0, 3)}`, address));
    await probe.settled();
    expect(table.list()).toEqual([]);
    expect(warn.mock.calls.filter(([, message]) => String(message).startsWith('worker refused'))).toHaveLength(6);
  });
});

describe('draining claims', () => {
  async function admittedWorker() {
    const running = await worker();
    const probed = probeOf();
    probed.probe.heartbeat(heartbeat('w1', running.address));
    await probed.probe.settled();
    expect(probed.table.get('w1')).toBeDefined();
    return { ...running, ...probed };
  }

  it('believes a drain once the worker itself says NOT_SERVING', async () => {
    const { server, table, probe } = await admittedWorker();
    server.setServing(false);
    probe.heartbeat(heartbeat('w1', table.get('w1')!.address, { draining: true }));
    await until(() => table.get('w1') === undefined, 'the drain');
  });

  it('refuses (and logs once) a drain the worker denies: it keeps its traffic', async () => {
    const { table, probe, warn } = await admittedWorker();
    for (let i = 0; i < 5; i++) {
      probe.heartbeat(heartbeat('w1', table.get('w1')!.address, { draining: true }));
      await probe.settled();
    }
    expect(table.get('w1')).toBeDefined();
    expect(warn.mock.calls.filter(([, message]) => String(message).startsWith('draining claim refused'))).toHaveLength(1);
  });
});

describe('while NATS is down', () => {
  async function admitted(serving = true) {
    const running = await worker(serving);
    const probed = probeOf();
    probed.probe.heartbeat(heartbeat('w1', running.address));
    await probed.probe.settled();
    expect(probed.table.get('w1')).toBeDefined();
    return { ...running, ...probed };
  }

  it('keeps a worker that answers its checks, however long its heartbeats are missing', async () => {
    const { table, probe } = await admitted();
    probe.startOutageChecks();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const from = Date.now();
    for (let now = from; now < from + 60_000; now += table.tickMs) table.expire(now);
    expect(table.get('w1')).toBeDefined();
  });

  it('removes a worker whose check says NOT_SERVING', async () => {
    const { table, probe, server } = await admitted();
    probe.startOutageChecks();
    server.setServing(false);
    await until(() => table.get('w1') === undefined, 'the worker leaving');
  });

  it('removes a worker that no longer answers', async () => {
    const { table, probe, server } = await admitted();
    probe.startOutageChecks();
    server.server.forceShutdown();
    await until(() => table.get('w1') === undefined, 'the worker leaving');
  });

  it('expires workers by heartbeat age again once NATS is back', async () => {
    const { table, probe } = await admitted();
    probe.startOutageChecks();
    probe.stopOutageChecks();
    const resumed = Date.now();
    for (let now = resumed; now <= resumed + STALE_MS + table.tickMs; now += table.tickMs) table.expire(now);
    expect(table.get('w1')).toBeUndefined();
  });
});

describe('filling the table after a start', () => {
  it('is filled after fillMs when no worker was heard of', async () => {
    const { table, probe } = probeOf({ fillMs: 10 });
    expect(table.filled).toBe(false);
    await probe.filled;
    expect(table.filled).toBe(true);
  });

  it('is filled as soon as an admitted worker is heard from again (a whole heartbeat period has passed)', async () => {
    const { address } = await worker();
    const { table, probe } = probeOf({ fillMs: 3_600_000 });
    probe.heartbeat(heartbeat('w1', address));
    await probe.settled();
    expect(table.filled).toBe(false);
    probe.heartbeat(heartbeat('w1', address));
    await probe.filled;
    expect(table.filled).toBe(true);
  });

  it('waits at the deadline for the checks in progress, so workers heard of are in the table once it is filled', async () => {
    const { address } = await worker();
    const { table, probe } = probeOf({ fillMs: 0 });
    probe.heartbeat(heartbeat('w1', address));
    await probe.filled;
    expect(table.get('w1')).toBeDefined();
  });
});
