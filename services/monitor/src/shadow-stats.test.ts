/** A shadow's records: counted in the shadow's agreement and latency, never as client requests. */
import { describe, expect, it } from 'vitest';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { MonitorState } from './monitor-state.js';
import { recordsHandler } from './prediction-consumer.js';
import { record as fixture } from './records.fixture.js';
import { createLogger } from '@infermesh/log';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { ReadingHistory } from './status-page/reading-history.js';
import { buildStatusData, type AccuracySample, type DriftSample } from './status-page/status-data.js';

const NOW = 1_700_000_000_000;

function monitorState(): MonitorState {
  const state = new MonitorState({ now: () => NOW });
  state.known.add('iris', '1');
  state.known.add('iris', '2');
  return state;
}

const shadow = (overrides: Partial<PredictionRecord__Output> = {}) =>
  fixture({ version: '2', shadowOfVersion: '1', shadowCompared: true, shadowAgreed: true, timestampMs: String(NOW), ...overrides });

const line = (text: string, prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));

describe('shadow statistics', () => {
  it('counts agreement over the compared copies of a shadow version, per version it shadowed', () => {
    const state = monitorState();
    for (let i = 0; i < 3; i++) state.count(shadow());
    state.count(shadow({ shadowAgreed: false }));
    state.count(shadow({ shadowCompared: false, shadowAgreed: false, statusCode: 13 }));
    expect(state.shadows.readings()).toMatchObject([{ model: 'iris', version: '2', of: '1', requests: 5, errors: 1, compared: 4, agreed: 3, agreementRatio: 0.75 }]);
  });

  it('exposes requests, agreed and the agreement ratio as metrics labelled with model, version and of', () => {
    const state = monitorState();
    state.count(shadow());
    state.count(shadow({ shadowAgreed: false }));
    const text = state.prometheus();
    expect(line(text, 'infermesh_shadow_requests_total{')).toBe('infermesh_shadow_requests_total{model="iris",version="2",of="1"} 2');
    expect(line(text, 'infermesh_shadow_agreed_total{')).toBe('infermesh_shadow_agreed_total{model="iris",version="2",of="1"} 1');
    expect(line(text, 'infermesh_shadow_agreement_ratio{')).toBe('infermesh_shadow_agreement_ratio{model="iris",version="2",of="1"} 0.5');
  });

  it('gives no agreement ratio while nothing could be compared (a model without labels: agreement unknown)', () => {
    const state = monitorState();
    state.count(shadow({ shadowCompared: false, shadowAgreed: false }));
    expect(state.shadows.readings()[0].agreementRatio).toBeUndefined();
    expect(line(state.prometheus(), 'infermesh_shadow_agreement_ratio{')).toBeUndefined();
  });

  it('takes the shadow\'s latency percentiles from its own records', () => {
    const state = monitorState();
    for (const us of [1000, 2000, 3000, 4000, 100_000]) state.count(shadow({ latencyUs: String(us) }));
    expect(state.shadows.readings()[0].latencyMs).toMatchObject({ p50: 3, p99: 100 });
  });

  it('does not count a shadow record as a request of the model or of its client', () => {
    const state = monitorState();
    state.count(fixture({ timestampMs: String(NOW), clientId: 'k1' }));
    state.count(shadow({ clientId: 'k1' }));
    const text = state.prometheus();
    const requests = text.split('\n').filter((l) => l.startsWith('infermesh_requests_total{'));
    expect(requests).toEqual(['infermesh_requests_total{model="iris",version="1",code="OK"} 1']);
    expect(state.models.stats('iris').map((s) => [s.version, s.requestCount])).toEqual([['1', 1]]);
  });

  it('keeps no shadow record for feedback to join: feedback labels the client\'s answer', () => {
    const state = monitorState();
    const kept: PredictionRecord__Output[] = [];
    const handle = recordsHandler(state, createLogger('test', { level: 'silent' }), { keep: (r) => { kept.push(r); return true; } });
    handle({ subject: 'infermesh.predictions.iris', message: { records: [fixture({ requestId: 'r1', timestampMs: String(NOW) }), shadow({ requestId: 'r1' })] }, context: ROOT_CONTEXT, streamSequence: 1 }, false);
    expect(kept.map((r) => r.version)).toEqual(['1']);
  });

  it('puts each shadow on the status page under the version it shadowed', () => {
    const state = monitorState();
    state.count(fixture({ timestampMs: String(NOW) }));
    state.count(shadow({ shadowAgreed: false }));
    const options = { capacity: 10, maxSeries: 10, maxAgeMs: 60_000 };
    const history = { drift: new ReadingHistory<DriftSample>(options), accuracy: new ReadingHistory<AccuracySample>(options) };
    const data = buildStatusData({ counts: state.models, workers: { workers: () => [] }, shadows: state.shadows }, history, NOW);
    expect(data.models.map((m) => [m.version, m.shadows.map((s) => [s.version, s.compared, s.agreed])])).toEqual([['1', [['2', 1, 0]]]]);
  });
});
