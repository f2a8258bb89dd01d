/**
 * Worker memory for infermesh evaluate: the resident set size the workers serving a version
 * report in their heartbeats (rss_bytes). It is the whole worker process — the runtime and every
 * model it holds — not the evaluated model alone; nothing public measures one model's share.
 */
import { natsConnectOptions } from '@infermesh/bus';
import type { WorkerHeartbeat__Output } from '@infermesh/contracts';
import { runningMesh } from '../client.js';
import { collectWorkers } from '../commands/workers.js';

/** Heartbeats come every second: 1.5 s hears each worker at least once, as `infermesh workers` does. */
export const WORKER_LISTEN_MS = 1500;
/** How long connecting to NATS may take before memory is reported as not measured (the evaluation is done by then). */
const NATS_CONNECT_TIMEOUT_MS = 3000;
/** Workers named in a report at most (a fleet of hundreds serving one version is summed up by max and count). */
const MAX_LISTED_WORKERS = 8;

export const WORKER_MEMORY_SCOPE = 'resident memory of the whole worker process (every model it holds), not of the model alone';

export interface WorkerRss {
  workerId: string;
  device: string;
  rssBytes: number;
}

export type WorkerMemory =
  | { measured: true; scope: string; workers: WorkerRss[]; maxBytes: number }
  | { measured: false; reason: string };

/** The workers (not draining) announcing a ready `model` `version`, with the memory they report; sorted by id. */
export function workerMemoryOf(heartbeats: readonly WorkerHeartbeat__Output[], model: string, version: string): WorkerMemory {
  const serving = heartbeats.filter((h) => !h.draining && h.models.some((m) => m.name === model && m.version === version && m.ready));
  if (serving.length === 0) return { measured: false, reason: `no worker announced ${model} version ${version} ready in ${WORKER_LISTEN_MS / 1000} s` };
  const workers = serving
    .map((h) => ({ workerId: h.workerId, device: h.device, rssBytes: Number(h.rssBytes) }))
    .filter((w) => Number.isSafeInteger(w.rssBytes) && w.rssBytes > 0)
    .sort((a, b) => a.workerId.localeCompare(b.workerId));
  if (workers.length === 0) return { measured: false, reason: `the ${serving.length} worker(s) serving ${model} version ${version} report no memory (a worker older than heartbeat rss_bytes)` };
  return { measured: true, scope: WORKER_MEMORY_SCOPE, workers, maxBytes: Math.max(...workers.map((w) => w.rssBytes)) };
}

export interface NatsEndpoint {
  url: string;
  connectOptions: ReturnType<typeof natsConnectOptions>;
}

/** NATS_URL (with NATS_USER etc.), else the mesh `infermesh up` runs here (as its operator), else 4222: as `infermesh workers` finds it. */
export function meshNats(env: NodeJS.ProcessEnv = process.env): NatsEndpoint {
  const running = env.NATS_URL ? undefined : runningMesh();
  return { url: env.NATS_URL ?? running?.nats.url ?? 'nats://127.0.0.1:4222', connectOptions: natsConnectOptions(running?.nats.settings ?? env) };
}

/**
 * Listens to heartbeats for WORKER_LISTEN_MS; NATS unreachable (or its settings unusable) is a
 * figure not measured, never a failed evaluation.
 */
export async function measureWorkerMemory(model: string, version: string, find: () => NatsEndpoint = meshNats, collect: typeof collectWorkers = collectWorkers): Promise<WorkerMemory> {
  let nats: NatsEndpoint;
  try {
    nats = find();
  } catch (error) {
    return { measured: false, reason: `the NATS settings are unusable: ${String((error as Error)?.message ?? error).slice(0, 200)}` };
  }
  let heartbeats: WorkerHeartbeat__Output[];
  try {
    heartbeats = await collect(nats.url, WORKER_LISTEN_MS, { ...nats.connectOptions, timeout: NATS_CONNECT_TIMEOUT_MS });
  } catch (error) {
    return { measured: false, reason: `NATS unreachable: ${String((error as Error)?.message ?? error).slice(0, 200)} (${nats.url})` };
  }
  return workerMemoryOf(heartbeats, model, version);
}

export function mebibytes(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** "212.4 MiB (worker-cpu0)", "max 230.1 MiB of 3 workers (worker-a 212.4 MiB, ...)", or "not measured (why)". */
export function formatWorkerMemory(memory: WorkerMemory): string {
  if (!memory.measured) return `not measured (${memory.reason})`;
  const { workers } = memory;
  if (workers.length === 1) return `${mebibytes(workers[0].rssBytes)} (${workers[0].workerId})`;
  const listed = workers.slice(0, MAX_LISTED_WORKERS).map((w) => `${w.workerId} ${mebibytes(w.rssBytes)}`).join(', ');
  const more = workers.length > MAX_LISTED_WORKERS ? `, ${workers.length - MAX_LISTED_WORKERS} more` : '';
  return `max ${mebibytes(memory.maxBytes)} of ${workers.length} workers (${listed}${more})`;
}
