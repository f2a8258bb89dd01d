import { describe, expect, it } from 'vitest';
import { parseAddress } from './address.js';

describe('connect() addresses', () => {
  it.each([
    ['127.0.0.1:8001', false, { protocol: 'grpc', target: '127.0.0.1:8001', tls: false }],
    ['grpc://router:8001', false, { protocol: 'grpc', target: 'router:8001', tls: false }],
    ['grpcs://router:443', false, { protocol: 'grpc', target: 'router:443', tls: true }],
    ['[::1]:8001', true, { protocol: 'grpc', target: '[::1]:8001', tls: true }],
  ])('%s (tls options: %s) is gRPC', (address, tls, expected) => {
    expect(parseAddress(address, tls)).toEqual(expected);
  });

  it('reads http(s) URLs as REST, keeping a path prefix', () => {
    const endpoint = parseAddress('https://models.example.com/serving', false);
    expect(endpoint).toMatchObject({ protocol: 'rest', tls: true });
    expect(endpoint.protocol === 'rest' && endpoint.baseUrl.href).toBe('https://models.example.com/serving/');
  });

  it.each([
    ['', false, /needs an address/],
    ['router', false, /host:port/],
    ['grpc://router:8001/path', false, /nothing after the port/],
    ['ftp://router:21', false, /scheme must be/],
    ['http://router:8000', true, /plaintext http:\/\/ but tls options/],
    ['grpc://router:8001', true, /plaintext grpc:\/\/ but tls options/],
  ])('refuses %j (tls options: %s) with a clear error', (address, tls, message) => {
    expect(() => parseAddress(address, tls)).toThrow(message);
  });
});
