/**
 * The router through its faults, every service its own process: two routers behind one
 * "address" (a client that retries UNAVAILABLE on the other, as a load balancer does),
 * one shut down under traffic; a router paused for 5 s; a router restarted; NATS down for
 * 10 s. Each prints the requests sent, answered and failed.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startMesh, waitForOutput, ROOT, type Mesh } from './helpers/mesh.js';
import { bytesTensor, inferenceClient, type InferenceClient } from './helpers/client.js';

/** Far above what any case needs: a shutdown that waited for it would be plain. */
const SHUTDOWN_GRACE_MS = 60_000;
const CASE_TIMEOUT_MS = 120_000;

const healthDefinition = protoLoader.loadSync(fileURLToPath(new URL('./fixtures/health.proto', import.meta.url)), { enums: String });
const Health = (grpc.loadPackageDefinition(healthDefinition) as unknown as { grpc: { health: { v1: { Health: typeof grpc.Client } } } }).grpc.health.v1.Health;

let mesh: Mesh;
let image: Buffer;
/** The second router, beside the mesh's own; replaced when a case restarts it. */
let second: { address: string; port: number; name: string };
const clients: { close(): void }[] = [];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const IRIS_ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };
const irisRequest = () => ({ model_name: 'iris', inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(JSON.stringify(IRIS_ROW))] } }] });
const imageRequest = () => ({ model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([image])] });

function client(address: string): InferenceClient {
  const made = inferenceClient(address);
  clients.push(made);
  return made;
}

async function health(address: string): Promise<string> {
  const checker = new Health(address, grpc.credentials.createInsecure()) as grpc.Client & { Check: (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void) => void };
  try {
    return await new Promise((resolve) => checker.Check({ service: '' }, { deadline: Date.now() + 5000 }, (error, response) => resolve(error ? `error ${grpc.status[error.code]}` : (response?.status ?? '?'))));
  } finally {
    checker.close();
  }
}

interface InFlight {
  started: number;
  /** When it was answered or failed. */
  ended?: number;
}

interface Tally {
  sent: number;
  answered: number;
  failed: number;
  /** Attempts refused UNAVAILABLE and sent again to the other router. */
  retried: number;
  errors: Map<string, number>;
  /** Requests in flight now. */
  inFlight: Set<InFlight>;
  /** The longest a request took. */
  slowestMs: number;
}

/**
 * Requests sent without pause by `concurrency` loops until stopped, each through `send`
 * (which picks the router and retries as it means to). Every third request is an image.
 */
function steadyTraffic(send: (request: object) => Promise<unknown>, concurrency = 4) {
  const tally: Tally = { sent: 0, answered: 0, failed: 0, retried: 0, errors: new Map(), inFlight: new Set(), slowestMs: 0 };
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      const request = tally.sent % 3 === 2 ? imageRequest() : irisRequest();
      tally.sent++;
      const entry: InFlight = { started: Date.now() };
      tally.inFlight.add(entry);
      try {
        await send(request);
        tally.answered++;
      } catch (error) {
        tally.failed++;
        const e = error as grpc.ServiceError;
        const key = `${grpc.status[e.code] ?? e.code}: ${String(e.details).slice(0, 120)}`;
        tally.errors.set(key, (tally.errors.get(key) ?? 0) + 1);
      } finally {
        entry.ended = Date.now();
        tally.inFlight.delete(entry);
        tally.slowestMs = Math.max(tally.slowestMs, entry.ended - entry.started);
      }
    }
  });
  return {
    tally,
    async stop(): Promise<Tally> {
      running = false;
      await Promise.all(loops);
      return tally;
    },
  };
}

/** One router, no retries: every refusal counts as failed. */
function direct(address: string) {
  const to = client(address);
  return (request: object) => to.call('ModelInfer', request as never, { timeoutMs: 30_000 });
}

/** Routers behind one address: a refusal with UNAVAILABLE goes to the next one, as a load balancer's retry does. */
function balanced(addresses: string[], tally: () => Tally) {
  const to = addresses.map((address) => client(address));
  let next = 0;
  return async (request: object) => {
    const first = next++ % to.length;
    for (let attempt = 0; ; attempt++) {
      try {
        return await to[(first + attempt) % to.length]!.call('ModelInfer', request as never, { timeoutMs: 30_000 });
      } catch (error) {
        if ((error as grpc.ServiceError).code !== grpc.status.UNAVAILABLE || attempt >= 2 * to.length) throw error;
        tally().retried++;
      }
    }
  };
}

function report(name: string, tally: Tally, extra: Record<string, unknown> = {}): void {
  console.log(`${name}: ${JSON.stringify({ sent: tally.sent, answered: tally.answered, failed: tally.failed, retried: tally.retried, errors: Object.fromEntries(tally.errors), ...extra })}`);
}

/**
 * A health Watch held open on the router, as gRPC's client-side health checking does: a
 * stream that is no call in flight, and must not hold up a shutdown.
 */
function watchHealth(address: string): void {
  const watcher = new Health(address, grpc.credentials.createInsecure()) as grpc.Client & { Watch: (r: object) => grpc.ClientReadableStream<{ status: string }> };
  const watch = watcher.Watch({ service: '' });
  watch.on('data', () => {});
  watch.on('error', () => {});
  clients.push(watcher);
}

async function waitUntilServed(address: string): Promise<void> {
  const to = client(address);
  for (let i = 0; i < 300; i++) {
    const answer = await to.call('ModelInfer', irisRequest(), { timeoutMs: 5000 }).then(() => true, () => false);
    if (answer) return;
    await sleep(100);
  }
  throw new Error(`${address} never served iris`);
}

beforeAll(async () => {
  image = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
  mesh = await startMesh({ routerEnv: { ROUTER_SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS) } });
  const started = await mesh.startRouter('router-b');
  second = { address: started.address, port: Number(started.address.split(':')[1]), name: 'router-b' };
  await Promise.all([waitUntilServed(mesh.routerAddress), waitUntilServed(second.address)]);
});

afterAll(async () => {
  for (const made of clients.splice(0)) made.close();
  await mesh?.stop();
});

describe('router faults', () => {
  it('a router paused for 5 s (SIGSTOP, SIGCONT) drops no worker and fails no request', async () => {
    const router = mesh.service(second.name);
    // Resumed, Node runs the expiry timer that fell due during the pause before it reads the
    // heartbeats queued on the NATS socket meanwhile (the interrupted poll returns at once).
    const traffic = steadyTraffic(direct(second.address), 8);
    await sleep(1000);
    router.process.kill('SIGSTOP');
    await sleep(5000);
    router.process.kill('SIGCONT');
    await sleep(3000);
    const tally = await traffic.stop();
    report('paused router', tally);
    expect(tally.answered).toBeGreaterThan(0);
    expect(tally.failed).toBe(0);
    expect(router.output()).not.toContain('"worker left"');
  }, CASE_TIMEOUT_MS);

  it('a restarted router says NOT_SERVING and answers UNAVAILABLE, never NOT_FOUND, until its routing table is filled', async () => {
    await mesh.service(second.name).stop();
    const name = 'router-b-restarted';
    const restarted = await mesh.startRouter(name, { port: second.port });
    second = { ...second, name };
    const to = client(restarted.address);
    const seen: { iris: string; unknown: string; health: string }[] = [];
    const codeOf = (promise: Promise<unknown>) => promise.then(() => 'OK', (error: grpc.ServiceError) => grpc.status[error.code] ?? String(error.code));
    for (let i = 0; i < 600; i++) {
      const iris = await codeOf(to.call('ModelInfer', irisRequest(), { timeoutMs: 5000 }));
      const unknown = await codeOf(to.call('ModelInfer', { ...irisRequest(), model_name: 'no-such-model' }, { timeoutMs: 5000 }));
      // Read after both answers: NOT_SERVING now means both were answered before the table was filled.
      const status = await health(restarted.address);
      seen.push({ iris, unknown, health: status });
      if (status === 'SERVING') break;
    }
    const beforeFilled = seen.filter((s) => s.health === 'NOT_SERVING');
    console.log(`restarted router: ${beforeFilled.length} rounds before the table was filled, answers ${JSON.stringify([...new Set(beforeFilled.map((s) => `${s.iris}/${s.unknown}`))])}`);
    expect(beforeFilled.length).toBeGreaterThan(0);
    for (const round of beforeFilled) {
      expect(['OK', 'UNAVAILABLE']).toContain(round.iris);
      expect(round.unknown).toBe('UNAVAILABLE');
    }
    // The round that saw SERVING may have been answered just before the table was filled: ask again.
    const after = { iris: await codeOf(to.call('ModelInfer', irisRequest(), { timeoutMs: 5000 })), unknown: await codeOf(to.call('ModelInfer', { ...irisRequest(), model_name: 'no-such-model' }, { timeoutMs: 5000 })) };
    expect(after).toEqual({ iris: 'OK', unknown: 'NOT_FOUND' });
  }, CASE_TIMEOUT_MS);

  it('routers keep serving the workers they know through a 10 s NATS outage', async () => {
    const toFirst = steadyTraffic(direct(mesh.routerAddress), 2);
    const toSecond = steadyTraffic(direct(second.address), 2);
    await sleep(1000);
    await mesh.nats.kill();
    await sleep(10_000);
    await mesh.nats.restart();
    await sleep(3000);
    const tallies = [await toFirst.stop(), await toSecond.stop()];
    report('NATS down 10 s, router 1', tallies[0]!);
    report('NATS down 10 s, router 2', tallies[1]!);
    await waitForOutput(mesh.service('router'), 'NATS unreachable');
    for (const tally of tallies) {
      expect(tally.answered).toBeGreaterThan(0);
      expect(tally.failed).toBe(0);
    }
  }, CASE_TIMEOUT_MS);

  it('a router shut down under traffic fails no request behind a retrying client, and exits once its calls in flight are answered', async () => {
    let traffic: ReturnType<typeof steadyTraffic> | undefined;
    traffic = steadyTraffic(balanced([second.address, mesh.routerAddress], () => traffic!.tally), 8);
    for (const address of [second.address, mesh.routerAddress]) watchHealth(address);
    await sleep(2000);
    const inFlightAtSigterm = [...traffic.tally.inFlight];
    const sigterm = Date.now();
    const exitCode = await mesh.service(second.name).stop('SIGTERM');
    const shutdownMs = Date.now() - sigterm;
    await sleep(2000);
    const tally = await traffic.stop();
    const lastAnsweredMs = Math.max(...inFlightAtSigterm.map((r) => (r.ended ?? Number.NaN) - sigterm));
    report('router shut down', tally, { shutdownMs, inFlightAtSigterm: inFlightAtSigterm.length, lastOfThoseAnsweredAfterMs: lastAnsweredMs, slowestRequestMs: tally.slowestMs });
    expect(exitCode).toBe(0);
    expect(tally.failed).toBe(0);
    expect(shutdownMs).toBeLessThan(SHUTDOWN_GRACE_MS);
  }, CASE_TIMEOUT_MS);
});
