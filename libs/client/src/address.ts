/** Reading the address given to connect(): which protocol, where, and whether TLS. */
import { invalidArgument, quote } from './errors.js';

export type Endpoint =
  | { protocol: 'grpc'; target: string; tls: boolean }
  | { protocol: 'rest'; baseUrl: URL; tls: boolean };

/** 'grpc://host:port' | 'grpcs://host:port' | 'http://host:port[/prefix]' | 'https://...' | 'host:port' (gRPC). */
export function parseAddress(address: string, tlsOption: boolean): Endpoint {
  if (typeof address !== 'string' || address.trim() === '') throw invalidArgument('connect() needs an address such as 127.0.0.1:8001 or http://127.0.0.1:8000');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(address)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(address);
    } catch {
      throw invalidArgument(`address ${quote(address)} is not a valid URL`);
    }
    if (scheme === 'http' && tlsOption) throw invalidArgument(`address ${quote(address)} is plaintext http:// but tls options were given: use https://`);
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    return { protocol: 'rest', baseUrl: url, tls: scheme === 'https' };
  }
  if (scheme !== undefined && scheme !== 'grpc' && scheme !== 'grpcs') {
    throw invalidArgument(`address ${quote(address)}: the scheme must be grpc://, grpcs://, http:// or https://`);
  }
  if (scheme === 'grpc' && tlsOption) throw invalidArgument(`address ${quote(address)} is plaintext grpc:// but tls options were given: use grpcs://`);
  const target = scheme ? address.slice(scheme.length + 3) : address;
  if (!/^(\[[0-9a-f:.]+\]|[^\s/:[\]]+):\d{1,5}$/i.test(target)) {
    throw invalidArgument(`address ${quote(address)}: a gRPC address is host:port (with grpc:// or grpcs:// if you like), nothing after the port`);
  }
  return { protocol: 'grpc', target, tls: scheme === 'grpcs' || tlsOption };
}
