import { describe, expect, it } from 'vitest';
import { meshTlsFromConfig, TlsConfigError } from '@infermesh/grpc';
import { monitorConfig } from './config.js';

describe('monitor settings', () => {
  it('binds loopback unless MONITOR_HOST says otherwise: an internal port is never open by accident', () => {
    expect(monitorConfig({}).MONITOR_HOST).toBe('127.0.0.1');
    expect(monitorConfig({ MONITOR_HOST: '0.0.0.0' }).MONITOR_HOST).toBe('0.0.0.0');
  });

  it('runs plaintext without mesh TLS files, and refuses some without the others', () => {
    expect(meshTlsFromConfig(monitorConfig({}))).toBeUndefined();
    expect(() => meshTlsFromConfig(monitorConfig({ MESH_TLS_CERT_FILE: '/etc/infermesh/tls.crt' }))).toThrow(TlsConfigError);
  });

  it('keeps predictions for feedback at most as long as FEEDBACK refuses a second label for them (24 h)', () => {
    expect(monitorConfig({}).MONITOR_FEEDBACK_RETENTION_MS).toBe(24 * 3600 * 1000);
    expect(monitorConfig({ MONITOR_FEEDBACK_RETENTION_MS: '3600000' }).MONITOR_FEEDBACK_RETENTION_MS).toBe(3600 * 1000);
    expect(() => monitorConfig({ MONITOR_FEEDBACK_RETENTION_MS: String(48 * 3600 * 1000) })).toThrow(/MONITOR_FEEDBACK_RETENTION_MS.*labelled twice/s);
  });

  it('keeps the predictions of every model for feedback, or of the models MONITOR_FEEDBACK_MODELS names', () => {
    expect(monitorConfig({}).MONITOR_FEEDBACK_MODELS).toBeUndefined();
    expect(monitorConfig({ MONITOR_FEEDBACK_MODELS: 'iris, text-direction' }).MONITOR_FEEDBACK_MODELS).toEqual(new Set(['iris', 'text-direction']));
    expect(() => monitorConfig({ MONITOR_FEEDBACK_MODELS: ' , ' })).toThrow(/MONITOR_FEEDBACK_MODELS/);
  });
});
