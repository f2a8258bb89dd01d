import { describe, expect, it } from 'vitest';
import { streamName, subjects, token } from './index.js';

describe('token', () => {
  it('keeps a plain identifier as it is', () => {
    expect(token('worker-a_1')).toBe('worker-a_1');
  });

  it('replaces the characters NATS forbids inside a token with _', () => {
    expect(token('host.example.com')).toBe('host_example_com');
    expect(token('a*b>c d\te')).toBe('a_b_c_d_e');
  });

  it('turns an empty value into _', () => {
    expect(token('')).toBe('_');
  });
});

describe('subjects', () => {
  const s = subjects('infermesh');

  it('puts every subject under the prefix', () => {
    expect(s.heartbeat('w1')).toBe('infermesh.worker.heartbeat.w1');
    expect(s.prediction('iris')).toBe('infermesh.predictions.iris');
    expect(s.feedback('iris')).toBe('infermesh.feedback.iris');
    expect(s.alert('critical')).toBe('infermesh.alerts.critical');
  });

  it('has the heartbeat, prediction, feedback, alert and control subjects only: others come with the features that read them', () => {
    expect(Object.keys(s).sort()).toEqual(['alert', 'alerts', 'control', 'controls', 'feedback', 'feedbacks', 'heartbeat', 'heartbeats', 'prediction', 'predictions']);
  });

  it("addresses a worker's repository control to that worker alone", () => {
    expect(s.control('host.a')).toBe('infermesh.control.host_a');
    expect(s.controls).toBe('infermesh.control.>');
  });

  it('has wildcards that match the single subjects', () => {
    expect(s.heartbeats).toBe('infermesh.worker.heartbeat.*');
    expect(s.predictions).toBe('infermesh.predictions.>');
    expect(s.feedbacks).toBe('infermesh.feedback.>');
    expect(s.alerts).toBe('infermesh.alerts.>');
  });

  it('keeps a model or worker name with dots to one token', () => {
    expect(s.prediction('resnet.v2')).toBe('infermesh.predictions.resnet_v2');
    expect(s.heartbeat('10.0.0.5:8001')).toBe('infermesh.worker.heartbeat.10_0_0_5:8001');
  });

  it('uses a prefix with several tokens as it is', () => {
    expect(subjects('staging.eu').heartbeats).toBe('staging.eu.worker.heartbeat.*');
  });
});

describe('streamName', () => {
  it('is the bare kind for the default prefix', () => {
    expect(streamName('infermesh', 'PREDICTIONS')).toBe('PREDICTIONS');
  });

  it('is the upper-cased prefix, with other characters as _, before the kind for any other prefix', () => {
    expect(streamName('staging', 'PREDICTIONS')).toBe('STAGING_PREDICTIONS');
    expect(streamName('staging.eu-1', 'PREDICTIONS')).toBe('STAGING_EU_1_PREDICTIONS');
  });
});
