import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { thrownBy } from '@infermesh/testing';
import { AlertRulesError, loadAlertRules, parseAlertRules } from './rules.js';

const parse = (rules: unknown[]) => parseAlertRules(stringify({ rules }), 'rules.yaml');
const refusal = (rules: unknown[]) => thrownBy(() => parse(rules), AlertRulesError).message;

describe('alert rules file', () => {
  it('reads each kind with its defaults: severity warning, for 0s, resolve_for = for, a resolve band 10 % under the threshold', () => {
    const rules = parse([
      { name: 'slow', kind: 'latency_p99', model: 'iris', version: 1, threshold: 250, window: '1m', for: '30s', severity: 'critical' },
      { name: 'errors', kind: 'error_rate', threshold: 0.05 },
      { name: 'drift', kind: 'drift', threshold: 0.25, resolve_below: 0.1, for: '2m', resolve_for: '10m' },
      { name: 'accuracy', kind: 'accuracy', threshold: 0.9, last: 500 },
      { name: 'nobody', kind: 'no_worker', model: 'iris', for: '15s' },
    ]);
    expect(rules).toEqual([
      { name: 'slow', kind: 'latency_p99', severity: 'critical', model: 'iris', version: '1', threshold: 250, direction: 'above', resolveAt: 225, forMs: 30_000, resolveForMs: 30_000, windowMs: 60_000, minRequests: 1 },
      { name: 'errors', kind: 'error_rate', severity: 'warning', threshold: 0.05, direction: 'above', resolveAt: expect.closeTo(0.045, 10), forMs: 0, resolveForMs: 0, windowMs: 300_000, minRequests: 20 },
      { name: 'drift', kind: 'drift', severity: 'warning', threshold: 0.25, direction: 'above', resolveAt: 0.1, forMs: 120_000, resolveForMs: 600_000 },
      { name: 'accuracy', kind: 'accuracy', severity: 'warning', threshold: 0.9, direction: 'below', resolveAt: expect.closeTo(0.91, 10), forMs: 0, resolveForMs: 0, lastLabelled: 500 },
      { name: 'nobody', kind: 'no_worker', severity: 'warning', model: 'iris', threshold: 1, direction: 'below', resolveAt: 1, forMs: 15_000, resolveForMs: 15_000 },
    ]);
  });

  it('takes durations in ms, s, m and h', () => {
    const [rule] = parse([{ name: 'd', kind: 'drift', threshold: 0.2, for: '1.5m', resolve_for: '1h' }]);
    expect([rule.forMs, rule.resolveForMs]).toEqual([90_000, 3_600_000]);
    expect(parse([{ name: 'd', kind: 'drift', threshold: 0.2, for: '500ms' }])[0].forMs).toBe(500);
  });

  it('has no rules for an empty file or an empty list', () => {
    expect(parseAlertRules('', 'rules.yaml')).toEqual([]);
    expect(parseAlertRules('rules: []', 'rules.yaml')).toEqual([]);
  });

  it('refuses an unknown kind, naming the rule and the kinds there are', () => {
    const message = refusal([{ name: 'ok', kind: 'drift', threshold: 0.2 }, { name: 'cpu', kind: 'cpu_high', threshold: 1 }]);
    expect(message).toBe("rules.yaml rule 2 ('cpu'): kind: unknown kind \"cpu_high\" (one of latency_p99, error_rate, drift, accuracy, no_worker, shadow_agreement)");
  });

  it('refuses a rule without a threshold', () => {
    expect(refusal([{ name: 'slow', kind: 'latency_p99', window: '1m' }])).toBe("rules.yaml rule 1 ('slow'): threshold: is required");
  });

  it('refuses a negative duration', () => {
    expect(refusal([{ name: 'slow', kind: 'latency_p99', threshold: 100, for: '-30s' }])).toBe("rules.yaml rule 1 ('slow'): for: must not be negative (got '-30s')");
  });

  it('refuses a duration without a unit, or a window beyond the hour kept', () => {
    expect(refusal([{ name: 'slow', kind: 'latency_p99', threshold: 100, for: 30 }])).toContain("rule 1 ('slow'): for: must be a duration like 30s, 2m or 1h");
    expect(refusal([{ name: 'slow', kind: 'latency_p99', threshold: 100, window: '2h' }])).toContain("window: must be between 5s and 1h (got '2h')");
  });

  it('refuses a name used by an earlier rule', () => {
    expect(refusal([{ name: 'x', kind: 'drift', threshold: 0.2 }, { name: 'x', kind: 'no_worker' }])).toBe("rules.yaml rule 2 ('x'): the name 'x' is used by an earlier rule");
  });

  it('refuses an unknown field, saying which fields the kind takes', () => {
    expect(refusal([{ name: 'nobody', kind: 'no_worker', threshold: 1 }])).toBe(
      "rules.yaml rule 1 ('nobody'): unknown field 'threshold' (no_worker rules take name, severity, model, for, resolve_for, summary, kind)",
    );
    expect(refusal([{ name: 'slow', kind: 'latency_p99', threshold: 1, treshold_ms: 2 }])).toContain("unknown field 'treshold_ms'");
  });

  it('marks error_rate, latency_p99 and accuracy rules that roll a canary back', () => {
    const rules = parse([
      { name: 'e', kind: 'error_rate', threshold: 0.1, rollback: true },
      { name: 'l', kind: 'latency_p99', threshold: 100, rollback: false },
      { name: 'a', kind: 'accuracy', threshold: 0.8, rollback: true },
    ]);
    expect(rules.map((r) => r.rollback)).toEqual([true, undefined, true]);
  });

  it('reads a shadow_agreement rule: below its threshold breaches, 50 compared copies by default', () => {
    const [rule] = parse([{ name: 'agree', kind: 'shadow_agreement', model: 'iris', version: 2, threshold: 0.95, rollback: true }]);
    expect(rule).toEqual({
      name: 'agree', kind: 'shadow_agreement', severity: 'warning', model: 'iris', version: '2', threshold: 0.95, direction: 'below', resolveAt: expect.closeTo(0.955, 10),
      forMs: 0, resolveForMs: 0, minCompared: 50, rollback: true,
    });
  });

  it('refuses rollback on rules that say nothing about one version being worse, and a rollback that is not true or false', () => {
    expect(refusal([{ name: 'd', kind: 'drift', threshold: 0.2, rollback: true }])).toContain("unknown field 'rollback'");
    expect(refusal([{ name: 'n', kind: 'no_worker', rollback: true }])).toContain("unknown field 'rollback'");
    expect(refusal([{ name: 'e', kind: 'error_rate', threshold: 0.1, rollback: 'yes' }])).toContain('rollback: must be true or false');
  });

  it('names a rule without a valid name by its place in the file', () => {
    expect(refusal([{ kind: 'drift', threshold: 0.2 }])).toBe('rules.yaml rule 1: name: is required');
    expect(refusal([{ name: 'has space', kind: 'drift', threshold: 0.2 }])).toMatch(/^rules\.yaml rule 1: name: must be 1 to 64/);
    expect(refusal([{ name: 'k', threshold: 0.2 }])).toBe("rules.yaml rule 1 ('k'): kind: is required (one of latency_p99, error_rate, drift, accuracy, no_worker, shadow_agreement)");
  });

  it('refuses a resolve band that is not clear of the threshold (it would flap)', () => {
    expect(refusal([{ name: 'slow', kind: 'latency_p99', threshold: 100, resolve_below: 100 }])).toBe(
      "rules.yaml rule 1 ('slow'): resolve_below (100) must be below the threshold (100), or the alert would flap around it",
    );
    expect(refusal([{ name: 'acc', kind: 'accuracy', threshold: 0.9, resolve_above: 0.8 }])).toContain('resolve_above (0.8) must be above the threshold (0.9)');
  });

  it('refuses an error rate or accuracy threshold that is not a fraction, and a bad severity', () => {
    expect(refusal([{ name: 'e', kind: 'error_rate', threshold: 5 }])).toBe("rules.yaml rule 1 ('e'): threshold: must be a fraction below 1");
    expect(refusal([{ name: 'a', kind: 'accuracy', threshold: 0 }])).toBe("rules.yaml rule 1 ('a'): threshold: must be a fraction above 0");
    expect(refusal([{ name: 's', kind: 'drift', threshold: 0.2, severity: 'page' }])).toBe("rules.yaml rule 1 ('s'): severity: must be warning or critical");
  });

  it('refuses an accuracy rule over more labels than the monitor keeps', () => {
    const text = stringify({ rules: [{ name: 'acc', kind: 'accuracy', threshold: 0.9, last: 2000 }] });
    expect(thrownBy(() => parseAlertRules(text, 'rules.yaml', { accuracyWindow: 1000 }), AlertRulesError).message).toBe(
      "rules.yaml rule 1 ('acc'): last (2000) is more labelled predictions than the monitor keeps (MONITOR_ACCURACY_WINDOW=1000); the rule would never fire",
    );
    expect(parseAlertRules(text, 'rules.yaml', { accuracyWindow: 2000 })).toHaveLength(1);
  });

  it('refuses a summary naming a placeholder there is not', () => {
    expect(refusal([{ name: 's', kind: 'drift', threshold: 0.2, summary: 'drift {{ feature }} of {{modle}}' }])).toContain('summary: names {{modle}}; a summary may name {{rule}}, {{model}}');
  });

  it('refuses a file that is not a list of rules', () => {
    expect(thrownBy(() => parseAlertRules('rules: {a: 1}', 'r.yaml'), AlertRulesError).message).toMatch(/^r\.yaml must hold 'rules:', a list of alert rules/);
    expect(thrownBy(() => parseAlertRules('rules: [1]', 'r.yaml'), AlertRulesError).message).toBe('r.yaml rule 1: must be a mapping of fields (name, kind, ...)');
    expect(thrownBy(() => parseAlertRules('rules: [', 'r.yaml'), AlertRulesError).message).toMatch(/^r\.yaml is neither YAML nor JSON/);
  });

  it('reads a file, and says so when it cannot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alert-rules-'));
    writeFileSync(join(dir, 'rules.yaml'), 'rules:\n  - { name: n, kind: no_worker }\n');
    expect((await loadAlertRules(join(dir, 'rules.yaml'))).map((r) => r.name)).toEqual(['n']);
    await expect(loadAlertRules(join(dir, 'missing.yaml'))).rejects.toThrow(`cannot read the alert rules file ${join(dir, 'missing.yaml')}: ENOENT`);
  });

  it('accepts the example rules file in deploy/alerts', () => {
    const path = fileURLToPath(new URL('../../../../deploy/alerts/rules.example.yaml', import.meta.url));
    const rules = parseAlertRules(readFileSync(path, 'utf8'), path);
    expect(new Set(rules.map((r) => r.kind))).toEqual(new Set(['latency_p99', 'error_rate', 'drift', 'accuracy', 'no_worker', 'shadow_agreement']));
    expect(rules.filter((r) => r.rollback).map((r) => r.name)).toEqual(['canary-errors']);
  });

  it('accepts the rules `infermesh up` gives the local mesh (deploy/alerts/local.yaml)', () => {
    const path = fileURLToPath(new URL('../../../../deploy/alerts/local.yaml', import.meta.url));
    const rules = parseAlertRules(readFileSync(path, 'utf8'), path, { accuracyWindow: 1000 });
    expect(new Set(rules.map((r) => r.kind))).toEqual(new Set(['latency_p99', 'error_rate', 'drift', 'accuracy', 'no_worker']));
  });
});
