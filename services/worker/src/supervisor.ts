/**
 * Starts one worker process per GPU (or N on CPU), each pinned to its device, restarts a
 * worker that dies, and drains them all on SIGTERM.
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
}

interface Managed {
  slot: WorkerSlot;
  child?: ChildProcess;
  restarts: number;
  timer?: NodeJS.Timeout;
}

const WORKER_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export class Supervisor {
  private readonly managed: Managed[];
  private stopping = false;

  constructor(private readonly options: SupervisorOptions) {
    this.managed = options.slots.map((slot) => ({ slot, restarts: 0 }));
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
    const child = spawn(process.execPath, [...process.execArgv, WORKER_MAIN], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    managed.child = child;
    this.options.logger.info({ worker_id: env.WORKER_ID, device: managed.slot.device, pid: child.pid }, 'worker started');
    child.once('exit', (code, signal) => {
      managed.child = undefined;
      if (this.stopping) return;
      const delay = Math.min(30_000, 1000 * 2 ** managed.restarts);
      managed.restarts++;
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
