import { describe, expect, it } from 'vitest';
import { meshTlsFromConfig, TlsConfigError } from '@infermesh/grpc';
import { preprocessorConfig } from './config.js';

describe('preprocessor settings', () => {
  it('binds loopback unless PREPROCESSOR_HOST says otherwise: an internal port is never open by accident', () => {
    expect(preprocessorConfig({}).PREPROCESSOR_HOST).toBe('127.0.0.1');
    expect(preprocessorConfig({ PREPROCESSOR_HOST: '0.0.0.0' }).PREPROCESSOR_HOST).toBe('0.0.0.0');
  });

  it('runs plaintext without mesh TLS files, and refuses some without the others', () => {
    expect(meshTlsFromConfig(preprocessorConfig({}))).toBeUndefined();
    expect(() => meshTlsFromConfig(preprocessorConfig({ MESH_TLS_CERT_FILE: '/etc/infermesh/tls.crt' }))).toThrow(TlsConfigError);
  });
});
