/**
 * Bounds on what one HTTP/2 connection may hold on a server: calls open at once, time
 * without any call, and time to say hello. grpc-js has options for the first two; the third
 * (gRPC core's `grpc.server_handshake_timeout_ms`) it lacks, so it is added here.
 */
import type * as http2 from 'node:http2';
import type * as net from 'node:net';
import type * as grpc from '@grpc/grpc-js';

export interface Http2Limits {
  /**
   * Calls (HTTP/2 streams) one connection may have open at once, announced in SETTINGS;
   * a client's further calls wait in its own queue until one ends.
   */
  maxConcurrentStreams: number;
  /** A connection with no call open for this long is closed with GOAWAY (clients reconnect). */
  idleTimeoutMs: number;
  /**
   * A connection must send the HTTP/2 preface and its SETTINGS within this long of opening
   * (of its TLS handshake, under TLS), or it is closed.
   */
  handshakeTimeoutMs: number;
}

/**
 * Go's HTTP/2 server allows 250 streams per connection; 256 is well above what one client
 * needs (the CLI's bench opens 64) and keeps a connection's memory bounded.
 * A connection left idle 5 minutes is cheap to open again; 10 s is ample for a preface
 * even across a WAN (gRPC core allows 120 s, and half-open connections pile up meanwhile).
 */
export const DEFAULT_HTTP2_LIMITS: Http2Limits = { maxConcurrentStreams: 256, idleTimeoutMs: 300_000, handshakeTimeoutMs: 10_000 };

/** The grpc.Server options for the limits grpc-js enforces itself. */
export function http2ServerOptions(limits: Http2Limits): grpc.ServerOptions {
  return {
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc.max_connection_idle_ms': limits.idleTimeoutMs,
  };
}

/** The limits named in a service's config (libs/config commonSettings). */
export function http2LimitsOf(config: { GRPC_MAX_CONCURRENT_STREAMS: number; GRPC_IDLE_TIMEOUT_MS: number; GRPC_HANDSHAKE_TIMEOUT_MS: number }): Http2Limits {
  return {
    maxConcurrentStreams: config.GRPC_MAX_CONCURRENT_STREAMS,
    idleTimeoutMs: config.GRPC_IDLE_TIMEOUT_MS,
    handshakeTimeoutMs: config.GRPC_HANDSHAKE_TIMEOUT_MS,
  };
}

type Http2Server = http2.Http2Server | http2.Http2SecureServer;
type CreatesHttp2Servers = { createHttp2Server?: (...args: unknown[]) => Http2Server };

/**
 * Closes every connection of `server` that has not sent its HTTP/2 SETTINGS within
 * `timeoutMs` of being accepted: the TLS handshake (when there is one), the preface and
 * SETTINGS all count. grpc-js creates its http2 servers inside bindAsync (and connection
 * injectors) and disables their `timeout`, which would also close busy connections; so each
 * server it creates gets a timer per accepted socket, cleared by the client's first SETTINGS
 * frame ('remoteSettings'). The hook is a grpc-js internal: it is checked here and by a test
 * with raw sockets, so an upgrade that moves it fails loudly, not silently.
 */
export function enforceHandshakeTimeout(server: grpc.Server, timeoutMs: number): void {
  const internals = server as unknown as CreatesHttp2Servers;
  const create = internals.createHttp2Server;
  if (typeof create !== 'function') throw new Error('@grpc/grpc-js no longer has Server.createHttp2Server: the HTTP/2 handshake timeout cannot be enforced');
  internals.createHttp2Server = function (this: unknown, ...args: unknown[]) {
    const http2Server = create.apply(this, args);
    closeUngreeted(http2Server, timeoutMs);
    return http2Server;
  };
}

function closeUngreeted(http2Server: Http2Server, timeoutMs: number): void {
  // A session's socket is the TLS socket (or a proxy of the TCP one): the two meet by the
  // client's address and port, which no other open connection to this server shares.
  const waiting = new Map<string, NodeJS.Timeout>();
  const clear = (key: string) => {
    clearTimeout(waiting.get(key));
    waiting.delete(key);
  };
  // Prepended: grpc-js's own listener may end the socket first (TLS credentials not loaded).
  http2Server.prependListener('connection', (socket: net.Socket) => {
    // Connections handed in by a connection injector have no address to meet by; none is used here.
    if (socket.remoteAddress === undefined) return;
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    timer.unref();
    waiting.set(key, timer);
    socket.once('close', () => waiting.get(key) === timer && clear(key));
  });
  http2Server.on('session', (session: http2.ServerHttp2Session) => {
    const key = `${session.socket.remoteAddress}:${session.socket.remotePort}`;
    session.once('remoteSettings', () => clear(key));
  });
}
