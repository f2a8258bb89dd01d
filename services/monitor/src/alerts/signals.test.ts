import { describe, expect, it } from 'vitest';
import { Timeline } from '../timeline.js';
import { monitorAlertSignals, type ServingWorkers } from './signals.js';

const T0 = 1_700_000_000_000;
const HOUR = 3600_000;
const iris = { model: 'iris', version: '1' };

function roster(models: string[][]): ServingWorkers & { served: string[][] } {
  return {
    served: models,
    workers() {
      return this.served.map((names) => ({ models: names.map((name) => ({ name })) }));
    },
    servingWorkers(model: string) {
      return this.served.filter((names) => names.includes(model)).length;
    },
  };
}

describe('monitorAlertSignals', () => {
  it('reads p99 and the error rate over a window of the timeline', () => {
    let now = T0 + 60_000;
    const timeline = new Timeline({ now: () => now });
    for (let i = 0; i < 10; i++) timeline.observe(iris, T0 + 30_000, 100_000, i >= 3, 1);
    const signals = monitorAlertSignals({ timeline, now: () => now });
    expect(signals.errorRate(iris, 60_000)).toEqual({ rate: 0.3, requests: 10 });
    expect(signals.p99LatencyMs(iris, 60_000).p99Ms).toBeCloseTo(100, -1);
    now = T0 + 600_000;
    expect(signals.errorRate(iris, 60_000)).toEqual({ rate: 0, requests: 0 });
    expect(signals.p99LatencyMs(iris, 60_000)).toEqual({ requests: 0 });
  });

  it('leaves `_unknown` out of the series rules read', () => {
    const timeline = new Timeline({ maxSeries: 1, now: () => T0 });
    timeline.observe(iris, T0, 1000, true, 1);
    timeline.observe({ model: 'other', version: '1' }, T0, 1000, true, 1);
    expect(monitorAlertSignals({ timeline }).series()).toEqual([iris]);
  });

  it('watches the models served or called within the last hour for no_worker', () => {
    let now = T0;
    const timeline = new Timeline({ now: () => now });
    timeline.observe({ model: 'called', version: '1' }, T0, 1000, true, 1);
    const workers = roster([['iris', 'resnet']]);
    const signals = monitorAlertSignals({ timeline, workers, now: () => now });
    expect(signals.models()).toEqual(['called', 'iris', 'resnet']);
    workers.served = [['iris']];
    now = T0 + HOUR / 2;
    expect(signals.models()).toEqual(['called', 'iris', 'resnet']);
    expect(signals.servingWorkers('resnet')).toBe(0);
    now = T0 + HOUR + 1;
    expect(signals.models()).toEqual(['iris']);
  });

  it('counts no workers, and watches no model, without a roster', () => {
    const timeline = new Timeline({ now: () => T0 });
    timeline.observe(iris, T0, 1000, true, 1);
    const signals = monitorAlertSignals({ timeline });
    expect([signals.servingWorkers('iris'), signals.models()]).toEqual([undefined, []]);
  });

  it('asks the drift and accuracy trackers for the version', () => {
    const asked: unknown[] = [];
    const signals = monitorAlertSignals({
      timeline: new Timeline(),
      drift: { reading: (model, version) => (asked.push(['drift', model, version]), { enoughInputs: true, features: [{ feature: 'f', psi: 0.3 }] }) },
      accuracy: { recent: (model, version, lastN) => (asked.push(['accuracy', model, version, lastN]), { accuracy: 0.8, labelled: lastN }) },
    });
    expect(signals.drift(iris)?.features).toEqual([{ feature: 'f', psi: 0.3 }]);
    expect(signals.accuracy(iris, 50)).toEqual({ accuracy: 0.8, labelled: 50 });
    expect(asked).toEqual([['drift', 'iris', '1'], ['accuracy', 'iris', '1', 50]]);
  });
});

describe('shadow agreement signals', () => {
  it('sums a shadow version over every version it shadowed', () => {
    const signals = monitorAlertSignals({
      timeline: new Timeline(),
      shadows: { readings: () => [{ model: 'iris', version: '3', compared: 10, agreed: 9 }, { model: 'iris', version: '3', compared: 30, agreed: 11 }] },
    });
    expect(signals.shadowAgreements?.()).toEqual([{ model: 'iris', version: '3', compared: 40, agreed: 20 }]);
  });
});
