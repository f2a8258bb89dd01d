import { describe, expect, it } from 'vitest';
import { meshTlsFromConfig, TlsConfigError } from '@infermesh/grpc';
import { routerConfig } from './config.js';

describe('router settings', () => {
  it('binds loopback unless ROUTER_HOST says otherwise: an internal port is never open by accident', () => {
    expect(routerConfig({}).ROUTER_HOST).toBe('127.0.0.1');
    expect(routerConfig({ ROUTER_HOST: '0.0.0.0' }).ROUTER_HOST).toBe('0.0.0.0');
  });

  it('runs plaintext without mesh TLS files, and refuses some without the others', () => {
    expect(meshTlsFromConfig(routerConfig({}))).toBeUndefined();
    expect(() => meshTlsFromConfig(routerConfig({ MESH_TLS_CERT_FILE: '/etc/infermesh/tls.crt' }))).toThrow(TlsConfigError);
  });
});
