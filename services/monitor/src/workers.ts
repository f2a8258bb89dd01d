/**
 * The workers serving the mesh now, as their heartbeats (every second) tell it: the roster
 * the status page shows, the no_worker alert counts, and an autoscaler (KEDA, an HPA on
 * external metrics) scales workers on through the gauges written here.
 *
 * A heartbeat is a claim by whoever published it: the roster holds at most `maxWorkers`
 * workers, each with at most `maxModelsPerWorker` models, and names longer than a label
 * are not taken. A worker silent for `staleMs` is gone; one that said it drains stays
 * listed (flagged) until then, but serves nothing.
 */
import type { ModelStatus__Output, WorkerHeartbeat__Output } from '@infermesh/contracts';
import { MAX_LABEL_LENGTH } from './known-models.js';
import type { PrometheusText } from './prometheus-text.js';

/** Heartbeats come every second: five missed ones is a worker gone, not a slow one. */
export const WORKER_STALE_MS = 5000;
/** Device and provider names are short ("cpu", "gpu0", "cuda"); longer ones are cut to this. */
const MAX_SHORT_LABEL_LENGTH = 64;

export interface WorkerModel {
  name: string;
  version: string;
  ready: boolean;
}

export interface WorkerEntry {
  id: string;
  device: string;
  provider: string;
  models: WorkerModel[];
  queueDepth: number;
  inFlight: number;
  draining: boolean;
  /** Resident set size of the whole worker process (its last heartbeat); null when the worker does not report it (one older than the field). */
  rssBytes: number | null;
  /** When the monitor last heard from it (the monitor's clock: a worker's own may be off). */
  lastSeenMs: number;
}

export type HeartbeatOutcome = 'taken' | 'roster_full' | 'bad_id';

export interface WorkerRosterOptions {
  maxWorkers?: number;
  maxModelsPerWorker?: number;
  /** Model names with a `model_serving_workers` series at most (a model stays listed, at 0, after its workers leave, until a new one needs its place). */
  maxModels?: number;
  staleMs?: number;
  now?: () => number;
}

/** What the roster reads of a heartbeat. */
export type RosterHeartbeat = Pick<WorkerHeartbeat__Output, 'workerId' | 'device' | 'executionProvider' | 'queueDepth' | 'inFlight' | 'draining'> & Partial<Pick<WorkerHeartbeat__Output, 'rssBytes'>> & {
  models: readonly Pick<ModelStatus__Output, 'name' | 'version' | 'ready'>[];
};

/** Beyond any machine's memory (1 PiB): a figure past it is a bad claim, not a reading. */
const MAX_RSS_BYTES = 2 ** 50;

/** A heartbeat's rss_bytes (uint64, a decimal string) as a number; 0, absent or absurd is null (not reported). */
function residentBytes(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,16}$/.test(value)) return null;
  const n = Number(value);
  return n > 0 && n <= MAX_RSS_BYTES ? n : null;
}

export class WorkerRoster {
  private readonly entries = new Map<string, WorkerEntry>();
  /**
   * The models served, each with when a heartbeat last announced it, least recently first:
   * a model whose workers all left reads 0, not nothing. Past maxModels the one longest
   * without a worker makes room (models come and go over months; a full set must not hide
   * every new one), never one served now.
   */
  private readonly servedModels = new Map<string, number>();
  private readonly ignored: Record<Exclude<HeartbeatOutcome, 'taken'>, number> = { roster_full: 0, bad_id: 0 };
  readonly maxWorkers: number;
  readonly maxModelsPerWorker: number;
  readonly maxModels: number;
  readonly staleMs: number;
  private readonly now: () => number;

  constructor(options: WorkerRosterOptions = {}) {
    this.maxWorkers = options.maxWorkers ?? 1000;
    this.maxModelsPerWorker = options.maxModelsPerWorker ?? 256;
    this.maxModels = options.maxModels ?? 500;
    this.staleMs = options.staleMs ?? WORKER_STALE_MS;
    this.now = options.now ?? Date.now;
  }

  /** Takes a heartbeat as the worker's latest state; says why when it is not taken. */
  observe(heartbeat: RosterHeartbeat): HeartbeatOutcome {
    const id = heartbeat.workerId;
    if (id.length === 0 || id.length > MAX_LABEL_LENGTH) return this.ignore('bad_id');
    const now = this.now();
    if (!this.entries.has(id) && this.entries.size >= this.maxWorkers) {
      this.forgetStale(now);
      if (this.entries.size >= this.maxWorkers) return this.ignore('roster_full');
    }
    const models = heartbeat.models
      .filter((m) => m.name.length > 0 && m.name.length <= MAX_LABEL_LENGTH && m.version.length <= MAX_LABEL_LENGTH)
      .slice(0, this.maxModelsPerWorker)
      .map((m) => ({ name: m.name, version: m.version, ready: m.ready }));
    for (const m of models) this.served(m.name, now);
    this.entries.set(id, {
      id,
      device: heartbeat.device.slice(0, MAX_SHORT_LABEL_LENGTH),
      provider: heartbeat.executionProvider.slice(0, MAX_SHORT_LABEL_LENGTH),
      models,
      queueDepth: heartbeat.queueDepth,
      inFlight: heartbeat.inFlight,
      draining: heartbeat.draining,
      rssBytes: residentBytes(heartbeat.rssBytes),
      lastSeenMs: now,
    });
    return 'taken';
  }

  /** The workers heard from within `staleMs`, sorted by id. */
  workers(): WorkerEntry[] {
    this.forgetStale(this.now());
    return [...this.entries.values()]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((w) => ({ ...w, models: w.models.map((m) => ({ ...m })) }));
  }

  /** Workers that can answer `model` now: fresh, not draining, with a ready version of it. */
  servingWorkers(model: string): number {
    this.forgetStale(this.now());
    let serving = 0;
    for (const w of this.entries.values()) if (!w.draining && w.models.some((m) => m.name === model && m.ready)) serving += 1;
    return serving;
  }

  /** Heartbeats not taken, by reason. */
  ignoredCounts(): Readonly<Record<Exclude<HeartbeatOutcome, 'taken'>, number>> {
    return { ...this.ignored };
  }

  writePrometheus(out: PrometheusText): void {
    const workers = this.workers();
    out.family('infermesh_worker_up', 'gauge', 'Workers heard from in the last 5 s: 1 while serving, 0 while draining.');
    for (const w of workers) out.sample('infermesh_worker_up', [['worker', w.id], ['device', w.device], ['provider', w.provider]], w.draining ? 0 : 1);
    out.family('infermesh_worker_queue_depth', 'gauge', 'Requests waiting in the worker\'s batch queues (its last heartbeat).');
    for (const w of workers) out.sample('infermesh_worker_queue_depth', [['worker', w.id], ['device', w.device]], w.queueDepth);
    out.family('infermesh_worker_in_flight', 'gauge', 'Requests the worker is running now (its last heartbeat).');
    for (const w of workers) out.sample('infermesh_worker_in_flight', [['worker', w.id], ['device', w.device]], w.inFlight);
    out.family('infermesh_worker_resident_memory_bytes', 'gauge', 'Resident set size of the whole worker process, every model it holds (its last heartbeat).');
    for (const w of workers) if (w.rssBytes !== null) out.sample('infermesh_worker_resident_memory_bytes', [['worker', w.id], ['device', w.device]], w.rssBytes);
    out.family('infermesh_model_serving_workers', 'gauge', 'Workers that can answer the model now: heard from in the last 5 s, not draining, with a ready version.');
    const serving = this.servingCounts();
    for (const model of [...this.servedModels.keys()].sort()) out.sample('infermesh_model_serving_workers', [['model', model]], serving.get(model) ?? 0);
    out.family('infermesh_monitor_heartbeats_ignored_total', 'counter', 'Worker heartbeats the roster did not take: roster_full (at its bound of workers), bad_id (empty or too long).');
    for (const [reason, n] of Object.entries(this.ignored)) out.sample('infermesh_monitor_heartbeats_ignored_total', [['reason', reason]], n);
  }

  /** Serving workers per model, in one pass over the roster (a scrape must not be workers x models x models). */
  private servingCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const w of this.entries.values()) {
      if (w.draining) continue;
      for (const name of new Set(w.models.filter((m) => m.ready).map((m) => m.name))) counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    return counts;
  }

  private served(model: string, now: number): void {
    if (this.servedModels.delete(model) || this.servedModels.size < this.maxModels) {
      this.servedModels.set(model, now);
      return;
    }
    const [oldest, lastMs] = this.servedModels.entries().next().value ?? [];
    if (oldest === undefined || (lastMs ?? now) > now - this.staleMs) return;
    this.servedModels.delete(oldest);
    this.servedModels.set(model, now);
  }

  private ignore(reason: Exclude<HeartbeatOutcome, 'taken'>): HeartbeatOutcome {
    this.ignored[reason] += 1;
    return reason;
  }

  private forgetStale(now: number): void {
    for (const [id, w] of this.entries) if (now - w.lastSeenMs >= this.staleMs) this.entries.delete(id);
  }
}
