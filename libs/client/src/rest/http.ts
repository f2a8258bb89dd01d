/**
 * HTTP exchanges for the REST client. Node's global fetch serves plain http:// and https://
 * with the system's CAs; it takes no custom CA or client certificate without importing
 * undici, so https:// with `tls` options goes through node:https instead (same contract,
 * no extra dependency). Both read at most `maxBytes` of a response.
 */
import * as https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { InferenceError } from '../errors.js';
import type { TlsOptions } from '../types.js';

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
  signal: AbortSignal;
}

export interface HttpResponse {
  status: number;
  header(name: string): string | undefined;
  body: Buffer;
}

export interface HttpExchange {
  send(request: HttpRequest): Promise<HttpResponse>;
  close(): void;
}

function tooLarge(bytes: number | string, maxBytes: number): InferenceError {
  return new InferenceError('RESOURCE_EXHAUSTED', `the server's answer is ${bytes} bytes, over the client's limit of ${maxBytes} (maxMessageBytes)`);
}

export function fetchExchange(maxBytes: number): HttpExchange {
  return {
    async send(request) {
      const response = await fetch(request.url, {
        method: request.method,
        headers: request.headers,
        body: request.body,
        signal: request.signal,
      });
      const declared = Number(response.headers.get('content-length') ?? 0);
      if (declared > maxBytes) {
        await response.body?.cancel();
        throw tooLarge(declared, maxBytes);
      }
      const chunks: Uint8Array[] = [];
      let total = 0;
      if (response.body) {
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          total += value.byteLength;
          if (total > maxBytes) {
            await reader.cancel();
            throw tooLarge(`over ${maxBytes}`, maxBytes);
          }
          chunks.push(value);
        }
      }
      return { status: response.status, header: (name) => response.headers.get(name) ?? undefined, body: Buffer.concat(chunks, total) };
    },
    close() {},
  };
}

export function nodeHttpsExchange(tls: TlsOptions, maxBytes: number): HttpExchange {
  const agent = new https.Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.serverName });
  return {
    send(request) {
      return new Promise<HttpResponse>((resolve, reject) => {
        const req = https.request(request.url, { method: request.method, headers: request.headers, agent, signal: request.signal }, (res: IncomingMessage) => {
          const declared = Number(res.headers['content-length'] ?? 0);
          if (declared > maxBytes) {
            res.destroy();
            reject(tooLarge(declared, maxBytes));
            return;
          }
          const chunks: Buffer[] = [];
          let total = 0;
          res.on('data', (chunk: Buffer) => {
            total += chunk.length;
            if (total > maxBytes) {
              res.destroy();
              reject(tooLarge(`over ${maxBytes}`, maxBytes));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            const header = (name: string) => {
              const value = res.headers[name.toLowerCase()];
              return Array.isArray(value) ? value.join(', ') : value;
            };
            resolve({ status: res.statusCode ?? 0, header, body: Buffer.concat(chunks, total) });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(request.body);
      });
    },
    close() {
      agent.destroy();
    },
  };
}
