/**
 * The router's KServe v2 REST endpoint (HTTP/1.1, node:http or node:https). Each request is
 * bounded from outside (header size and count, body size, time to send headers and body,
 * path segment lengths) before any handler runs, then served by the handler gRPC uses for the
 * same method, with a CallContext built as libs/grpc builds one: the authorization header as
 * metadata, a server span continuing the client's traceparent, an AbortSignal for the client's
 * disconnect and the deadline, the peer's address.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import { REQUEST_LIMITS } from '@infermesh/contracts';
import { Status, atDeadline, failedCall, statusOf, invalidArgument, startServerSpan, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import type { AccessControl } from '../auth/index.js';
import { GRPC_STATUS_HEADER, RestError, httpStatusOf, payloadTooLarge, statusName } from './http-status.js';
import { restRoutes, type Reply, type Route } from './routes.js';
import { MAX_JSON_HEADER_BYTES, type RestLimits } from './infer-request.js';

/** Request line and headers together, at most (Node's default too; set so it is documented). */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Header fields of one request, at most. */
export const MAX_HEADERS = 100;
/** A client gets this long to send its request's headers. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** How often the header and request timeouts are checked. */
const TIMEOUT_CHECK_MS = 1_000;
/** An idle keep-alive connection is closed after this long. */
const KEEP_ALIVE_MS = 5_000;
/** The header a client's deadline comes in, in milliseconds (capped by the router's own timeout). */
export const TIMEOUT_HEADER = 'infermesh-timeout-ms';
/** Headers copied into the call's metadata: keys and trace context, nothing else. */
const METADATA_HEADERS = ['authorization', 'x-api-key', 'traceparent', 'tracestate'];

export interface RestServerOptions {
  handlers: ServiceHandlers;
  access: AccessControl;
  logger: Logger;
  /** The router's version (the OpenAPI document's). */
  version: string;
  /** The largest body (GRPC_MAX_MESSAGE_BYTES). */
  maxBodyBytes: number;
  /** ROUTER_REQUEST_TIMEOUT_MS: the whole request must arrive within it, and no call waits longer. */
  requestTimeoutMs: number;
  /** HTTPS with the router's public certificate; a client CA makes client certificates required. */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
}

export interface RestServer {
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then closes every connection. */
  close(graceMs: number): Promise<void>;
}

/** One request refused before routing: an error answer without a handler. */
class Refusal extends RestError {}

function decodeSegment(segment: string, what: string, most: number): string {
  let value: string;
  try {
    value = decodeURIComponent(segment);
  } catch {
    throw invalidArgument(`the ${what} in the path is not valid percent-encoding`);
  }
  const bytes = Buffer.byteLength(value);
  if (bytes > most) throw invalidArgument(`the ${what} is ${bytes} bytes, over the limit of ${most}`);
  if (!value) throw invalidArgument(`the ${what} is empty`);
  return value;
}

/** The route of a path, with its model name and version; a Refusal when none matches. */
export function matchRoute(routes: { server: Route[]; model: Route[] }, method: string, path: string): { route: Route; name: string; version: string } {
  const segments = path.split('/').slice(1);
  let candidates: Route[] = [];
  let name = '';
  let version = '';
  if (segments[0] === 'v2' && segments[1] === 'models' && segments.length >= 3 && !(segments.length === 3 && segments[2] === 'stats')) {
    name = decodeSegment(segments[2], 'model name', REQUEST_LIMITS.nameBytes);
    let rest = segments.slice(3);
    let prefix = '/v2/models/{name}';
    if (rest[0] === 'versions' && rest.length >= 2) {
      version = decodeSegment(rest[1], 'model version', REQUEST_LIMITS.versionBytes);
      rest = rest.slice(2);
      prefix += '/versions/{version}';
    }
    const tail = rest.length === 0 ? '' : rest.length === 1 ? `/${rest[0]}` : undefined;
    candidates = routes.model.filter((r) => r.template === tail).map((r) => ({ ...r, template: prefix + r.template }));
  } else if (segments[0] === 'v2' && segments[1] === 'repository' && segments[2] === 'models' && segments.length === 5) {
    name = decodeSegment(segments[3], 'model name', REQUEST_LIMITS.nameBytes);
    candidates = routes.server.filter((r) => r.template === `/v2/repository/models/{name}/${segments[4]}`);
  } else {
    candidates = routes.server.filter((r) => r.template === path);
  }
  if (candidates.length === 0) throw new Refusal(Status.NOT_FOUND, `no route ${method} ${path.slice(0, 200)} (KServe v2 REST; the routes are in GET /v2/openapi.json)`, 404);
  const route = candidates.find((r) => r.method === method);
  if (!route) {
    const allowed = candidates.map((r) => r.method).join(', ');
    throw new Refusal(Status.UNIMPLEMENTED, `${candidates[0].template} takes ${allowed}, not ${method.slice(0, 16)}`, 405, { allow: allowed });
  }
  return { route, name, version };
}

/** The client's deadline from TIMEOUT_HEADER, as ms since the epoch; Infinity without one. */
export function deadlineOf(header: string | string[] | undefined, now = Date.now()): number {
  if (header === undefined) return Infinity;
  const text = Array.isArray(header) ? header[0] : header;
  if (!/^\d{1,10}$/.test(text.trim())) throw invalidArgument(`${TIMEOUT_HEADER} must be a whole number of milliseconds, not ${JSON.stringify(text.slice(0, 32))}`);
  return now + Number(text.trim());
}

/** Reads the body up to `most` bytes: 413 at once for a larger Content-Length, or as soon as more arrives. */
export function readBody(req: http.IncomingMessage, most: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  const tooLarge = (size: string) => payloadTooLarge(`the request body is ${size} bytes, over the limit of ${most} (GRPC_MAX_MESSAGE_BYTES)`);
  if (declared !== undefined && Number(declared) > most) return Promise.reject(tooLarge(declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > most) {
        req.off('data', onData);
        req.pause();
        reject(tooLarge(`more than ${most}`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
    // The connection closed before the whole body came (the client went away, or the request timeout cut it).
    req.once('close', () => {
      if (!req.complete) reject(new DOMException('call cancelled: the connection closed before the request body was complete', 'AbortError'));
    });
  });
}

export function createRestServer(options: RestServerOptions): RestServer {
  const { logger, access } = options;
  const limits: RestLimits = { maxBodyBytes: options.maxBodyBytes, maxJsonHeaderBytes: Math.min(MAX_JSON_HEADER_BYTES, options.maxBodyBytes) };
  const routes = restRoutes(options.handlers, limits, options.version);
  const tracer = trace.getTracer('infermesh-router');
  const requestTimeout = options.requestTimeoutMs;
  const serverOptions: http.ServerOptions = {
    maxHeaderSize: MAX_HEADER_BYTES,
    requestTimeout,
    headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeout),
    keepAliveTimeout: KEEP_ALIVE_MS,
    // How often Node checks requestTimeout and headersTimeout (30 s by default: a slow client would get up to 30 s more).
    connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, requestTimeout),
    noDelay: true,
  };
  const server = options.tls
    ? https.createServer({
      ...serverOptions,
      cert: readFileSync(options.tls.certFile),
      key: readFileSync(options.tls.keyFile),
      ...(options.tls.clientCaFile ? { ca: readFileSync(options.tls.clientCaFile), requestCert: true, rejectUnauthorized: true } : {}),
    })
    : http.createServer(serverOptions);
  server.maxHeadersCount = MAX_HEADERS;

  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  let closing = false;

  function send(res: http.ServerResponse, status: number, body: Buffer, headers: Record<string, string>): void {
    if (res.headersSent || res.destroyed || res.socket?.writable === false) return;
    res.writeHead(status, { ...headers, 'content-length': String(body.length), ...(closing ? { connection: 'close' } : {}) });
    res.end(body);
  }

  function metadataOf(req: http.IncomingMessage): grpc.Metadata {
    const metadata = new grpc.Metadata();
    for (const name of METADATA_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') metadata.set(name, value);
    }
    return metadata;
  }

  async function serve(req: http.IncomingMessage, res: http.ServerResponse, started: number): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    let template = path.slice(0, 200);
    let grpcMethod = '';
    try {
      const { route, name, version } = matchRoute(routes, method, path);
      template = route.template;
      grpcMethod = route.grpcMethod;
      const metadata = metadataOf(req);
      await startServerSpan(tracer, `${method} ${route.template}`, { 'http.request.method': method, 'http.route': route.template, 'rpc.method': route.grpcMethod }, metadata, async (span) => {
        const controller = new AbortController();
        let timer: { clear(): void } | undefined;
        const onClose = () => {
          if (!res.writableFinished) controller.abort(new DOMException('call cancelled: the HTTP client disconnected', 'AbortError'));
        };
        res.once('close', onClose);
        try {
          const deadline = deadlineOf(req.headers[TIMEOUT_HEADER]);
          if (Number.isFinite(deadline)) timer = atDeadline(deadline, () => controller.abort(new DOMException('deadline exceeded', 'TimeoutError')));
          const ctx: CallContext = { metadata, signal: controller.signal, deadline, span, peer: `${req.socket.remoteAddress}:${req.socket.remotePort}`, callers: [] };
          // An inference body is read only for a known key (rate and model rules apply in the handler).
          if (route.grpcMethod === 'ModelInfer') access.authorize('ModelInfer', metadata);
          const reply: Reply = await route.serve({ name, version, headers: req.headers, body: () => readBody(req, limits.maxBodyBytes), ctx });
          if ('json' in reply) send(res, reply.status ?? 200, Buffer.from(JSON.stringify(reply.json)), { 'content-type': 'application/json' });
          else send(res, 200, reply.body, reply.headers);
          span.setAttribute('http.response.status_code', 200);
        } catch (error) {
          const status = failedCall(span, error);
          span.setAttribute('http.response.status_code', error instanceof RestError ? error.httpStatus : httpStatusOf(status.code));
          throw error;
        } finally {
          timer?.clear();
          res.off('close', onClose);
          span.end();
        }
      });
    } catch (error) {
      const status = statusOf(error);
      const httpStatus = error instanceof RestError ? error.httpStatus : httpStatusOf(status.code);
      const fields = { method, route: template, grpc_method: grpcMethod || undefined, status: httpStatus, grpc_status: statusName(status.code), message: status.details, peer: req.socket.remoteAddress, ms: Date.now() - started };
      if (status.internal) logger.error({ ...fields, err: error }, 'REST request failed');
      else logger.info(fields, 'REST request refused');
      send(res, httpStatus, Buffer.from(JSON.stringify({ error: status.details })), {
        'content-type': 'application/json',
        [GRPC_STATUS_HEADER]: statusName(status.code),
        ...(error instanceof RestError ? error.headers : {}),
      });
    }
  }

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight++;
    res.once('close', () => {
      if (--inFlight === 0) onIdle?.();
    });
    void serve(req, res, Date.now());
  });
  // A request Node refuses itself (headers over the limit, malformed HTTP): answered and logged here.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: import('node:net').Socket) => {
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    logger.info({ status, code: error.code, peer: socket.remoteAddress }, 'REST request refused');
    // An answer only where none is being written (a keep-alive connection may have answered earlier requests).
    const current = (socket as { _httpMessage?: http.ServerResponse })._httpMessage;
    if (socket.writable && !current?.headersSent) {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else socket.destroy();
  });

  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    close(graceMs) {
      closing = true;
      return new Promise((resolve) => {
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          clearTimeout(grace);
          onIdle = undefined;
          server.closeAllConnections();
          resolve();
        };
        const grace = setTimeout(finish, graceMs);
        server.close(() => finish());
        server.closeIdleConnections();
        if (inFlight === 0) finish();
        else onIdle = finish;
      });
    },
  };
}
