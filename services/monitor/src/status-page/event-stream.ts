/**
 * The status page's Server-Sent Events clients: at most `maxClients` at once (the next is
 * refused), each sent the same encoded event. A client that reads slower than events come
 * (more than `maxBufferedBytes` waiting in its socket) is closed rather than buffered
 * without end; its browser reconnects and starts from a fresh event.
 */
import type { ServerResponse } from 'node:http';

export interface EventStreamOptions {
  maxClients: number;
  maxBufferedBytes: number;
  /** What a browser waits before reconnecting, in ms. */
  retryMs: number;
}

export class EventStream {
  private readonly clients = new Set<ServerResponse>();

  constructor(private readonly options: EventStreamOptions) {}

  get size(): number {
    return this.clients.size;
  }

  /** Takes `res` as a client (writes the stream's headers), or answers 503 when full; returns whether it was taken. */
  accept(res: ServerResponse, first?: { event: string; data: string }): boolean {
    if (this.clients.size >= this.options.maxClients) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
      res.end(`the status page serves at most ${this.options.maxClients} live clients; try again later\n`);
      return false;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A reverse proxy in front (nginx) would otherwise hold events back.
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${this.options.retryMs}\n\n`);
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    if (first) this.send(res, encode(first.event, first.data));
    return true;
  }

  /** Sends one event to every client; the data is encoded once, whatever the number of clients. */
  broadcast(event: string, data: string): void {
    if (this.clients.size === 0) return;
    const encoded = encode(event, data);
    for (const res of this.clients) this.send(res, encoded);
  }

  /** Ends every client's stream. */
  close(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private send(res: ServerResponse, encoded: string): void {
    if (res.writableLength > this.options.maxBufferedBytes) {
      this.clients.delete(res);
      res.destroy();
      return;
    }
    res.write(encoded);
  }
}

/** One SSE event; `data` is JSON (no line breaks) but any line break is kept apart all the same. */
function encode(event: string, data: string): string {
  return `event: ${event}\n${data.split(/\r\n|\r|\n/).map((line) => `data: ${line}`).join('\n')}\n\n`;
}
