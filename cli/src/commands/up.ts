/**
 * infermesh up: the whole mesh on one machine, secured as a cluster would be: a development
 * CA and a certificate per service (mutual TLS between them, .data/certs), and its own
 * nats-server with JetStream (.data/nats) and a NATS user per service with that service's
 * permissions (.data/nats-auth), unless NATS_URL names another server. Then the monitor,
 * preprocessor, worker(s) and router as separate processes, all on loopback. Ctrl-C stops
 * everything in order.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { natsAuthorization, NATS_ROLES, type NatsRole, type ServerReadyResponse__Output } from '@infermesh/contracts';
import { issueDevCertificates, meshTlsSettings } from '@infermesh/grpc';
import { natsConnectOptions } from '@infermesh/bus';
import { meshHolders } from './certs.js';
import { call, routerClient, RUNNING_MESH_FILE, type RunningMesh } from '../client.js';
import { collectWorkers, summarize } from './workers.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface UpOptions {
  workers: number;
  logs: boolean;
}

interface Child {
  name: string;
  process: ChildProcess;
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

function findNatsServer(): string | undefined {
  for (const candidate of [process.env.NATS_SERVER_BIN, '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server', '/opt/homebrew/bin/nats-server']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A user per mesh role with a fresh random password (files readable by their owner only), and the server's config. */
function writeNatsUsers(dir: string): { config: string; settings: (role: NatsRole) => Record<string, string> } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const users = NATS_ROLES.map((role) => ({ user: role, password: randomBytes(18).toString('base64url'), role }));
  for (const { user, password } of users) writeFileSync(join(dir, `${user}.password`), password, { mode: 0o600 });
  const config = join(dir, 'nats.conf');
  writeFileSync(config, natsAuthorization(users, process.env.NATS_SUBJECT_PREFIX ?? 'infermesh'), { mode: 0o600 });
  return { config, settings: (role) => ({ NATS_USER: role, NATS_PASSWORD_FILE: join(dir, `${role}.password`) }) };
}

export async function up(options: UpOptions): Promise<void> {
  const dataDir = join(ROOT, '.data');
  const logDir = join(dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const children: Child[] = [];
  let stopping = false;

  const start = (name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const log = openSync(join(logDir, `${name}.log`), 'a');
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', options.logs ? 'pipe' : log, options.logs ? 'pipe' : log],
    });
    if (options.logs) {
      const prefix = `[${name}] `;
      for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => process.stdout.write(chunk.toString().replace(/^(?=.)/gm, prefix)));
    }
    child.once('exit', (code, signal) => {
      if (!stopping) {
        console.error(`${name} exited (${signal ?? `code ${code}`}); see ${relative(process.cwd(), join(logDir, `${name}.log`))}. Stopping the mesh.`);
        void stopAll(1);
      }
    });
    children.push({ name, process: child });
    return child;
  };

  const stopAll = async (exitCode: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping the mesh…');
    // Entry first, so no new work arrives; the monitor last, so it counts what is left; NATS at the very end.
    const order = ['router', 'preprocessor', 'worker', 'monitor', 'nats'];
    for (const kind of order) {
      const group = children.filter((c) => c.name.startsWith(kind) && c.process.exitCode === null && c.process.signalCode === null);
      await Promise.all(
        group.map(
          (c) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(() => c.process.kill('SIGKILL'), 30_000);
              c.process.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              c.process.kill('SIGTERM');
            }),
        ),
      );
    }
    rmSync(RUNNING_MESH_FILE, { force: true });
    console.log('stopped.');
    process.exit(exitCode);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  let natsUrl = process.env.NATS_URL;
  let natsNote = 'from NATS_URL, with the credentials in NATS_USER / NATS_PASSWORD_FILE or NATS_CREDS_FILE';
  // Each service's NATS settings: its own user when the mesh runs its own server.
  let natsSettings: (role: NatsRole) => Record<string, string> = () => ({});
  if (!natsUrl) {
    const binary = findNatsServer();
    if (!binary) {
      console.error('nats-server is not installed: install it (Debian/Ubuntu: sudo apt-get install nats-server; macOS: brew install nats-server) or set NATS_URL to a NATS server with JetStream.');
      process.exit(1);
    }
    // A server already on 4222 is someone else's, with other users or none: run ours beside it.
    const port = (await portOpen('127.0.0.1', 4222)) ? await freePort() : 4222;
    const users = writeNatsUsers(join(dataDir, 'nats-auth'));
    natsSettings = users.settings;
    mkdirSync(join(dataDir, 'nats'), { recursive: true });
    start('nats', binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dataDir, 'nats'), '-c', users.config]);
    for (let i = 0; i < 100 && !(await portOpen('127.0.0.1', port)); i++) await sleep(100);
    natsUrl = `nats://127.0.0.1:${port}`;
    natsNote = `started here: a user per service, passwords in ${relative(process.cwd(), join(dataDir, 'nats-auth'))}, data in ${relative(process.cwd(), join(dataDir, 'nats'))}${port === 4222 ? '' : '; 4222 is another server\'s'}`;
  }

  // Mutual TLS between the services, from a development CA kept in .data/certs.
  const certs = issueDevCertificates(join(dataDir, 'certs'), meshHolders(Array.from({ length: options.workers }, (_, i) => `worker-cpu${i}`).concat(Array.from({ length: 8 }, (_, i) => `worker-gpu${i}`))));
  const tls = (stem: string) => meshTlsSettings(certs, stem);
  const operator = tls('operator');

  const service = (name: string) => ['--import', '@infermesh/telemetry/register', join(ROOT, 'services', name, 'dist', 'main.js')];
  const preprocessorPort = process.env.PREPROCESSOR_PORT ?? '8003';
  const common = { NATS_URL: natsUrl, PREPROCESSOR_ADDRESS: process.env.PREPROCESSOR_ADDRESS ?? `127.0.0.1:${preprocessorPort}` };
  const routerPort = process.env.ROUTER_PORT ?? '8001';
  const routerHttpPort = process.env.ROUTER_HTTP_PORT ?? '8000';
  const monitorPort = process.env.MONITOR_PORT ?? '8004';
  const metricsPort = process.env.MONITOR_METRICS_PORT ?? '8002';
  // Lets the CLI's other commands reach this mesh's monitor with the operator's certificate.
  const running: RunningMesh = {
    pid: process.pid,
    monitor: `127.0.0.1:${monitorPort}`,
    nats: { url: natsUrl, settings: natsSettings('operator') },
    operatorTls: { caFile: operator.MESH_TLS_CA_FILE, certFile: operator.MESH_TLS_CERT_FILE, keyFile: operator.MESH_TLS_KEY_FILE },
  };
  writeFileSync(RUNNING_MESH_FILE, JSON.stringify(running, null, 2));
  // The shipped rules for the shipped models, unless the user names a file of their own.
  const alertRules = process.env.MONITOR_ALERT_RULES_FILE ?? join(ROOT, 'deploy', 'alerts', 'local.yaml');
  start('monitor', process.execPath, service('monitor'), { ...common, ...tls('monitor'), ...natsSettings('monitor'), OTEL_SERVICE_NAME: 'infermesh-monitor', MONITOR_ALERT_RULES_FILE: alertRules });
  start('preprocessor', process.execPath, service('preprocessor'), { ...common, ...tls('preprocessor'), OTEL_SERVICE_NAME: 'infermesh-preprocessor' });
  // The supervisor starts one worker per GPU it finds, else --workers CPU workers sharing the cores.
  start('workers', process.execPath, ['--import', '@infermesh/telemetry/register', join(ROOT, 'services', 'worker', 'dist', 'supervisor-main.js')], {
    ...common,
    ...tls('worker'),
    ...natsSettings('worker'),
    OTEL_SERVICE_NAME: 'infermesh-worker',
    WORKER_CPU_WORKERS: String(options.workers),
    WORKER_ID_PREFIX: 'worker',
    MODEL_REPOSITORY: process.env.MODEL_REPOSITORY ?? join(ROOT, 'models'),
  });
  start('router', process.execPath, service('router'), { ...common, ...tls('router'), ...natsSettings('router'), OTEL_SERVICE_NAME: 'infermesh-router', ROUTER_HTTP_PORT: routerHttpPort });

  const address = `127.0.0.1:${routerPort}`;
  const client = routerClient(address);
  const until = Date.now() + 60_000;
  let ready = false;
  while (!ready && !stopping && Date.now() < until) {
    ready = await call<object, ServerReadyResponse__Output>(client, client.ServerReady, {}, 1000).then((r) => r.ready, () => false);
    if (!ready) await sleep(250);
  }
  client.close();
  if (stopping) return;
  if (!ready) {
    console.error(`the router did not become ready within 60 s; see the logs in ${relative(process.cwd(), logDir)}`);
    return stopAll(1);
  }
  const sample = relative(process.cwd(), join(ROOT, 'models/text-direction/samples/upside-down.png'));
  const traces = process.env.OTEL_EXPORTER_OTLP_ENDPOINT
    ? `exported over OTLP to ${process.env.OTEL_EXPORTER_OTLP_ENDPOINT}`
    : 'not exported (set OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 to send them to Jaeger)';
  const restUrl = `${process.env.ROUTER_TLS_CERT_FILE ? 'https' : 'http'}://127.0.0.1:${routerHttpPort}`;
  console.log(`
infermesh is up
  router    ${address}  (Open Inference Protocol / KServe v2 gRPC, reflection on)
  REST      ${restUrl}/v2  (KServe v2 HTTP, Triton's binary data extension; OpenAPI at /v2/openapi.json)
  monitor   gRPC 127.0.0.1:${monitorPort}, Prometheus http://127.0.0.1:${metricsPort}/metrics
  status    http://127.0.0.1:${metricsPort}/  (live status page: throughput, latency, errors, drift, accuracy, workers, alerts)
  alerts    rules from ${relative(process.cwd(), alertRules)}  (npx infermesh alerts --follow)
  workers   ${summarize(await collectWorkers(natsUrl, 1500, natsConnectOptions(natsSettings('operator'))))}
  NATS      ${natsUrl} (${natsNote})
  security  between services: mutual TLS (${relative(process.cwd(), certs.dir)}, from \`infermesh certs\`), each service its own NATS user
            public endpoint: ${process.env.ROUTER_TLS_CERT_FILE ? 'TLS' : 'plaintext'} on 127.0.0.1; API keys: ${process.env.ROUTER_API_KEYS_FILE ? `required (${process.env.ROUTER_API_KEYS_FILE})` : 'off (set ROUTER_API_KEYS_FILE)'}; see README "Security"
  traces    ${traces}
  logs      ${relative(process.cwd(), logDir)}/<service>.log

Try it, in another terminal:
  npx infermesh predict --model text-direction --image ${sample}
  npx infermesh predict --model iris --row '{"sepal_length":6.3,"sepal_width":3.3,"petal_length":6.0,"petal_width":2.5}'
  npx infermesh models
  npx infermesh stats
  npx infermesh alerts --follow
  curl -s ${restUrl}/v2/models/iris/infer -d '{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[6.3,3.3,6.0,2.5]}]}'
  npx buf curl --protocol grpc --http2-prior-knowledge --reflect --list-methods http://${address}
  npx buf curl --protocol grpc --http2-prior-knowledge -d '{"name":"iris"}' http://${address}/inference.GRPCInferenceService/ModelMetadata

Ctrl-C stops everything.`);
}
