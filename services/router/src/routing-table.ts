/**
 * Which workers hold which models, built from worker heartbeats alone. Picks a worker by
 * least outstanding work with the power of two choices.
 *
 * Every heartbeat replaces a worker's entry, so an entry holds only what the worker says;
 * the router's own count of requests in flight lives with the calls (WorkerPool) and is
 * read at pick time. A counter kept on the entry would be left behind on the replaced
 * object by requests that span a heartbeat.
 */
import type { ModelStatus__Output, WorkerHeartbeat__Output } from '@infermesh/contracts';

export interface WorkerEntry {
  id: string;
  address: string;
  device: string;
  models: ModelStatus__Output[];
  /** Queue depth + in flight, as the worker last reported. */
  reportedLoad: number;
  lastSeen: number;
  executionProvider: string;
}

export type TableChange = { kind: 'joined' | 'left'; worker: WorkerEntry; reason?: string };

export class RoutingTable {
  private readonly workers = new Map<string, WorkerEntry>();
  /** Every model ever announced, so "no worker right now" differs from "no such model". */
  private readonly known = new Map<string, ModelStatus__Output>();
  private readonly listeners: ((change: TableChange) => void)[] = [];
  /** Each model's newest served version's status, looked up per request; cleared on every change. */
  private readonly newest = new Map<string, ModelStatus__Output | null>();

  constructor(private readonly staleMs: number, private readonly random: () => number = Math.random) {}

  onChange(listener: (change: TableChange) => void): void {
    this.listeners.push(listener);
  }

  update(heartbeat: WorkerHeartbeat__Output, now = Date.now()): void {
    if (heartbeat.draining) {
      this.remove(heartbeat.workerId, 'draining');
      return;
    }
    for (const model of heartbeat.models) this.known.set(model.name, model);
    this.newest.clear();
    const existing = this.workers.get(heartbeat.workerId);
    const entry: WorkerEntry = {
      id: heartbeat.workerId,
      address: heartbeat.address,
      device: heartbeat.device,
      models: heartbeat.models.filter((m) => m.ready),
      reportedLoad: heartbeat.queueDepth + heartbeat.inFlight,
      lastSeen: now,
      executionProvider: heartbeat.executionProvider,
    };
    this.workers.set(entry.id, entry);
    if (!existing) this.emit({ kind: 'joined', worker: entry });
    else if (existing.address !== entry.address) {
      this.emit({ kind: 'left', worker: existing, reason: 'address changed' });
      this.emit({ kind: 'joined', worker: entry });
    }
  }

  /** Drops workers whose heartbeats stopped. */
  expire(now = Date.now()): void {
    for (const worker of this.workers.values()) {
      if (now - worker.lastSeen > this.staleMs) this.remove(worker.id, `no heartbeat for ${now - worker.lastSeen} ms`);
    }
  }

  remove(workerId: string, reason: string): void {
    const worker = this.workers.get(workerId);
    if (!worker) return;
    this.workers.delete(workerId);
    this.newest.clear();
    this.emit({ kind: 'left', worker, reason });
  }

  list(): WorkerEntry[] {
    return [...this.workers.values()];
  }

  get(workerId: string): WorkerEntry | undefined {
    return this.workers.get(workerId);
  }

  isKnown(model: string): boolean {
    return this.known.has(model);
  }

  /** Every model ever announced, by name. */
  knownModels(): string[] {
    return [...this.known.keys()].sort();
  }

  /** Whether some worker serves this version of the model now. */
  hasVersion(model: string, version: string): boolean {
    for (const worker of this.workers.values()) if (worker.models.some((m) => m.name === model && m.version === version)) return true;
    return false;
  }

  /** Workers holding the model (and version, when given). */
  holders(model: string, version = ''): WorkerEntry[] {
    return this.list().filter((w) => w.models.some((m) => m.name === model && (!version || m.version === version)));
  }

  /** Versions of a model served by some worker, ascending. */
  versions(model: string): string[] {
    const versions = new Set(this.list().flatMap((w) => w.models.filter((m) => m.name === model).map((m) => m.version)));
    return [...versions].sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
  }

  /** The model's status as announced (the given version, or the newest). */
  model(model: string, version = ''): ModelStatus__Output | undefined {
    // Names no worker ever announced are not looked up (nor cached: clients choose them).
    if (!this.known.has(model)) return undefined;
    if (!version) {
      let status = this.newest.get(model);
      if (status === undefined) {
        status = this.find(model, this.versions(model).at(-1)) ?? null;
        this.newest.set(model, status);
      }
      return status ?? undefined;
    }
    return this.find(model, version);
  }

  private find(model: string, version: string | undefined): ModelStatus__Output | undefined {
    for (const worker of this.workers.values()) {
      const status = worker.models.find((m) => m.name === model && m.version === version);
      if (status) return status;
    }
    return undefined;
  }

  /**
   * Power of two choices over the holders not in `exclude`, by least outstanding work:
   * `inFlight` (this router's requests at the worker, exact and current) plus what the
   * worker last reported (other routers' work).
   */
  pick(model: string, version: string, inFlight: (workerId: string) => number, exclude: ReadonlySet<string> = new Set()): WorkerEntry | undefined {
    const candidates = this.holders(model, version).filter((w) => !exclude.has(w.id));
    if (candidates.length <= 1) return candidates[0];
    const a = candidates[Math.floor(this.random() * candidates.length)];
    let b = candidates[Math.floor(this.random() * (candidates.length - 1))];
    if (b === a) b = candidates[candidates.length - 1];
    const load = (w: WorkerEntry) => inFlight(w.id) + w.reportedLoad;
    return load(a) <= load(b) ? a : b;
  }

  private emit(change: TableChange): void {
    for (const listener of this.listeners) listener(change);
  }
}
