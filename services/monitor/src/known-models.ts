/**
 * The model versions the mesh serves, as workers announce them in their heartbeats: the
 * only names the monitor accepts as labels. A prediction record is a claim by whoever
 * published it; a label set that grows with whatever names arrive grows /metrics and the
 * monitor's memory without bound, so other names are counted under `_unknown`.
 *
 * A model stays known after its workers leave: its records stay in the stream, and
 * counting them under `_unknown` after a restart would change the counts the monitor
 * showed before it. The set is bounded (`capacity` versions) for a heartbeat that is
 * itself forged.
 */
import type { WorkerHeartbeat__Output } from '@infermesh/contracts';

export const UNKNOWN = '_unknown';
/** Longer names are not taken as labels even when announced. */
export const MAX_LABEL_LENGTH = 128;

export interface SeriesLabels {
  model: string;
  version: string;
}

export class KnownModels {
  // model -> its announced versions
  private readonly versions = new Map<string, Set<string>>();
  private pairs = 0;

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** Learns the model versions of a heartbeat; returns how many were new. */
  announce(heartbeat: Pick<WorkerHeartbeat__Output, 'models'>): number {
    let added = 0;
    for (const { name, version } of heartbeat.models) if (this.add(name, version)) added += 1;
    return added;
  }

  /** Whether the version is known now (false when it is new and the set is full, or a name is not a label). */
  add(model: string, version: string): boolean {
    if (!isLabel(model) || !isLabel(version) || model === UNKNOWN) return false;
    let versions = this.versions.get(model);
    if (versions?.has(version)) return false;
    if (this.pairs >= this.capacity) return false;
    if (!versions) this.versions.set(model, (versions = new Set()));
    versions.add(version);
    this.pairs += 1;
    return true;
  }

  /**
   * The labels a record for `model` / `version` is counted under: the names when the
   * version is known, the model with version `_unknown` when only the model is (as the
   * router labels a request for a version it does not serve), else `_unknown` for both.
   */
  labelsOf(model: string, version: string): SeriesLabels {
    const versions = this.versions.get(model);
    if (!versions) return { model: UNKNOWN, version: UNKNOWN };
    return { model, version: versions.has(version) ? version : UNKNOWN };
  }

  /** Every known model version, as [model, version] pairs (for a snapshot). */
  entries(): [string, string][] {
    return [...this.versions].flatMap(([model, versions]) => [...versions].map((version): [string, string] => [model, version]));
  }

  get size(): number {
    return this.pairs;
  }
}

function isLabel(name: string): boolean {
  return name.length > 0 && name.length <= MAX_LABEL_LENGTH;
}
