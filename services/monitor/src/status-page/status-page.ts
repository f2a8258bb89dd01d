/**
 * The monitor's live status page, on its plain HTTP port beside /metrics: `/` and
 * `/status` (the page: static HTML, a small script and a stylesheet shipped in the package,
 * nothing fetched from elsewhere), `/status/data` (the JSON it draws), `/status/events`
 * (the same JSON as Server-Sent Events every `updateMs`, and at once on an alert transition).
 *
 * Drift and accuracy are sampled every `sampleMs` into bounded histories of the page's own,
 * whether or not anyone watches, so a page opened now shows the last 15 minutes.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@infermesh/log';
import { EventStream } from './event-stream.js';
import { ReadingHistory } from './reading-history.js';
import { MAX_PAGE_SERIES, PAGE_WINDOW_MS, accuracySample, buildStatusData, driftSample, type AccuracySample, type DriftSample, type StatusData } from './status-data.js';
import type { StatusSources } from './sources.js';

export interface StatusPageOptions {
  sources: StatusSources;
  logger: Logger;
  /** How often live clients get the page's data. */
  updateMs?: number;
  /** How often drift and accuracy are sampled for their charts. */
  sampleMs?: number;
  /** Live (SSE) clients at once; more are answered 503. */
  maxClients?: number;
  /** The timeline's step, when it has one (else taken from its points). */
  timelineStepMs?: number;
  now?: () => number;
}

export interface StatusPage {
  /** Answers a request for one of the page's paths; false (nothing written) for any other. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
  /** Starts sampling and live updates. */
  start(): void;
  /** Stops them and ends every live client's stream. */
  stop(): void;
  /** The data the page shows now. */
  data(): StatusData;
}

interface Asset {
  body: Buffer;
  contentType: string;
}

const STATIC = new URL('./static/', import.meta.url);
const ASSETS: Record<string, { file: string; contentType: string }> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/status': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/status/status.js': { file: 'status.js', contentType: 'text/javascript; charset=utf-8' },
  '/status/status.css': { file: 'status.css', contentType: 'text/css; charset=utf-8' },
};
/**
 * The page runs only its own script and style, talks only to this server, and cannot be
 * framed: a model name that slipped past the page's escaping still could not run or send anything.
 */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};
/** Two updates' worth of a large page may wait in a client's socket; a client further behind is dropped. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** /status/data asked for often (many tabs, a script) is answered from the last encoding this long. */
const DATA_REUSE_MS = 1000;

function loadAssets(): Map<string, Asset> {
  const loaded = new Map<string, Asset>();
  for (const [path, { file, contentType }] of Object.entries(ASSETS)) {
    const url = new URL(file, STATIC);
    try {
      loaded.set(path, { body: readFileSync(url), contentType });
    } catch (error) {
      throw new Error(`the status page's ${file} is missing at ${url.pathname} (the monitor's build copies src/status-page/static into dist)`, { cause: error });
    }
  }
  return loaded;
}

export function createStatusPage(options: StatusPageOptions): StatusPage {
  const { sources, logger } = options;
  const now = options.now ?? Date.now;
  const updateMs = options.updateMs ?? 2000;
  const sampleMs = options.sampleMs ?? 5000;
  const assets = loadAssets();
  const capacity = Math.ceil(PAGE_WINDOW_MS / sampleMs) + 1;
  // More versions than the page shows are sampled: which are shown depends on the names of all of them.
  const historyOptions = { capacity, maxSeries: MAX_PAGE_SERIES * 4, maxAgeMs: PAGE_WINDOW_MS };
  const history = { drift: new ReadingHistory<DriftSample>(historyOptions), accuracy: new ReadingHistory<AccuracySample>(historyOptions) };
  const stream = new EventStream({ maxClients: options.maxClients ?? 100, maxBufferedBytes: MAX_BUFFERED_BYTES, retryMs: updateMs });
  let encoded: { atMs: number; json: string } | undefined;
  let timers: NodeJS.Timeout[] = [];
  let stopListening: (() => void) | undefined;
  let pushScheduled = false;

  const data = () => buildStatusData(sources, history, now(), options.timelineStepMs);
  const json = (fresh = false) => {
    const at = now();
    if (fresh || !encoded || at - encoded.atMs >= DATA_REUSE_MS || at < encoded.atMs) encoded = { atMs: at, json: JSON.stringify(data()) };
    return encoded.json;
  };
  const push = () => {
    if (stream.size === 0) return;
    try {
      stream.broadcast('status', json(true));
    } catch (error) {
      logger.error({ err: error }, 'building the status page data failed');
    }
  };
  const sample = () => {
    const at = now();
    try {
      for (const reading of sources.drift?.readings() ?? []) history.drift.add(reading, driftSample(reading, at));
      for (const reading of sources.accuracy?.readings() ?? []) if (reading.version !== '') history.accuracy.add(reading, accuracySample(reading, at));
      history.drift.forgetOld(at);
      history.accuracy.forgetOld(at);
    } catch (error) {
      logger.error({ err: error }, 'sampling drift and accuracy for the status page failed');
    }
  };

  return {
    data,
    handle(req, res, path) {
      if (req.method !== 'GET') return false;
      const asset = assets.get(path);
      if (asset) {
        res.writeHead(200, { 'content-type': asset.contentType, 'content-length': asset.body.length, ...PAGE_HEADERS });
        res.end(asset.body);
        return true;
      }
      if (path === '/status/') {
        // The page's links are relative to /status; relative here too, so a proxy's path prefix is kept.
        res.writeHead(301, { location: '../status' });
        res.end();
        return true;
      }
      if (path === '/status/data') {
        const body = json();
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
        res.end(body);
        return true;
      }
      if (path === '/status/events') {
        stream.accept(res, { event: 'status', data: json() });
        return true;
      }
      return false;
    },
    start() {
      if (timers.length > 0) return;
      sample();
      timers = [setInterval(sample, sampleMs), setInterval(push, updateMs)];
      for (const timer of timers) timer.unref();
      // Several transitions at once (one evaluation firing many alerts) make one update.
      stopListening = sources.alerts?.onTransition(() => {
        if (pushScheduled) return;
        pushScheduled = true;
        setImmediate(() => {
          pushScheduled = false;
          push();
        });
      });
    },
    stop() {
      for (const timer of timers) clearInterval(timer);
      timers = [];
      stopListening?.();
      stopListening = undefined;
      stream.close();
    },
  };
}
