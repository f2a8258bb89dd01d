/**
 * Automatic rollback with a fake policy store, driven by the alert transitions Alerting sends
 * (fake signals, evaluations at set times).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Alert__Output, TrafficPolicy, TrafficPolicy__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { Alerting } from './alerts/alerting.js';
import { parseAlertRules } from './alerts/rules.js';
import type { AlertSignals } from './alerts/signals.js';
import { AutomaticRollback, rollbackTarget, type PolicyStore, type RollbackOutcome } from './rollback.js';

const logger = createLogger('rollback-test', { level: 'silent' });
const T0 = 1_700_000_000_000;

class FakePolicies implements PolicyStore {
  readonly stored = new Map<string, TrafficPolicy__Output>();
  readonly revisions = new Map<string, number>();
  readonly puts: TrafficPolicy[] = [];
  /** Runs between a read and the replace that follows it (an operator's change landing in between). */
  beforeReplace: (() => void) | undefined;
  async read(model: string) {
    return { policy: this.stored.get(model), revision: this.revisions.get(model) ?? 0 };
  }
  async replace(policy: TrafficPolicy, revision: number) {
    this.beforeReplace?.();
    this.beforeReplace = undefined;
    if ((this.revisions.get(policy.model!) ?? 0) !== revision) return false;
    this.puts.push(policy);
    this.store(policy.model!, policy as TrafficPolicy__Output);
    return true;
  }
  store(model: string, policy: TrafficPolicy__Output) {
    this.stored.set(model, policy);
    this.revisions.set(model, (this.revisions.get(model) ?? 0) + 1);
  }
  set(model: string, weights: [string, number][], shadowVersions: string[] = []) {
    this.store(model, { model, weights: weights.map(([version, weight]) => ({ version, weight })), shadowVersions, setBy: 'bob@host', setAtMs: '1', reason: 'canary' });
  }
}

/** Error rate per model version, set by each test. */
const errorRates = new Map<string, number>();
const signals: AlertSignals = {
  series: () => [...errorRates.keys()].sort().map((key) => ({ model: key.split('/')[0], version: key.split('/')[1] })),
  models: () => [...new Set([...errorRates.keys()].map((k) => k.split('/')[0]))],
  p99LatencyMs: () => ({ requests: 0 }),
  errorRate: (key) => ({ rate: errorRates.get(`${key.model}/${key.version}`) ?? 0, requests: 100 }),
  drift: () => undefined,
  accuracy: () => undefined,
  servingWorkers: () => 1,
};

const rules = parseAlertRules(stringify({ rules: [
  { name: 'canary-errors', kind: 'error_rate', threshold: 0.1, window: '1m', rollback: true },
  { name: 'errors-noted', kind: 'error_rate', threshold: 0.05, window: '1m' },
] }), 'rules.yaml');

let policies: FakePolicies;
let rollback: AutomaticRollback;
let alerting: Alerting;
let outcomes: Promise<RollbackOutcome>[];

beforeEach(() => {
  errorRates.clear();
  policies = new FakePolicies();
  rollback = new AutomaticRollback({ rules, policies, logger, now: () => T0 });
  alerting = new Alerting({ rules, signals, logger, intervalMs: 1000 });
  outcomes = [];
  alerting.onTransition((alert) => outcomes.push(rollback.handle(alert)));
});

async function evaluateAt(ms: number): Promise<RollbackOutcome[]> {
  outcomes = [];
  alerting.evaluate(T0 + ms);
  await rollback.settled();
  return (await Promise.all(outcomes)).filter((o) => o.kind !== 'ignored');
}

describe('automatic rollback', () => {
  it('sends every unversioned request back to the serving version when a rollback rule fires for the canary', async () => {
    policies.set('iris', [['1', 90], ['2', 10]], ['3']);
    errorRates.set('iris/2', 0.5);
    await evaluateAt(0);
    expect(policies.puts).toEqual([{
      model: 'iris', weights: [{ version: '1', weight: 100 }], shadowVersions: ['3'], setBy: 'rule:canary-errors', setAtMs: String(T0),
      reason: 'rolled back from version 2 to 1: error rate of iris 2 over 1m is 50.0 %, above 10.0 % for 0s',
    }]);
  });

  it('reads the policy again when an operator changed it between its read and its write, and never overwrites the change', async () => {
    policies.set('iris', [['1', 90], ['2', 10]]);
    errorRates.set('iris/2', 0.5);
    // The operator ends the canary (version 1 alone) while the rollback is being decided.
    policies.beforeReplace = () => policies.set('iris', [['1', 100]]);
    expect((await evaluateAt(0)).map((o) => o.kind)).toEqual(['not_a_canary']);
    expect(policies.puts).toEqual([]);
    expect(policies.stored.get('iris')?.setBy).toBe('bob@host');
  });

  it('rolls back once for one firing, however often the alert is seen', async () => {
    policies.set('iris', [['1', 90], ['2', 10]]);
    errorRates.set('iris/2', 0.5);
    await evaluateAt(0);
    // Someone sets the canary again while the alert still fires: that firing is done with.
    policies.set('iris', [['1', 90], ['2', 10]]);
    await evaluateAt(1000);
    const [firing] = alerting.firing().filter((a) => a.rule === 'canary-errors');
    expect((await rollback.handle(firing)).kind).toBe('ignored');
    expect(policies.puts).toHaveLength(1);
  });

  it('rolls back again when the alert resolves and fires anew', async () => {
    policies.set('iris', [['1', 90], ['2', 10]]);
    errorRates.set('iris/2', 0.5);
    await evaluateAt(0);
    errorRates.set('iris/2', 0);
    await evaluateAt(1000);
    policies.set('iris', [['1', 90], ['2', 10]]);
    errorRates.set('iris/2', 0.5);
    await evaluateAt(2000);
    expect(policies.puts).toHaveLength(2);
  });

  it('never touches a model without a canary', async () => {
    policies.set('iris', [['2', 100], ['1', 0]]);
    errorRates.set('iris/2', 0.5);
    errorRates.set('tulip/1', 0.5);
    expect((await evaluateAt(0)).map((o) => o.kind)).toEqual(['not_a_canary', 'not_a_canary']);
    expect(policies.puts).toEqual([]);
  });

  it('leaves the serving version alone when it is the one failing', async () => {
    policies.set('iris', [['1', 90], ['2', 10]]);
    errorRates.set('iris/1', 0.5);
    await evaluateAt(0);
    expect(policies.puts).toEqual([]);
  });

  it('acts only on rules that ask for it', async () => {
    policies.set('iris', [['1', 90], ['2', 10]]);
    errorRates.set('iris/2', 0.07);
    expect(await evaluateAt(0)).toEqual([]);
    expect(policies.puts).toEqual([]);
  });

  it('reports a store that fails, leaving the policy as it was', async () => {
    policies.set('iris', [['1', 90], ['2', 10]]);
    policies.replace = async () => {
      throw new Error('no JetStream');
    };
    errorRates.set('iris/2', 0.5);
    expect((await evaluateAt(0)).map((o) => o.kind)).toEqual(['failed']);
    expect(policies.stored.get('iris')?.weights).toHaveLength(2);
  });

  it('forgets the oldest firings past its bound', async () => {
    const small = new AutomaticRollback({ rules, policies, logger, maxRemembered: 2 });
    const alert = (n: number): Alert__Output => ({
      rule: 'canary-errors', kind: 'error_rate', state: 'firing', severity: 'warning', model: 'iris', version: '2', feature: '', value: 0.5, threshold: 0.1,
      summary: '', startedMs: String(n), resolvedMs: '0', atMs: String(n), fingerprint: 'f',
    });
    for (const n of [1, 2, 3]) await small.handle(alert(n));
    expect((await small.handle(alert(1))).kind).toBe('not_a_canary');
    expect((await small.handle(alert(3))).kind).toBe('ignored');
  });
});

describe('the version a rollback goes back to', () => {
  const policy = (weights: [string, number][]): TrafficPolicy__Output => ({ model: 'iris', weights: weights.map(([version, weight]) => ({ version, weight })), shadowVersions: [], setBy: '', setAtMs: '0', reason: '' });
  it('is the other version weighed most, the older on a tie', () => {
    expect(rollbackTarget(policy([['1', 80], ['2', 10], ['3', 10]]), '3')).toBe('1');
    expect(rollbackTarget(policy([['1', 50], ['2', 50], ['3', 10]]), '3')).toBe('1');
  });
  it('is the older version of a 50/50 canary, and none for the older one', () => {
    expect(rollbackTarget(policy([['1', 50], ['2', 50]]), '2')).toBe('1');
    expect(rollbackTarget(policy([['1', 50], ['2', 50]]), '1')).toBeUndefined();
  });
  it('is none for the serving version, a version without weight, alone, or without a policy', () => {
    expect(rollbackTarget(policy([['1', 90], ['2', 10]]), '1')).toBeUndefined();
    expect(rollbackTarget(policy([['1', 100], ['2', 0]]), '2')).toBeUndefined();
    expect(rollbackTarget(policy([['2', 100], ['1', 0]]), '2')).toBeUndefined();
    expect(rollbackTarget(undefined, '2')).toBeUndefined();
  });
});
