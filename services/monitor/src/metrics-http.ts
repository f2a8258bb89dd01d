/** The plain HTTP side: Prometheus scrapes /metrics, probes hit /healthz, people open the status page. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@infermesh/log';

export interface MetricsHttpServer {
  readonly server: Server;
  /** Binds; returns the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

/** Answers a request for a path it serves (with `path` parsed from the target); false, writing nothing, for any other. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, path: string) => boolean;

/** `collect` writes the whole exposition text, of type `contentType`; `routes` serve other paths (the status page). */
export function createMetricsHttpServer(collect: () => Promise<string>, contentType: string, logger: Logger, routes: readonly HttpRoute[] = []): MetricsHttpServer {
  const server = createServer((req, res) => {
    const path = pathOf(req.url);
    if (path === undefined) {
      // A request target that is no URL (`GET http://[`) would otherwise throw out of the listener and end the process.
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('bad request target\n');
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      collect().then(
        (text) => {
          res.writeHead(200, { 'content-type': contentType });
          res.end(text);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('collecting metrics failed\n');
        },
      );
    } else if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok\n');
    } else if (!routed(routes, req, res, path, logger)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
    }
  });

  return {
    server,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        // Scrapers keep connections alive; without this close() would wait for them.
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function routed(routes: readonly HttpRoute[], req: IncomingMessage, res: ServerResponse, path: string, logger: Logger): boolean {
  try {
    return routes.some((route) => route(req, res, path));
  } catch (error) {
    logger.error({ err: error, path: path.slice(0, 256) }, 'an HTTP route failed');
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
    res.end();
    return true;
  }
}

function pathOf(url: string | undefined): string | undefined {
  try {
    return new URL(url ?? '/', 'http://monitor').pathname;
  } catch {
    return undefined;
  }
}
