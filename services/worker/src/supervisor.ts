/**
 * Starts one worker process per GPU (or N on CPU), each pinned to its device, restarts a
 * worker that dies (after a growing delay, reset once it has stayed up a while), and
 * drains them all on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@infermesh/log';
import type { WorkerSlot } from './devices.js';

export interface SupervisorOptions {
  slots: WorkerSlot[];
  /** Worker id prefix; each worker is <prefix>-<slot>. */
  idPrefix: string;
  /** Execution providers for GPU workers, e.g. ['cuda', 'cpu']. */
  gpuProviders: string[];
  /** First port; worker i listens on basePort + i (0: any free port). */
  basePort: number;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  backoff?: Partial<BackoffOptions>;
  /** The worker's entry script (tests start a stand-in). */
  workerMain?: string;
}

export interface BackoffOptions {
  /** Delay before the first restart; each restart in a row doubles it. */
  initialMs: number;
  maxMs: number;
  /** A worker up for this long was healthy: its next restart waits `initialMs` again. */
  resetAfterMs: number;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, resetAfterMs: 30_000 };

/**
 * The delay before restarting one slot's worker. It doubles while the worker keeps dying
 * soon after each start (a crash loop must not spin), and starts over once a worker has
 * stayed up for `resetAfterMs`: otherwise one crash a day would, within a week, leave a
 * slot unserved for the maximum delay after every crash.
 */
export class RestartBackoff {
  private restarts = 0;
  private startedAt = 0;

  constructor(private readonly options: BackoffOptions, private readonly now: () => number = Date.now) {}

  started(): void {
    this.startedAt = this.now();
  }

  /** The delay before the next start, for a worker that has just exited. */
  exited(): number {
    if (this.now() - this.startedAt >= this.options.resetAfterMs) this.restarts = 0;
    const delay = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.restarts);
    this.restarts++;
    return delay;
  }
}

interface Managed {
  slot: WorkerSlot;
  child?: ChildProcess;
  backoff: RestartBackoff;
  timer?: NodeJS.Timeout;
}

const WORKER_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export class Supervisor {
  private readonly managed: Managed[];
  private stopping = false;

  constructor(private readonly options: SupervisorOptions) {
    const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.managed = options.slots.map((slot) => ({ slot, backoff: new RestartBackoff(backoff) }));
  }

  /** Environment of the worker on one slot. */
  workerEnv(slot: WorkerSlot, index: number): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...(this.options.env ?? process.env),
      WORKER_ID: `${this.options.idPrefix}-${slot.id}`,
      WORKER_DEVICE: slot.device,
      WORKER_PORT: String(this.options.basePort === 0 ? 0 : this.options.basePort + index),
    };
    if (slot.gpuIndex !== undefined) {
      // Pinned: the worker sees only its GPU, as device 0.
      env.CUDA_VISIBLE_DEVICES = String(slot.gpuIndex);
      env.WORKER_EXECUTION_PROVIDERS = this.options.gpuProviders.join(',');
    }
    if (slot.intraOpThreads) env.WORKER_INTRA_OP_THREADS ??= String(slot.intraOpThreads);
    return env;
  }

  start(): void {
    this.managed.forEach((m, i) => this.spawn(m, i));
  }

  private spawn(managed: Managed, index: number): void {
    const env = this.workerEnv(managed.slot, index);
    const child = spawn(process.execPath, [...process.execArgv, this.options.workerMain ?? WORKER_MAIN], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    managed.child = child;
    managed.backoff.started();
    this.options.logger.info({ worker_id: env.WORKER_ID, device: managed.slot.device, pid: child.pid }, 'worker started');
    child.once('exit', (code, signal) => {
      managed.child = undefined;
      if (this.stopping) return;
      const delay = managed.backoff.exited();
      this.options.logger.error({ worker_id: env.WORKER_ID, code, signal, restart_in_ms: delay }, 'worker exited; restarting');
      managed.timer = setTimeout(() => this.spawn(managed, index), delay);
    });
  }

  /** SIGTERM to every worker (each drains), then waits for all to exit. */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.managed.map((m) => {
        clearTimeout(m.timer);
        const child = m.child;
        if (!child) return Promise.resolve();
        return new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        });
      }),
    );
  }
}
