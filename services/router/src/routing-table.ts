/**
 * Which workers hold which models, built from worker heartbeats alone. Picks a worker by
 * least outstanding work with the power of two choices.
 *
 * Every heartbeat replaces a worker's entry, so an entry holds only what the worker says;
 * the router's own count of requests in flight lives with the calls (WorkerPool) and is
 * read at pick time. A counter kept on the entry would be left behind on the replaced
 * object by requests that span a heartbeat.
 *
 * Expiry by heartbeat age holds only while heartbeats can arrive. While NATS is down the
 * router suspends it (WorkerProbe checks the workers directly instead), and a check that
 * runs late (the process was paused: SIGSTOP, a long GC, CPU starvation) credits the pause
 * to every worker before expiring anyone; see `expire`.
 */
import type { ModelStatus__Output, WorkerHeartbeat__Output } from '@infermesh/contracts';
import { unavailable } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';

/**
 * Models taken from one heartbeat at most, and model names remembered at most: a worker
 * (faulty, or a compromised mesh member) could otherwise grow the router's memory and the
 * cost of every heartbeat and lookup without bound.
 */
export const MAX_MODELS_PER_HEARTBEAT = 1024;
export const MAX_KNOWN_MODELS = 4096;
/** A model served off its placement is logged at most this often (per model). */
export const PLACEMENT_WARNING_MS = 60_000;

/** A worker's device kind as placement names it: "gpu0" is a "gpu", "cpu" a "cpu". */
export function deviceKind(device: string): string {
  return device.replace(/[\d:]+$/, '') || 'cpu';
}

export interface WorkerEntry {
  id: string;
  address: string;
  device: string;
  /**
   * The versions requests may be sent to: READY ones, and UNLOADING ones (draining) for the
   * requests pinned to them before the worker said so; new requests pick among READY ones.
   */
  models: ModelStatus__Output[];
  /** Every version the worker announced, with its state (LOADING, READY, UNLOADING, UNAVAILABLE): RepositoryIndex. */
  announced: ModelStatus__Output[];
  /** Queue depth + in flight, as the worker last reported. */
  reportedLoad: number;
  lastSeen: number;
  executionProvider: string;
}

export type TableChange = { kind: 'joined' | 'left'; worker: WorkerEntry; reason?: string };

export class RoutingTable {
  private readonly workers = new Map<string, WorkerEntry>();
  /**
   * Models announced, so "no worker right now" differs from "no such model"; in order of
   * last announcement, at most MAX_KNOWN_MODELS (see `forgetBeyondBound`).
   */
  private readonly known = new Map<string, ModelStatus__Output>();
  private warnedTooManyModels = false;
  private readonly listeners: ((change: TableChange) => void)[] = [];
  /** Each model's newest served version's status, looked up per request; cleared on every change. */
  private readonly newest = new Map<string, ModelStatus__Output | null>();
  /** When each model was last logged as served off its placement. */
  private readonly placementWarned = new Map<string, number>();

  /** How often `expire` is meant to run; a run later than twice this means the process did not run meanwhile. */
  readonly tickMs: number;
  private lastExpiry: number | undefined;
  private expirySuspended = false;
  private isFilled = false;

  constructor(private readonly staleMs: number, private readonly random: () => number = Math.random, private readonly logger?: Logger) {
    this.tickMs = Math.min(250, staleMs / 4);
  }

  /**
   * Whether the table holds what the workers announce: false from the router's start until
   * one heartbeat period has passed (or every worker heard of answered its check). Until
   * then a model missing here may just not have been announced yet.
   */
  get filled(): boolean {
    return this.isFilled;
  }

  markFilled(): void {
    this.isFilled = true;
  }

  onChange(listener: (change: TableChange) => void): void {
    this.listeners.push(listener);
  }

  update(heartbeat: WorkerHeartbeat__Output, now = Date.now()): void {
    if (heartbeat.draining) {
      this.remove(heartbeat.workerId, 'draining');
      return;
    }
    let models = heartbeat.models;
    if (models.length > MAX_MODELS_PER_HEARTBEAT) {
      if (!this.warnedTooManyModels) {
        this.logger?.warn({ worker_id: heartbeat.workerId.slice(0, 128), announced: models.length, taken: MAX_MODELS_PER_HEARTBEAT }, 'a worker heartbeat announces more models than the router takes; the rest are ignored (logged once)');
      }
      this.warnedTooManyModels = true;
      models = models.slice(0, MAX_MODELS_PER_HEARTBEAT);
    }
    const routable = models.filter((m) => m.ready || m.state === 'UNLOADING');
    for (const model of models) {
      // Deleted first so that the map's order is the order of last announcement.
      this.known.delete(model.name);
      this.known.set(model.name, model);
    }
    this.newest.clear();
    const existing = this.workers.get(heartbeat.workerId);
    const entry: WorkerEntry = {
      id: heartbeat.workerId,
      address: heartbeat.address,
      device: heartbeat.device,
      models: routable,
      announced: models,
      reportedLoad: heartbeat.queueDepth + heartbeat.inFlight,
      lastSeen: now,
      executionProvider: heartbeat.executionProvider,
    };
    this.workers.set(entry.id, entry);
    if (this.known.size > MAX_KNOWN_MODELS) this.forgetBeyondBound();
    if (!existing) this.emit({ kind: 'joined', worker: entry });
    else if (existing.address !== entry.address) {
      this.emit({ kind: 'left', worker: existing, reason: 'address changed' });
      this.emit({ kind: 'joined', worker: entry });
    }
  }

  /**
   * Drops workers whose heartbeats stopped.
   *
   * After a pause the timer that calls this runs before the heartbeats queued on the NATS
   * socket meanwhile are read (Node runs due timers before polling sockets), so every
   * worker would look silent for the length of the pause. A run more than one tick late
   * therefore shifts every last-seen time by the lateness first: the table's clock counts
   * only time the router was running. This was chosen over deferring expiry until the
   * socket is drained because the lateness is known exactly here, with no guess about how
   * many reads the queued messages take, and it can be tested with a fake clock. A worker
   * that died during the pause is dropped one stale period after the router resumes
   * (calls to it fail and are retried elsewhere meanwhile).
   */
  expire(now = Date.now()): void {
    const late = this.lastExpiry === undefined ? 0 : now - this.lastExpiry - this.tickMs;
    this.lastExpiry = now;
    if (late > this.tickMs) for (const worker of this.workers.values()) worker.lastSeen += late;
    if (this.expirySuspended) return;
    for (const worker of this.workers.values()) {
      if (now - worker.lastSeen > this.staleMs) this.remove(worker.id, `no heartbeat for ${now - worker.lastSeen} ms`);
    }
  }

  /** Heartbeats cannot arrive (NATS is down): their age says nothing about a worker until they resume. */
  suspendExpiry(): void {
    this.expirySuspended = true;
  }

  /**
   * Heartbeats flow again: each worker still here (checked directly meanwhile) gets one
   * stale period from now to send its next one.
   */
  resumeExpiry(now = Date.now()): void {
    this.expirySuspended = false;
    for (const worker of this.workers.values()) worker.lastSeen = now;
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

  /** The models announced (at most MAX_KNOWN_MODELS), by name. */
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

  /** Versions of a model served by some worker (taking new requests: not draining), ascending. */
  versions(model: string): string[] {
    const versions = new Set(this.list().flatMap((w) => w.models.filter((m) => m.name === model && m.state !== 'UNLOADING').map((m) => m.version)));
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
    const candidates = this.placed(model, version, this.holders(model, version).filter((w) => !exclude.has(w.id)));
    if (candidates.length <= 1) return candidates[0];
    const a = candidates[Math.floor(this.random() * candidates.length)];
    let b = candidates[Math.floor(this.random() * (candidates.length - 1))];
    if (b === a) b = candidates[candidates.length - 1];
    const load = (w: WorkerEntry) => inFlight(w.id) + w.reportedLoad;
    return load(a) <= load(b) ? a : b;
  }

  /**
   * The holders on the model's placement (config.yaml `placement`: device kinds it prefers):
   * those whose device kind is listed, when any; else, with fallback, every holder (logged once
   * a minute per model); without fallback, UNAVAILABLE naming the placement. A model without
   * placement runs anywhere.
   */
  private placed(model: string, version: string, holders: WorkerEntry[]): WorkerEntry[] {
    const placement = this.model(model, version)?.placement;
    if (!placement || placement.devices.length === 0 || holders.length === 0) return holders;
    const preferred = holders.filter((w) => placement.devices.includes(deviceKind(w.device)));
    if (preferred.length > 0) return preferred;
    const held = [...new Set(holders.map((w) => deviceKind(w.device)))].join(', ');
    if (!placement.fallback) {
      throw unavailable(`model '${model}' is placed on ${placement.devices.join(', ')} without fallback (placement.fallback: false), and no worker of that kind holds it (holders: ${held})`);
    }
    const now = Date.now();
    if (now - (this.placementWarned.get(model) ?? -Infinity) >= PLACEMENT_WARNING_MS) {
      this.placementWarned.set(model, now);
      this.logger?.warn({ model, placement: placement.devices, holders: held }, 'no worker on the model\'s placement holds it: served by the others (placement.fallback), logged once a minute');
    }
    return holders;
  }

  /**
   * Forgets the least recently announced names no worker serves, and only if that is not
   * enough the least recently announced of the rest: a name forgotten while still served
   * is learnt again from its holder's next heartbeat.
   */
  private forgetBeyondBound(): void {
    const served = new Set(this.list().flatMap((w) => w.models.map((m) => m.name)));
    for (const name of this.known.keys()) {
      if (this.known.size <= MAX_KNOWN_MODELS) return;
      if (!served.has(name)) this.known.delete(name);
    }
    for (const name of this.known.keys()) {
      if (this.known.size <= MAX_KNOWN_MODELS) return;
      this.known.delete(name);
    }
  }

  private emit(change: TableChange): void {
    for (const listener of this.listeners) listener(change);
  }
}
