/** The devices a supervisor starts workers on: the GPUs nvidia-smi lists, an explicit list, or CPU slots. */
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface WorkerSlot {
  /** "gpu0", "gpu1", … or "cpu0", "cpu1", … */
  id: string;
  /** WORKER_DEVICE for the worker: "gpuN" or "cpu". */
  device: string;
  gpuIndex?: number;
  intraOpThreads?: number;
}

/** GPU indices from `nvidia-smi`, or none when it is missing or fails. */
export function detectGpus(): Promise<number[]> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], { timeout: 10_000 }, (error, stdout) => {
      if (error) return resolve([]);
      resolve(stdout.split('\n').map((line) => line.trim()).filter((line) => /^\d+$/.test(line)).map(Number));
    });
  });
}

/**
 * One slot per GPU; without GPUs, `cpuWorkers` slots sharing the cores (intra-op threads
 * divided between them, at least one each).
 */
export function planSlots(gpus: readonly number[], cpuWorkers: number, cores = availableParallelism()): WorkerSlot[] {
  if (gpus.length > 0) return gpus.map((index) => ({ id: `gpu${index}`, device: `gpu${index}`, gpuIndex: index }));
  const threads = Math.max(1, Math.floor(cores / cpuWorkers));
  return Array.from({ length: cpuWorkers }, (_, i) => ({ id: `cpu${i}`, device: 'cpu', intraOpThreads: threads }));
}

/** "gpu0,gpu2" or "0,2" → [0, 2]; "auto" → undefined (detect). */
export function parseDeviceList(value: string): number[] | undefined {
  if (value.trim() === 'auto') return undefined;
  if (value.trim() === 'cpu' || value.trim() === '') return [];
  return value.split(',').map((item) => {
    const match = item.trim().match(/^(?:gpu)?(\d+)$/);
    if (!match) throw new Error(`WORKER_DEVICES: '${item}' is not a GPU index like gpu0 or 0`);
    return Number(match[1]);
  });
}
