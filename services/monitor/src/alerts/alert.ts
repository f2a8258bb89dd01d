/** One alert transition as the monitor keeps and sends it (the infermesh.v1.Alert message), its fingerprint and its summary line. */
import { createHash } from 'node:crypto';
import { formatDuration, type AlertKind, type AlertRule, type Severity } from './rules.js';

export interface AlertEvent {
  rule: string;
  kind: AlertKind;
  state: 'firing' | 'resolved';
  severity: Severity;
  model: string;
  /** Empty for rules about a model (no_worker). */
  version: string;
  /** The drifting feature (drift rules); empty otherwise. */
  feature: string;
  /** The value measured at the transition, and the rule's threshold. */
  value: number;
  threshold: number;
  summary: string;
  startedMs: number;
  /** 0 while firing. */
  resolvedMs: number;
  atMs: number;
  fingerprint: string;
}

export interface AlertLabels {
  model: string;
  version: string;
  feature: string;
}

/** Stable across transitions and restarts: the rule's name and the alert's labels, hashed (16 hex digits, as Alertmanager's). */
export function fingerprintOf(rule: string, { model, version, feature }: AlertLabels): string {
  return createHash('sha256').update([rule, model, version, feature].join('\u0000')).digest('hex').slice(0, 16);
}

/** A value as a person reads it for the rule's kind: "312 ms", "12.5 %", "0.31", "2 workers". */
export function formatValue(kind: AlertKind, value: number): string {
  switch (kind) {
    case 'latency_p99':
      return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
    case 'error_rate':
    case 'accuracy':
    case 'shadow_agreement':
      return `${(value * 100).toFixed(1)} %`;
    case 'drift':
      return value.toFixed(2);
    case 'no_worker':
      return `${value} worker${value === 1 ? '' : 's'}`;
  }
}

function subject(rule: AlertRule, labels: AlertLabels): string {
  const of = `${labels.model}${labels.version ? ` ${labels.version}` : ''}`;
  switch (rule.kind) {
    case 'latency_p99':
      return `p99 latency of ${of} over ${formatDuration(rule.windowMs ?? 0)}`;
    case 'error_rate':
      return `error rate of ${of} over ${formatDuration(rule.windowMs ?? 0)}`;
    case 'drift':
      return `PSI of ${labels.feature} of ${of}`;
    case 'accuracy':
      return `accuracy of ${of} over the last ${rule.lastLabelled} labelled`;
    case 'no_worker':
      return `workers serving ${of}`;
    case 'shadow_agreement':
      return `agreement of shadow ${of} with the serving version (at least ${rule.minCompared} compared)`;
  }
}

/**
 * The alert's one line: the rule's template when it has one, else "p99 latency of iris 1
 * over 1m is 312 ms, above 250 ms for 30s" (firing) or "... is 180 ms, at or below 225 ms
 * for 30s" (resolved); `value` is absent when the alert resolved for lack of data.
 */
export function summaryOf(rule: AlertRule, labels: AlertLabels, state: 'firing' | 'resolved', value: number | undefined): string {
  if (rule.summary !== undefined) {
    const fields: Record<string, string> = {
      rule: rule.name, model: labels.model, version: labels.version, feature: labels.feature,
      value: value === undefined ? 'no data' : formatValue(rule.kind, value), threshold: formatValue(rule.kind, rule.threshold),
    };
    return rule.summary.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (_match, name: string) => fields[name] ?? '');
  }
  const what = subject(rule, labels);
  const side = rule.direction === 'above' ? 'above' : 'below';
  const back = rule.direction === 'above' ? 'at or below' : 'at or above';
  if (rule.kind === 'no_worker') {
    return state === 'firing'
      ? `no worker serves ${labels.model} (for ${formatDuration(rule.forMs)})`
      : value === undefined ? `${labels.model} is no longer watched (no worker or request for an hour)` : `${labels.model} is served by ${formatValue(rule.kind, value)} again`;
  }
  if (state === 'firing') return `${what} is ${formatValue(rule.kind, value ?? 0)}, ${side} ${formatValue(rule.kind, rule.threshold)} for ${formatDuration(rule.forMs)}`;
  if (value === undefined) return `${what}: no data for ${formatDuration(rule.resolveForMs)}`;
  return `${what} is ${formatValue(rule.kind, value)}, ${back} ${formatValue(rule.kind, rule.resolveAt)} for ${formatDuration(rule.resolveForMs)}`;
}
