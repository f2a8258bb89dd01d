import { describe, expect, it } from 'vitest';
import { meshTlsFromConfig, TlsConfigError } from '@infermesh/grpc';
import { workerConfig } from './config.js';

describe('worker settings', () => {
  it('binds loopback unless WORKER_HOST says otherwise: an internal port is never open by accident', () => {
    expect(workerConfig({}).WORKER_HOST).toBe('127.0.0.1');
    expect(workerConfig({ WORKER_HOST: '0.0.0.0' }).WORKER_HOST).toBe('0.0.0.0');
  });

  it('runs plaintext without mesh TLS files, and refuses some without the others', () => {
    expect(meshTlsFromConfig(workerConfig({}))).toBeUndefined();
    expect(() => meshTlsFromConfig(workerConfig({ MESH_TLS_CERT_FILE: '/etc/infermesh/tls.crt' }))).toThrow(TlsConfigError);
  });
});
