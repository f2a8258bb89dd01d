/**
 * The alert rules file (MONITOR_ALERT_RULES_FILE), YAML or JSON, validated once at start: a
 * rule that is wrong stops the monitor with a message naming the rule (its name, or its
 * place in the file) and what is wrong with it. See deploy/alerts/rules.example.yaml.
 *
 *   rules:
 *     - name: iris-slow
 *       kind: latency_p99        # latency_p99 | error_rate | drift | accuracy | no_worker | shadow_agreement
 *       model: iris              # optional: every model when absent
 *       threshold: 250           # ms for latency_p99
 *       window: 1m
 *       for: 30s
 *       severity: critical
 *       rollback: true           # latency_p99, error_rate, accuracy, shadow_agreement: firing for a canary version
 *                                # sends the model back to its serving version (rollback.ts)
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from '@infermesh/config';
import { TIMELINE_BUCKET_MS, TIMELINE_KEEP_MS } from '../timeline.js';

export const ALERT_KINDS = ['latency_p99', 'error_rate', 'drift', 'accuracy', 'no_worker', 'shadow_agreement'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];
export const SEVERITIES = ['warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** What a summary template may name: `{{value}}` and the like. */
export const SUMMARY_PLACEHOLDERS = ['rule', 'model', 'version', 'feature', 'value', 'threshold'] as const;

/** A rule as the evaluator reads it, whatever its kind. */
export interface AlertRule {
  name: string;
  kind: AlertKind;
  severity: Severity;
  /** Selectors: every model / version when absent. */
  model?: string;
  version?: string;
  /**
   * The value that breaches: above it for most kinds; below it for `accuracy` and
   * `shadow_agreement`, and fewer
   * serving workers than it (1) for `no_worker`.
   */
  threshold: number;
  direction: 'above' | 'below';
  /** Clearly off: a firing alert resolves once the value is at or below it (`above` rules), at or above it (`below` rules). */
  resolveAt: number;
  forMs: number;
  resolveForMs: number;
  /** latency_p99, error_rate: the recent window read, and the requests it needs to say anything. */
  windowMs?: number;
  minRequests?: number;
  /** accuracy: the last N labelled predictions, and the rule waits until N are labelled. */
  lastLabelled?: number;
  /** shadow_agreement: the compared copies it needs to say anything. */
  minCompared?: number;
  summary?: string;
  /** Firing for a canary version rolls the model's traffic back to its serving version (rollback.ts). */
  rollback?: true;
}

export class AlertRulesError extends Error {
  override readonly name = 'AlertRulesError';
}

/** More rules than a person writes; a file beyond it is a mistake. */
export const MAX_RULES = 500;
const MAX_FOR_MS = 24 * 3600_000;
const MAX_LAST_LABELLED = 100_000;
const MAX_SUMMARY_LENGTH = 500;
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
/** Model names and versions are at most this long everywhere in the monitor (known-models.ts). */
const MAX_SELECTOR_LENGTH = 128;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3600_000 } as const;

/** "30s", "2m", "1h", "500ms", "1.5m"; not negative. */
function duration(max: number, min = 0) {
  return z.string({ error: 'must be a duration like 30s, 2m or 1h' }).transform((text, ctx) => {
    const trimmed = text.trim();
    if (trimmed.startsWith('-')) {
      ctx.addIssue({ code: 'custom', message: `must not be negative (got '${trimmed.slice(0, 32)}')` });
      return z.NEVER;
    }
    const match = DURATION.exec(trimmed);
    if (!match) {
      ctx.addIssue({ code: 'custom', message: `must be a duration like 30s, 2m or 1h (got '${trimmed.slice(0, 32)}')` });
      return z.NEVER;
    }
    const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
    if (ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `must be between ${formatDuration(min)} and ${formatDuration(max)} (got '${trimmed}')` });
      return z.NEVER;
    }
    return ms;
  });
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms >= 3600_000 && ms % 3600_000 === 0) return `${ms / 3600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

// YAML reads `version: 1` as a number: a selector is its text.
const selector = z.preprocess(
  (value) => (typeof value === 'number' ? String(value) : value),
  z.string().min(1, 'must not be empty').max(MAX_SELECTOR_LENGTH, `must be at most ${MAX_SELECTOR_LENGTH} characters`),
);

const summary = z
  .string()
  .max(MAX_SUMMARY_LENGTH, `must be at most ${MAX_SUMMARY_LENGTH} characters`)
  .superRefine((text, ctx) => {
    for (const [, name] of text.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
      if (!(SUMMARY_PLACEHOLDERS as readonly string[]).includes(name)) {
        ctx.addIssue({ code: 'custom', message: `names {{${name.slice(0, 32)}}}; a summary may name ${SUMMARY_PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ')}` });
      }
    }
  });

const common = {
  name: z.string().regex(RULE_NAME, 'must be 1 to 64 letters, digits, "_", ".", ":" or "-", starting with a letter or digit'),
  severity: z.enum(SEVERITIES, { error: `must be ${SEVERITIES.join(' or ')}` }).default('warning'),
  model: selector.optional(),
  for: duration(MAX_FOR_MS).default(0),
  resolve_for: duration(MAX_FOR_MS).optional(),
  summary: summary.optional(),
};
const window = duration(TIMELINE_KEEP_MS, TIMELINE_BUCKET_MS);
const positive = z.number({ error: 'must be a number' }).positive('must be above 0');
const fraction = z.number({ error: 'must be a number' }).gt(0, 'must be a fraction above 0').lt(1, 'must be a fraction below 1');
// Rules about one version's health; drift and no_worker say nothing about a version being worse.
const rollback = z.boolean({ error: 'must be true or false' }).optional();
const count = (fallback: number, max: number) => z.number({ error: 'must be a whole number' }).int('must be a whole number').positive('must be at least 1').max(max, `must be at most ${max}`).default(fallback);

const kindSchemas = {
  latency_p99: z.strictObject({
    ...common, kind: z.literal('latency_p99'), version: selector.optional(), rollback, threshold: positive, window: window.default(300_000), min_requests: count(1, 1_000_000), resolve_below: z.number().nonnegative().optional(),
  }),
  error_rate: z.strictObject({
    ...common, kind: z.literal('error_rate'), version: selector.optional(), rollback, threshold: fraction, window: window.default(300_000), min_requests: count(20, 1_000_000), resolve_below: z.number().nonnegative().optional(),
  }),
  drift: z.strictObject({ ...common, kind: z.literal('drift'), version: selector.optional(), threshold: positive, resolve_below: z.number().nonnegative().optional() }),
  accuracy: z.strictObject({
    ...common, kind: z.literal('accuracy'), version: selector.optional(), rollback, threshold: fraction, last: count(200, MAX_LAST_LABELLED),
    resolve_above: z.number({ error: 'must be a number' }).max(1, 'must be a fraction, at most 1').optional(),
  }),
  // Agreement of a shadow version (the rule's `version`) with the versions it shadowed, since the monitor started.
  shadow_agreement: z.strictObject({
    ...common, kind: z.literal('shadow_agreement'), version: selector.optional(), threshold: fraction, min_compared: count(50, 1_000_000), rollback,
    resolve_above: z.number({ error: 'must be a number' }).max(1, 'must be a fraction, at most 1').optional(),
  }),
  // Workers announce models, not one version each: a no_worker rule watches a model.
  no_worker: z.strictObject({ ...common, kind: z.literal('no_worker') }),
} satisfies Record<AlertKind, z.ZodType>;

const fileSchema = z.strictObject({ rules: z.array(z.unknown()).max(MAX_RULES, `at most ${MAX_RULES} rules`) });

function describe(error: z.ZodError, kind: AlertKind, raw: object): string {
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const allowed = Object.keys(kindSchemas[kind].shape).join(', ');
        return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k.slice(0, 64)}'`).join(', ')} (${kind} rules take ${allowed})`;
      }
      const field = issue.path.join('.');
      const missing = issue.path.length === 1 && (raw as Record<PropertyKey, unknown>)[issue.path[0]] === undefined;
      return `${field ? `${field}: ` : ''}${missing ? 'is required' : issue.message}`;
    })
    .join('; ');
}

/** What the monitor's settings allow a rule: an accuracy rule reads at most the labels the tracker keeps (MONITOR_ACCURACY_WINDOW). */
export interface AlertRuleLimits {
  accuracyWindow?: number;
}

/** The rules of a rules file's text; `source` names the file in errors. */
export function parseAlertRules(text: string, source: string, limits: AlertRuleLimits = {}): AlertRule[] {
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new AlertRulesError(`${source} is neither YAML nor JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  // An empty file has no rules.
  if (document === null || document === undefined) return [];
  const file = fileSchema.safeParse(document);
  if (!file.success) throw new AlertRulesError(`${source} must hold 'rules:', a list of alert rules (${file.error.issues.map((i) => i.message).join('; ')})`);
  const seen = new Set<string>();
  return file.data.rules.map((raw, index) => {
    const rawName = (raw as { name?: unknown } | null)?.name;
    const named = `${source} rule ${index + 1}${typeof rawName === 'string' && RULE_NAME.test(rawName) ? ` ('${rawName}')` : ''}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AlertRulesError(`${named}: must be a mapping of fields (name, kind, ...)`);
    const kind = (raw as { kind?: unknown }).kind;
    if (kind === undefined) throw new AlertRulesError(`${named}: kind: is required (one of ${ALERT_KINDS.join(', ')})`);
    if (typeof kind !== 'string' || !(ALERT_KINDS as readonly string[]).includes(kind)) {
      throw new AlertRulesError(`${named}: kind: unknown kind ${JSON.stringify(String(kind).slice(0, 64))} (one of ${ALERT_KINDS.join(', ')})`);
    }
    const rule = toRule(kind as AlertKind, raw, named);
    if (rule.lastLabelled !== undefined && limits.accuracyWindow !== undefined && rule.lastLabelled > limits.accuracyWindow) {
      throw new AlertRulesError(`${named}: last (${rule.lastLabelled}) is more labelled predictions than the monitor keeps (MONITOR_ACCURACY_WINDOW=${limits.accuracyWindow}); the rule would never fire`);
    }
    if (seen.has(rule.name)) throw new AlertRulesError(`${named}: the name '${rule.name}' is used by an earlier rule`);
    seen.add(rule.name);
    return rule;
  });
}

function toRule(kind: AlertKind, raw: object, named: string): AlertRule {
  const parsed = kindSchemas[kind].safeParse(raw);
  if (!parsed.success) throw new AlertRulesError(`${named}: ${describe(parsed.error, kind, raw)}`);
  const r = parsed.data;
  const base = {
    name: r.name, kind, severity: r.severity, forMs: r.for, resolveForMs: r.resolve_for ?? r.for,
    ...(r.model !== undefined ? { model: r.model } : {}),
    ...('version' in r && r.version !== undefined ? { version: r.version } : {}),
    ...(r.summary !== undefined ? { summary: r.summary } : {}),
    ...('rollback' in r && r.rollback ? { rollback: true as const } : {}),
  };
  const fail = (message: string): never => {
    throw new AlertRulesError(`${named}: ${message}`);
  };
  switch (r.kind) {
    case 'latency_p99':
    case 'error_rate':
    case 'drift': {
      // A band below the threshold, so a value wavering around it does not fire and resolve by turns.
      const resolveAt = r.resolve_below ?? r.threshold * 0.9;
      if (resolveAt >= r.threshold) fail(`resolve_below (${resolveAt}) must be below the threshold (${r.threshold}), or the alert would flap around it`);
      return { ...base, threshold: r.threshold, direction: 'above', resolveAt, ...('window' in r ? { windowMs: r.window, minRequests: r.min_requests } : {}) };
    }
    case 'shadow_agreement':
    case 'accuracy': {
      // A tenth of the error allowed: accuracy 0.9 (errors 0.1) resolves at 0.91 (errors 0.09).
      const resolveAt = r.resolve_above ?? r.threshold + (1 - r.threshold) * 0.1;
      if (resolveAt <= r.threshold) fail(`resolve_above (${resolveAt}) must be above the threshold (${r.threshold}), or the alert would flap around it`);
      return { ...base, threshold: r.threshold, direction: 'below', resolveAt, ...(r.kind === 'accuracy' ? { lastLabelled: r.last } : { minCompared: r.min_compared }) };
    }
    case 'no_worker':
      // Fewer than one serving worker breaches; one is enough to resolve.
      return { ...base, threshold: 1, direction: 'below', resolveAt: 1 };
  }
}

export async function loadAlertRules(path: string, limits: AlertRuleLimits = {}): Promise<AlertRule[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new AlertRulesError(`cannot read the alert rules file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseAlertRules(text, path, limits);
}
