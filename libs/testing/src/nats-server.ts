/**
 * Starts a real nats-server (with JetStream) on a free port in a temporary folder, so
 * tests never depend on a server someone else runs.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { natsAuthorization, NATS_ROLES, type NatsRole } from '@infermesh/contracts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';
import { reapOnExit } from './reap.js';

export interface NatsServer {
  url: string;
  port: number;
  process: ChildProcess;
  /**
   * With `auth`: the settings a service of `role` connects with (NATS_USER and
   * NATS_PASSWORD_FILE); `admin` may do anything (tests inspect streams with it).
   * Without `auth`: no settings.
   */
  credentials(role: NatsRole | 'admin'): Record<string, string>;
  /** Kills the server (SIGKILL, as a crash), keeping its store: a NATS outage until `restart`. */
  kill(): Promise<void>;
  /** Starts the server again on the same port with the same store and settings. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** One user per mesh role, with the mesh's permissions (@infermesh/contracts natsAuthorization). */
  auth?: boolean;
  /** The subject prefix the permissions are written for. */
  prefix?: string;
  /** TLS with this certificate and key (PEM files): clients then connect with the CA that signed it. */
  tls?: { certFile: string; keyFile: string };
}

export function natsServerBinary(): string {
  const candidates = [process.env.NATS_SERVER_BIN, 'nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];
  for (const candidate of candidates) {
    if (!candidate) continue;
    if (candidate.includes('/') ? existsSync(candidate) : onPath(candidate)) return candidate;
  }
  throw new Error('nats-server was not found: install it (Debian: apt-get install nats-server) or set NATS_SERVER_BIN');
}

function onPath(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'infermesh-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir];
  const credentials = new Map<string, Record<string, string>>();
  const config: string[] = [];
  if (options.auth) {
    const users = [...NATS_ROLES, 'admin' as const].map((role) => ({ user: role, password: randomBytes(18).toString('base64url'), role }));
    for (const { user, password } of users) {
      const file = join(dir, `${user}.password`);
      writeFileSync(file, password, { mode: 0o600 });
      credentials.set(user, { NATS_USER: user, NATS_PASSWORD_FILE: file });
    }
    config.push(natsAuthorization(users, options.prefix ?? 'infermesh'));
  }
  if (options.tls) config.push(`tls ${JSON.stringify({ cert_file: options.tls.certFile, key_file: options.tls.keyFile })}\n`);
  if (config.length > 0) {
    const file = join(dir, 'nats.conf');
    writeFileSync(file, config.join(''), { mode: 0o600 });
    args.push('-c', file);
  }
  let child = spawn(natsServerBinary(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  reapOnExit(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  try {
    await waitForPort(port, 10_000, () => child.exitCode !== null);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`nats-server did not start on port ${port}: ${stderr}`, { cause: error });
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get process() {
      return child;
    },
    credentials: (role) => credentials.get(role) ?? {},
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      child = spawn(natsServerBinary(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
      reapOnExit(child);
      const restarted = child;
      restarted.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
      try {
        await waitForPort(port, 10_000, () => restarted.exitCode !== null);
      } catch (error) {
        throw new Error(`nats-server did not restart on port ${port}: ${stderr}`, { cause: error });
      }
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
