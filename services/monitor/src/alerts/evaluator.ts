/**
 * The alert rules against the signals, one evaluation at a time: a state machine per rule
 * and labels (model, version, and feature for drift rules).
 *
 *   inactive ──breach──▶ pending ──breach held `for`──▶ firing ──clearly off held `resolve_for`──▶ resolved (inactive)
 *                        └─no breach─▶ inactive          └─not clearly off─▶ the resolve clock starts again
 *
 * Breach: above the threshold (below, for accuracy; no serving worker, for no_worker).
 * Clearly off: at or below `resolve_below` (at or above `resolve_above`), a band away from
 * the threshold, so a value wavering around the threshold neither fires nor resolves by
 * turns. No data (too few requests or labels, a drift window short of inputs, a model no
 * longer watched) stops a pending alert and counts as clearly off for a firing one: an alert
 * about a model nobody calls any more resolves instead of firing for ever.
 *
 * Only pending and firing alerts are held, at most `maxInstances`: a rule over every model
 * and every feature must not grow without bound.
 */
import { fingerprintOf, summaryOf, type AlertEvent, type AlertLabels } from './alert.js';
import type { AlertRule } from './rules.js';
import type { AlertSignals, SeriesKey } from './signals.js';

interface Pending {
  phase: 'pending';
  sinceMs: number;
}

interface Firing {
  phase: 'firing';
  startedMs: number;
  /** When the value was first seen clearly off since it last was not. */
  clearSinceMs?: number;
  /** The last value measured (the value a resolution for lack of data reports). */
  lastValue: number;
}

interface Instance {
  rule: AlertRule;
  labels: AlertLabels;
  state: Pending | Firing;
}

export interface AlertEvaluatorOptions {
  /** Pending and firing alerts held at most; beyond it new ones are not started (counted). */
  maxInstances?: number;
  /** Told once when the bound is first reached, and when a rule's signals throw (once until they answer again). */
  onProblem?: (problem: { kind: 'instances_full'; maxInstances: number } | { kind: 'rule_failed'; rule: string; error: unknown } | { kind: 'rule_recovered'; rule: string }) => void;
}

export const DEFAULT_MAX_ALERT_INSTANCES = 10_000;

/** One reading of a rule: the alert's labels and the value (undefined: no data). */
interface Reading {
  labels: AlertLabels;
  value: number | undefined;
}

export class AlertEvaluator {
  private readonly instances = new Map<string, Instance>();
  private readonly maxInstances: number;
  private readonly failing = new Set<string>();
  private full = false;
  /** Alerts not started because `maxInstances` were held. */
  droppedInstances = 0;

  constructor(
    readonly rules: readonly AlertRule[],
    private readonly signals: AlertSignals,
    private readonly options: AlertEvaluatorOptions = {},
  ) {
    this.maxInstances = options.maxInstances ?? DEFAULT_MAX_ALERT_INSTANCES;
  }

  /** Reads every rule at `nowMs`; returns the transitions (firing, resolved) it made. */
  evaluate(nowMs: number): AlertEvent[] {
    const transitions: AlertEvent[] = [];
    const seen = new Set<string>();
    for (const rule of this.rules) {
      let readings: Reading[];
      try {
        readings = this.read(rule);
        if (this.failing.delete(rule.name)) this.options.onProblem?.({ kind: 'rule_recovered', rule: rule.name });
      } catch (error) {
        // Signals that throw say nothing: the rule's alerts keep their state until they answer again.
        if (!this.failing.has(rule.name)) this.options.onProblem?.({ kind: 'rule_failed', rule: rule.name, error });
        this.failing.add(rule.name);
        for (const [fingerprint, instance] of this.instances) if (instance.rule === rule) seen.add(fingerprint);
        continue;
      }
      for (const reading of readings) {
        const fingerprint = fingerprintOf(rule.name, reading.labels);
        seen.add(fingerprint);
        const event = this.step(fingerprint, rule, reading.labels, reading.value, nowMs);
        if (event) transitions.push(event);
      }
    }
    // Alerts whose labels were not read this time (a feature gone from the profile, a model no longer watched): no data.
    for (const [fingerprint, instance] of [...this.instances]) {
      if (seen.has(fingerprint)) continue;
      const event = this.step(fingerprint, instance.rule, instance.labels, undefined, nowMs);
      if (event) transitions.push(event);
    }
    return transitions;
  }

  /** Alerts pending or firing now. */
  get size(): number {
    return this.instances.size;
  }

  private read(rule: AlertRule): Reading[] {
    const signals = this.signals;
    if (rule.kind === 'no_worker') {
      const models = rule.model !== undefined ? [rule.model] : signals.models();
      return models.map((model) => ({ labels: { model, version: '', feature: '' }, value: signals.servingWorkers(model) }));
    }
    if (rule.kind === 'shadow_agreement') {
      const shadows = (signals.shadowAgreements?.() ?? []).filter((s) => (rule.model === undefined || s.model === rule.model) && (rule.version === undefined || s.version === rule.version));
      // Too few compared copies say nothing: no data, as a window with too few requests.
      return shadows.map((s) => ({ labels: { model: s.model, version: s.version, feature: '' }, value: s.compared >= (rule.minCompared ?? 1) ? s.agreed / s.compared : undefined }));
    }
    const keys = signals.series().filter((key) => (rule.model === undefined || key.model === rule.model) && (rule.version === undefined || key.version === rule.version));
    return keys.flatMap((key): Reading[] => this.readSeries(rule, key));
  }

  private readSeries(rule: AlertRule, key: SeriesKey): Reading[] {
    const labels = { model: key.model, version: key.version, feature: '' };
    switch (rule.kind) {
      case 'latency_p99': {
        const w = this.signals.p99LatencyMs(key, rule.windowMs ?? 0);
        return [{ labels, value: w.requests >= (rule.minRequests ?? 1) ? w.p99Ms : undefined }];
      }
      case 'error_rate': {
        const w = this.signals.errorRate(key, rule.windowMs ?? 0);
        return [{ labels, value: w.requests >= (rule.minRequests ?? 1) ? w.rate : undefined }];
      }
      case 'drift': {
        const drift = this.signals.drift(key);
        // Too few inputs: no reading at all, so each feature's alert sees no data.
        if (!drift?.enoughInputs) return [];
        return drift.features.map(({ feature, psi }) => ({ labels: { ...labels, feature }, value: psi }));
      }
      case 'accuracy': {
        const lastN = rule.lastLabelled ?? 1;
        const recent = this.signals.accuracy(key, lastN);
        return [{ labels, value: recent && recent.labelled >= lastN ? recent.accuracy : undefined }];
      }
      case 'no_worker':
      case 'shadow_agreement':
        return [];
    }
  }

  private step(fingerprint: string, rule: AlertRule, labels: AlertLabels, value: number | undefined, nowMs: number): AlertEvent | undefined {
    const breach = value !== undefined && Number.isFinite(value) && (rule.direction === 'above' ? value > rule.threshold : value < rule.threshold);
    const clear = value === undefined || !Number.isFinite(value) || (rule.direction === 'above' ? value <= rule.resolveAt : value >= rule.resolveAt);
    const instance = this.instances.get(fingerprint);
    if (!instance) {
      if (!breach) return undefined;
      if (this.instances.size >= this.maxInstances) {
        this.droppedInstances += 1;
        if (!this.full) this.options.onProblem?.({ kind: 'instances_full', maxInstances: this.maxInstances });
        this.full = true;
        return undefined;
      }
      const started: Instance = { rule, labels, state: { phase: 'pending', sinceMs: nowMs } };
      this.instances.set(fingerprint, started);
      return this.step(fingerprint, rule, labels, value, nowMs);
    }
    const { state } = instance;
    if (state.phase === 'pending') {
      if (!breach || value === undefined) {
        this.instances.delete(fingerprint);
        return undefined;
      }
      if (nowMs - state.sinceMs < rule.forMs) return undefined;
      instance.state = { phase: 'firing', startedMs: nowMs, lastValue: value };
      return this.event(fingerprint, instance, 'firing', value, nowMs);
    }
    if (value !== undefined) state.lastValue = value;
    if (!clear) {
      state.clearSinceMs = undefined;
      return undefined;
    }
    state.clearSinceMs ??= nowMs;
    if (nowMs - state.clearSinceMs < rule.resolveForMs) return undefined;
    this.instances.delete(fingerprint);
    if (this.instances.size < this.maxInstances) this.full = false;
    return this.event(fingerprint, instance, 'resolved', value, nowMs);
  }

  private event(fingerprint: string, instance: Instance, state: 'firing' | 'resolved', value: number | undefined, nowMs: number): AlertEvent {
    const { rule, labels } = instance;
    const firing = instance.state as Firing;
    return {
      rule: rule.name, kind: rule.kind, state, severity: rule.severity, model: labels.model, version: labels.version, feature: labels.feature,
      value: value ?? firing.lastValue, threshold: rule.threshold, summary: summaryOf(rule, labels, state, value),
      startedMs: firing.startedMs, resolvedMs: state === 'resolved' ? nowMs : 0, atMs: nowMs, fingerprint,
    };
  }
}
