/**
 * Starts the mesh's services as separate processes, the way `infermesh up` and a
 * deployment do, against a nats-server and an OTLP receiver of their own (tests, benchmarks).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';
import { reapOnExit } from './reap.js';

/** The repository root (this file is libs/testing/dist/mesh.js when it runs). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface ServiceProcess {
  name: string;
  process: ChildProcess;
  /** Everything the process wrote (JSON log lines). */
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface Mesh {
  nats: NatsServer;
  otlp: OtlpReceiver;
  routerAddress: string;
  /** The router's KServe v2 REST endpoint, e.g. http://127.0.0.1:PORT (ROUTER_HTTP_PORT, a free port). */
  routerHttpUrl: string;
  preprocessorAddress: string;
  monitorAddress: string;
  metricsUrl: string;
  services: ServiceProcess[];
  startWorker(name: string, env?: Record<string, string>): Promise<ServiceProcess>;
  /**
   * Another router process, set up as the mesh's own: on `port` when given (a router
   * restarted at its address), else on a free one. Resolves once it listens.
   */
  startRouter(name: string, router?: { port?: number; env?: Record<string, string> }): Promise<{ service: ServiceProcess; address: string; httpUrl: string }>;
  /**
   * Stops the monitor with `signal` (SIGKILL: a crash), runs `whileDown` (traffic made while
   * no monitor runs), and starts it again on the same ports; resolves once it listens.
   */
  restartMonitor(signal?: NodeJS.Signals, whileDown?: () => Promise<unknown>): Promise<ServiceProcess>;
  /** The worker supervisor; resolves once `workers` workers serve. */
  startSupervisor(workers: number, env?: Record<string, string>): Promise<ServiceProcess>;
  service(name: string): ServiceProcess;
  stop(): Promise<void>;
}

export type MeshServiceName = 'router' | 'worker' | 'preprocessor' | 'monitor';

export interface MeshOptions {
  workers?: number;
  /** NATS with a user per service and the mesh's permissions; each service connects as its own user. */
  natsAuth?: boolean;
  /** Settings of one kind of service, e.g. its mesh TLS certificate (applied before the other env options). */
  serviceEnv?: (service: MeshServiceName) => Record<string, string>;
  /** Export spans to the mesh's OTLP receiver (default true; benchmarks turn it off). */
  traces?: boolean;
  env?: Record<string, string>;
  workerEnv?: Record<string, string>;
  routerEnv?: Record<string, string>;
}

function startService(name: string, service: string, env: Record<string, string>, entry = 'main.js'): ServiceProcess {
  let output = '';
  const child = spawn(process.execPath, ['--import', '@infermesh/telemetry/register', join(ROOT, 'services', service, 'dist', entry)], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  reapOnExit(child);
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-200_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    name,
    process: child,
    output: () => output,
    stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
      return new Promise((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
        child.kill(signal);
      });
    },
  };
}

const count = (text: string, part: string) => text.split(part).length - 1;

/** Waits until the service has logged `text` (at least `times` times). */
export async function waitForOutput(service: ServiceProcess, text: string, timeoutMs = 60_000, times = 1): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (count(service.output(), text) < times) {
    if (service.process.exitCode !== null) throw new Error(`${service.name} exited with ${service.process.exitCode}:\n${service.output()}`);
    if (Date.now() > until) throw new Error(`${service.name} did not log '${text}' in ${timeoutMs} ms:\n${service.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startMesh(options: MeshOptions = {}): Promise<Mesh> {
  const nats = await startNatsServer({ auth: options.natsAuth });
  // Each service's own settings for a secured mesh: its NATS user, and what the test adds (certificates).
  const start = (name: string, service: string, env: Record<string, string>, entry?: string) =>
    startService(name, service, { ...nats.credentials(service as 'router' | 'worker' | 'monitor'), ...options.serviceEnv?.(service as MeshServiceName), ...env }, entry);
  const otlp = await startOtlpReceiver();
  const [routerPort, preprocessorPort, monitorPort, metricsPort, routerHttpPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const common: Record<string, string> = {
    NATS_URL: nats.url,
    PREPROCESSOR_ADDRESS: `127.0.0.1:${preprocessorPort}`,
    ...(options.traces === false ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100' }),
    MODEL_REPOSITORY: join(ROOT, 'models'),
    ...options.env,
  };
  const services: ServiceProcess[] = [];
  const startWorker = async (name: string, env: Record<string, string> = {}) => {
    const worker = start(name, 'worker', { ...common, OTEL_SERVICE_NAME: 'infermesh-worker', WORKER_ID: name, WORKER_INTRA_OP_THREADS: '1', ...options.workerEnv, ...env });
    services.push(worker);
    await waitForOutput(worker, '"worker serving"');
    return worker;
  };
  const startRouter = async (name: string, router: { port?: number; env?: Record<string, string> } = {}) => {
    const port = router.port ?? (await freePort());
    const httpPort = await freePort();
    const service = start(name, 'router', { ...common, OTEL_SERVICE_NAME: 'infermesh-router', ROUTER_PORT: String(port), ROUTER_HTTP_PORT: String(httpPort), ...options.routerEnv, ...router.env });
    services.push(service);
    await waitForPort(port, 60_000, () => service.process.exitCode !== null);
    return { service, address: `127.0.0.1:${port}`, httpUrl: `http://127.0.0.1:${httpPort}` };
  };
  const startMonitor = () => start('monitor', 'monitor', { ...common, OTEL_SERVICE_NAME: 'infermesh-monitor', MONITOR_PORT: String(monitorPort), MONITOR_METRICS_PORT: String(metricsPort) });
  const monitor = startMonitor();
  const preprocessor = start('preprocessor', 'preprocessor', { ...common, OTEL_SERVICE_NAME: 'infermesh-preprocessor', PREPROCESSOR_PORT: String(preprocessorPort) });
  const router = start('router', 'router', {
    ...common, OTEL_SERVICE_NAME: 'infermesh-router', ROUTER_PORT: String(routerPort), ROUTER_HTTP_PORT: String(routerHttpPort), ...options.routerEnv,
  });
  services.push(monitor, preprocessor, router);
  const mesh: Mesh = {
    nats,
    otlp,
    routerAddress: `127.0.0.1:${routerPort}`,
    routerHttpUrl: `http://127.0.0.1:${routerHttpPort}`,
    preprocessorAddress: `127.0.0.1:${preprocessorPort}`,
    monitorAddress: `127.0.0.1:${monitorPort}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    services,
    startWorker,
    startRouter,
    async restartMonitor(signal = 'SIGTERM', whileDown) {
      const index = services.findIndex((s) => s.name === 'monitor');
      await services[index].stop(signal);
      await whileDown?.();
      services[index] = startMonitor();
      await waitForPort(monitorPort, 60_000);
      return services[index];
    },
    async startSupervisor(workers, env = {}) {
      const supervisor = start('supervisor', 'worker', { ...common, OTEL_SERVICE_NAME: 'infermesh-worker', WORKER_INTRA_OP_THREADS: '1', ...options.workerEnv, ...env }, 'supervisor-main.js');
      services.push(supervisor);
      await waitForOutput(supervisor, '"worker serving"', 60_000, workers);
      return supervisor;
    },
    service(name) {
      const found = services.find((s) => s.name === name);
      if (!found) throw new Error(`no service ${name}`);
      return found;
    },
    async stop() {
      await Promise.all(services.map((s) => s.stop()));
      await otlp.close();
      await nats.stop();
    },
  };
  try {
    await Promise.all([waitForPort(routerPort, 60_000), waitForPort(preprocessorPort, 60_000), waitForPort(monitorPort, 60_000)]);
    for (let i = 0; i < (options.workers ?? 1); i++) await startWorker(`worker-${i}`);
    // Up means the router's routing table is filled (health SERVING), not only that it listens,
    // and holds the workers started: on a loaded machine the router may count its table filled
    // (ROUTER_TABLE_FILL_MS) before the first heartbeat reaches it.
    await waitForOutput(router, '"router serving"');
    await waitForOutput(router, '"worker joined"', 60_000, options.workers ?? 1);
  } catch (error) {
    await mesh.stop();
    throw error;
  }
  return mesh;
}
