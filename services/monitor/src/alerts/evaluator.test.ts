/** The alert state machine with a fake clock (evaluate's nowMs) and fake signals, one behaviour per test. */
import { describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { AlertEvaluator } from './evaluator.js';
import { parseAlertRules } from './rules.js';
import type { AlertSignals, DriftSignal, SeriesKey } from './signals.js';
import type { AlertEvent } from './alert.js';

const T0 = 1_700_000_000_000;
const iris = { model: 'iris', version: '1' };
const resnet = { model: 'resnet', version: '3' };

/** Signals a test sets as it goes; every model version reads the same values unless set per key. */
class FakeSignals implements AlertSignals {
  keys: SeriesKey[] = [iris];
  watchedModels: string[] = ['iris'];
  latency = new Map<string, { p99Ms?: number; requests: number }>();
  errors = new Map<string, { rate: number; requests: number }>();
  drifts = new Map<string, DriftSignal>();
  accuracies = new Map<string, { accuracy: number; labelled: number }>();
  workers = new Map<string, number | undefined>();
  windowsAsked: number[] = [];

  series() {
    return this.keys;
  }
  models() {
    return this.watchedModels;
  }
  p99LatencyMs(key: SeriesKey, windowMs: number) {
    this.windowsAsked.push(windowMs);
    return this.latency.get(key.model) ?? { requests: 0 };
  }
  errorRate(key: SeriesKey) {
    return this.errors.get(key.model) ?? { rate: 0, requests: 0 };
  }
  drift(key: SeriesKey) {
    return this.drifts.get(key.model);
  }
  accuracy(key: SeriesKey) {
    return this.accuracies.get(key.model);
  }
  servingWorkers(model: string) {
    return this.workers.has(model) ? this.workers.get(model) : 1;
  }
}

function evaluator(rules: unknown[], signals = new FakeSignals(), options = {}) {
  const e = new AlertEvaluator(parseAlertRules(stringify({ rules }), 'rules.yaml'), signals, options);
  return { e, signals };
}

/** Evaluates at each second offset from T0 (a fake clock), returning every transition with the offset it came at. */
function run(e: AlertEvaluator, seconds: number[], before?: (second: number) => void): { at: number; event: AlertEvent }[] {
  const out: { at: number; event: AlertEvent }[] = [];
  for (const s of seconds) {
    before?.(s);
    for (const event of e.evaluate(T0 + s * 1000)) out.push({ at: s, event });
  }
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const slow = { name: 'slow', kind: 'latency_p99', threshold: 250, window: '1m', for: '30s' };

describe('latency_p99', () => {
  it('fires only once the p99 has been above the threshold for `for`', () => {
    const { e, signals } = evaluator([slow]);
    signals.latency.set('iris', { p99Ms: 300, requests: 100 });
    const events = run(e, range(0, 40));
    expect(events.map(({ at, event }) => [at, event.state])).toEqual([[30, 'firing']]);
    expect(events[0].event).toMatchObject({
      rule: 'slow', kind: 'latency_p99', severity: 'warning', model: 'iris', version: '1', feature: '', value: 300, threshold: 250,
      startedMs: T0 + 30_000, resolvedMs: 0, atMs: T0 + 30_000, summary: 'p99 latency of iris 1 over 1m is 300 ms, above 250 ms for 30s',
    });
    expect(signals.windowsAsked[0]).toBe(60_000);
  });

  it('starts the `for` clock again when the p99 drops under the threshold before it fires', () => {
    const { e, signals } = evaluator([slow]);
    const events = run(e, range(0, 70), (s) => signals.latency.set('iris', { p99Ms: s === 20 ? 240 : 300, requests: 100 }));
    expect(events.map(({ at }) => at)).toEqual([51]);
  });

  it('does not flap: a p99 wavering around the threshold keeps a firing alert firing', () => {
    const { e, signals } = evaluator([slow]);
    signals.latency.set('iris', { p99Ms: 300, requests: 100 });
    run(e, range(0, 30));
    // 240..260 ms for five minutes: under the threshold half the time, never at or below the 225 ms band.
    const events = run(e, range(31, 330), (s) => signals.latency.set('iris', { p99Ms: s % 2 === 0 ? 240 : 260, requests: 100 }));
    expect(events).toEqual([]);
  });

  it('does not fire again and again around the threshold once resolved', () => {
    const { e, signals } = evaluator([{ ...slow, for: '0s', resolve_for: '0s' }]);
    const events = run(e, range(0, 60), (s) => signals.latency.set('iris', { p99Ms: s % 2 === 0 ? 240 : 260, requests: 100 }));
    expect(events.map(({ event }) => event.state)).toEqual(['firing']);
  });

  it('resolves once the p99 has been at or below the band for resolve_for (default: for)', () => {
    const { e, signals } = evaluator([slow]);
    signals.latency.set('iris', { p99Ms: 300, requests: 100 });
    run(e, range(0, 30));
    signals.latency.set('iris', { p99Ms: 200, requests: 100 });
    const events = run(e, range(31, 70));
    expect(events.map(({ at, event }) => [at, event.state])).toEqual([[61, 'resolved']]);
    expect(events[0].event).toMatchObject({
      state: 'resolved', value: 200, startedMs: T0 + 30_000, resolvedMs: T0 + 61_000, atMs: T0 + 61_000,
      summary: 'p99 latency of iris 1 over 1m is 200 ms, at or below 225 ms for 30s',
    });
  });

  it('starts the resolve clock again when the p99 leaves the band', () => {
    const { e, signals } = evaluator([slow]);
    signals.latency.set('iris', { p99Ms: 300, requests: 100 });
    run(e, range(0, 30));
    const events = run(e, range(31, 100), (s) => signals.latency.set('iris', { p99Ms: s === 50 ? 240 : 200, requests: 100 }));
    expect(events.map(({ at }) => at)).toEqual([81]);
  });

  it('keeps the same fingerprint from firing to resolved, and another one for other labels', () => {
    const { e, signals } = evaluator([{ ...slow, for: '0s' }]);
    signals.keys = [iris, resnet];
    signals.latency.set('iris', { p99Ms: 300, requests: 100 });
    signals.latency.set('resnet', { p99Ms: 300, requests: 100 });
    const fired = e.evaluate(T0);
    signals.latency.set('iris', { p99Ms: 100, requests: 100 });
    const [resolved] = e.evaluate(T0 + 1000);
    expect(fired.map((a) => a.model)).toEqual(['iris', 'resnet']);
    expect(resolved.fingerprint).toBe(fired[0].fingerprint);
    expect(fired[1].fingerprint).not.toBe(fired[0].fingerprint);
    expect(fired[0].fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  it('reads only the model and version a rule selects', () => {
    const { e, signals } = evaluator([{ ...slow, for: '0s', model: 'resnet', version: 3 }]);
    signals.keys = [iris, resnet, { model: 'resnet', version: '4' }];
    for (const model of ['iris', 'resnet']) signals.latency.set(model, { p99Ms: 300, requests: 100 });
    expect(e.evaluate(T0).map((a) => `${a.model}:${a.version}`)).toEqual(['resnet:3']);
  });

  it('reads nothing from a window with fewer requests than min_requests', () => {
    const { e, signals } = evaluator([{ ...slow, for: '0s', min_requests: 10 }]);
    signals.latency.set('iris', { p99Ms: 900, requests: 9 });
    expect(e.evaluate(T0)).toEqual([]);
  });

  it('resolves a firing alert after resolve_for without requests (a model nobody calls any more)', () => {
    const { e, signals } = evaluator([slow]);
    signals.latency.set('iris', { p99Ms: 300, requests: 100 });
    run(e, range(0, 30));
    signals.latency.set('iris', { requests: 0 });
    const events = run(e, range(31, 70));
    expect(events.map(({ at, event }) => [at, event.state, event.value, event.summary])).toEqual([[61, 'resolved', 300, 'p99 latency of iris 1 over 1m: no data for 30s']]);
  });

  it('fills a summary template', () => {
    const { e, signals } = evaluator([{ ...slow, for: '0s', summary: '{{rule}}: {{model}}/{{version}} at {{value}} (limit {{ threshold }})' }]);
    signals.latency.set('iris', { p99Ms: 312.4, requests: 100 });
    expect(e.evaluate(T0)[0].summary).toBe('slow: iris/1 at 312 ms (limit 250 ms)');
  });
});

describe('error_rate', () => {
  const errors = { name: 'errors', kind: 'error_rate', threshold: 0.05, window: '5m', min_requests: 20, for: '10s' };

  it('does not fire on one failed request out of one', () => {
    const { e, signals } = evaluator([{ ...errors, for: '0s' }]);
    signals.errors.set('iris', { rate: 1, requests: 1 });
    expect(run(e, range(0, 60))).toEqual([]);
  });

  it('fires after `for` once the window holds min_requests, and resolves under the band', () => {
    const { e, signals } = evaluator([errors]);
    signals.errors.set('iris', { rate: 0.2, requests: 100 });
    const fired = run(e, range(0, 15));
    expect(fired.map(({ at, event }) => [at, event.state, event.summary])).toEqual([[10, 'firing', 'error rate of iris 1 over 5m is 20.0 %, above 5.0 % for 10s']]);
    signals.errors.set('iris', { rate: 0.046, requests: 100 }); // under the threshold, above the 4.5 % band
    expect(run(e, range(16, 60))).toEqual([]);
    signals.errors.set('iris', { rate: 0.01, requests: 100 });
    expect(run(e, range(61, 80)).map(({ at, event }) => [at, event.state])).toEqual([[71, 'resolved']]);
  });
});

describe('drift', () => {
  const drift = { name: 'drift', kind: 'drift', threshold: 0.25, for: '1m', resolve_for: '2m' };
  const reading = (psi: Record<string, number>, enoughInputs = true): DriftSignal => ({ enoughInputs, features: Object.entries(psi).map(([feature, value]) => ({ feature, psi: value })) });

  it('fires per drifting feature after `for`, naming the feature', () => {
    const { e, signals } = evaluator([drift]);
    signals.drifts.set('iris', reading({ sepal_length: 0.4, petal_width: 0.05 }));
    const events = run(e, range(0, 70));
    expect(events.map(({ at, event }) => [at, event.feature, event.value])).toEqual([[60, 'sepal_length', 0.4]]);
    expect(events[0].event.summary).toBe('PSI of sepal_length of iris 1 is 0.40, above 0.25 for 1m');
  });

  it('does not read a window short of inputs, however large its PSI', () => {
    const { e, signals } = evaluator([{ ...drift, for: '0s' }]);
    signals.drifts.set('iris', reading({ sepal_length: 5 }, false));
    expect(run(e, range(0, 10))).toEqual([]);
  });

  it('resolves once the feature has been under the band for resolve_for, not when it merely dips under the threshold', () => {
    const { e, signals } = evaluator([drift]);
    signals.drifts.set('iris', reading({ sepal_length: 0.4 }));
    run(e, range(0, 60));
    signals.drifts.set('iris', reading({ sepal_length: 0.24 }));
    expect(run(e, range(61, 300))).toEqual([]);
    signals.drifts.set('iris', reading({ sepal_length: 0.1 }));
    expect(run(e, range(301, 500)).map(({ at, event }) => [at, event.state, event.feature])).toEqual([[421, 'resolved', 'sepal_length']]);
  });
});

describe('accuracy', () => {
  const accuracy = { name: 'accuracy', kind: 'accuracy', threshold: 0.9, last: 100, for: '0s', resolve_for: '10s' };

  it('waits until `last` predictions are labelled', () => {
    const { e, signals } = evaluator([accuracy]);
    signals.accuracies.set('iris', { accuracy: 0.5, labelled: 99 });
    expect(e.evaluate(T0)).toEqual([]);
    signals.accuracies.set('iris', { accuracy: 0.5, labelled: 100 });
    expect(e.evaluate(T0 + 1000).map((a) => [a.state, a.value, a.summary])).toEqual([['firing', 0.5, 'accuracy of iris 1 over the last 100 labelled is 50.0 %, below 90.0 % for 0s']]);
  });

  it('resolves at or above the band (a tenth of the allowed error back), not just above the threshold', () => {
    const { e, signals } = evaluator([accuracy]);
    signals.accuracies.set('iris', { accuracy: 0.8, labelled: 100 });
    e.evaluate(T0);
    signals.accuracies.set('iris', { accuracy: 0.905, labelled: 100 });
    expect(run(e, range(1, 30))).toEqual([]);
    signals.accuracies.set('iris', { accuracy: 0.95, labelled: 100 });
    expect(run(e, range(31, 50)).map(({ at, event }) => [at, event.state])).toEqual([[41, 'resolved']]);
  });
});

describe('no_worker', () => {
  const nobody = { name: 'nobody', kind: 'no_worker', for: '30s', severity: 'critical' };

  it('fires once no worker has served a watched model for `for`, and resolves when one does', () => {
    const { e, signals } = evaluator([nobody]);
    signals.watchedModels = ['iris', 'resnet'];
    signals.workers.set('iris', 0);
    const fired = run(e, range(0, 40));
    expect(fired.map(({ at, event }) => [at, event.model, event.version, event.severity, event.summary])).toEqual([[30, 'iris', '', 'critical', 'no worker serves iris (for 30s)']]);
    signals.workers.set('iris', 2);
    const resolved = run(e, range(41, 80));
    expect(resolved.map(({ at, event }) => [at, event.state, event.value, event.summary])).toEqual([[71, 'resolved', 2, 'iris is served by 2 workers again']]);
  });

  it('watches the model a rule names even when no worker ever served it', () => {
    const { e, signals } = evaluator([{ ...nobody, model: 'bert', for: '0s' }]);
    signals.watchedModels = [];
    signals.workers.set('bert', 0);
    expect(e.evaluate(T0).map((a) => a.model)).toEqual(['bert']);
  });

  it('does not fire when nothing counts workers', () => {
    const { e, signals } = evaluator([{ ...nobody, for: '0s' }]);
    signals.workers.set('iris', undefined);
    expect(e.evaluate(T0)).toEqual([]);
  });
});

describe('bounds and failures', () => {
  it('holds at most maxInstances alerts, counts the ones not started, and says so once', () => {
    const onProblem = vi.fn();
    const { e, signals } = evaluator([{ name: 'drift', kind: 'drift', threshold: 0.1, for: '1m' }], new FakeSignals(), { maxInstances: 2, onProblem });
    signals.drifts.set('iris', { enoughInputs: true, features: ['a', 'b', 'c', 'd'].map((feature) => ({ feature, psi: 1 })) });
    e.evaluate(T0);
    e.evaluate(T0 + 1000);
    expect(e.size).toBe(2);
    expect(e.droppedInstances).toBe(4);
    expect(onProblem).toHaveBeenCalledTimes(1);
    expect(onProblem).toHaveBeenCalledWith({ kind: 'instances_full', maxInstances: 2 });
  });

  it('keeps the alerts of a rule whose signals throw, and says so once until they answer', () => {
    const onProblem = vi.fn();
    const { e, signals } = evaluator([{ ...slow, for: '0s', resolve_for: '0s' }], new FakeSignals(), { onProblem });
    signals.latency.set('iris', { p99Ms: 300, requests: 100 });
    e.evaluate(T0);
    const broken = vi.spyOn(signals, 'p99LatencyMs').mockImplementation(() => {
      throw new Error('tracker broke');
    });
    expect([...e.evaluate(T0 + 1000), ...e.evaluate(T0 + 2000)]).toEqual([]);
    expect(e.size).toBe(1);
    broken.mockRestore();
    signals.latency.set('iris', { p99Ms: 100, requests: 100 });
    expect(e.evaluate(T0 + 3000).map((a) => a.state)).toEqual(['resolved']);
    expect(onProblem.mock.calls.map(([p]) => p.kind)).toEqual(['rule_failed', 'rule_recovered']);
  });
});

describe('shadow_agreement rules', () => {
  const shadowing = (compared: number, agreed: number) => Object.assign(new FakeSignals(), { shadowAgreements: () => [{ model: 'iris', version: '2', compared, agreed }] });

  it('fires when a shadow version agrees with the serving version less often than the threshold, with the ratio as value', () => {
    const { e } = evaluator([{ name: 'agree', kind: 'shadow_agreement', model: 'iris', threshold: 0.9, min_compared: 10 }], shadowing(30, 10));
    const [event] = e.evaluate(T0);
    expect(event).toMatchObject({ rule: 'agree', state: 'firing', model: 'iris', version: '2', value: 1 / 3, threshold: 0.9 });
    expect(event.summary).toBe('agreement of shadow iris 2 with the serving version (at least 10 compared) is 33.3 %, below 90.0 % for 0s');
  });

  it('says nothing before min_compared copies were compared', () => {
    const { e } = evaluator([{ name: 'agree', kind: 'shadow_agreement', threshold: 0.9, min_compared: 50 }], shadowing(30, 0));
    expect(e.evaluate(T0)).toEqual([]);
  });
});
