/** The alerts firing now and the last ones resolved: what ListAlerts, the status page and the firing gauge read. */
import type { AlertEvent } from './alert.js';
import type { PrometheusText } from '../prometheus-text.js';

export const DEFAULT_KEPT_RESOLVED = 100;

export class AlertBook {
  private readonly firingNow = new Map<string, AlertEvent>();
  /** Oldest first. */
  private readonly resolved: AlertEvent[] = [];

  constructor(private readonly keptResolved = DEFAULT_KEPT_RESOLVED) {}

  apply(event: AlertEvent): void {
    if (event.state === 'firing') {
      this.firingNow.set(event.fingerprint, event);
      return;
    }
    this.firingNow.delete(event.fingerprint);
    this.resolved.push(event);
    if (this.resolved.length > this.keptResolved) this.resolved.splice(0, this.resolved.length - this.keptResolved);
  }

  /** The alerts firing now, the oldest first. */
  firing(): AlertEvent[] {
    return [...this.firingNow.values()].sort(byStart);
  }

  /** Firing first, then (when asked) the last resolved; each by start time. */
  list(includeResolved: boolean): AlertEvent[] {
    return includeResolved ? [...this.firing(), ...[...this.resolved].sort(byStart)] : this.firing();
  }

  /** 1 per alert name and labels with an alert firing (drift alerts of several features of one version are one series). */
  writePrometheus(out: PrometheusText): void {
    out.family('infermesh_alert_firing', 'gauge', 'Alerts firing now: 1 per rule, severity, model and version with an alert firing (absent otherwise).');
    const series = new Set<string>();
    for (const a of this.firing()) {
      const labels = [['alertname', a.rule], ['severity', a.severity], ['model', a.model], ['version', a.version]] as const;
      const key = JSON.stringify(labels);
      if (series.has(key)) continue;
      series.add(key);
      out.sample('infermesh_alert_firing', labels, 1);
    }
  }
}

function byStart(a: AlertEvent, b: AlertEvent): number {
  return a.startedMs - b.startedMs || (a.fingerprint < b.fingerprint ? -1 : a.fingerprint > b.fingerprint ? 1 : 0);
}
