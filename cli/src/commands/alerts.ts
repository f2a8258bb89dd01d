/**
 * infermesh alerts: the monitor's alerts firing now as a table (--all: and the last
 * resolved); --follow then prints each transition as one line, reconnecting when the monitor
 * restarts, until Ctrl-C; --json prints JSON lines instead.
 */
import * as grpc from '@grpc/grpc-js';
import type { Alert__Output, ListAlertsResponse__Output, MonitorClient } from '@infermesh/contracts';
import { call, monitorClient } from '../client.js';

export interface AlertsOptions {
  /** The monitor's address. */
  address: string;
  all: boolean;
  follow: boolean;
  json: boolean;
  /** Where lines go (stdout), and notes about the connection (stderr). */
  print?: (line: string) => void;
  note?: (line: string) => void;
  /** Stops following (Ctrl-C). */
  signal?: AbortSignal;
  /** The first wait before reconnecting, doubled up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  client?: (address: string) => MonitorClient;
  now?: () => number;
}

/** A stream that ends for one of these will not work on a retry: the command fails instead. */
const FATAL = new Set([grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED, grpc.status.UNIMPLEMENTED, grpc.status.INVALID_ARGUMENT]);

export async function alerts(options: AlertsOptions): Promise<void> {
  const print = options.print ?? ((line: string) => console.log(line));
  const makeClient = options.client ?? monitorClient;
  const now = options.now ?? Date.now;
  if (!options.follow) {
    const client = makeClient(options.address);
    try {
      const { alerts: list } = await call<{ includeResolved: boolean }, ListAlertsResponse__Output>(client, client.ListAlerts, { includeResolved: options.all });
      for (const line of options.json ? list.map((a) => JSON.stringify(a)) : alertTable(list, now(), options.all)) print(line);
    } finally {
      client.close();
    }
    return;
  }
  await follow({ ...options, print, note: options.note ?? ((line: string) => console.error(line)), client: makeClient, now });
}

/** The table of `alerts` (as ListAlerts orders them), header first; one line saying so when there are none. */
export function alertTable(alerts: readonly Alert__Output[], nowMs: number, withState: boolean): string[] {
  if (alerts.length === 0) return [withState ? 'no alerts firing or resolved recently' : 'no alerts firing'];
  const rows = alerts.map((a) => [
    ...(withState ? [a.state] : []),
    a.severity,
    a.rule,
    a.version ? `${a.model}:${a.version}` : a.model,
    a.feature || '-',
    valueVsThreshold(a),
    a.state === 'resolved' ? `resolved ${ago(nowMs - Number(a.resolvedMs))}` : ago(nowMs - Number(a.startedMs)),
  ]);
  const header = [...(withState ? ['STATE'] : []), 'SEVERITY', 'RULE', 'MODEL', 'FEATURE', 'VALUE', 'SINCE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((cells) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
}

/** One transition as one line: when, what, where, the value, and the alert's summary. */
export function alertLine(a: Alert__Output): string {
  const at = new Date(Number(a.atMs)).toISOString();
  const where = `${a.version ? `${a.model}:${a.version}` : a.model}${a.feature ? ` ${a.feature}` : ''}`;
  return `${at}  ${a.state.toUpperCase()}  ${a.severity}  ${a.rule}  ${where}  ${valueVsThreshold(a)}  ${a.summary}`;
}

/** "312 ms > 250 ms", "12.0 % > 5.0 %", "PSI 0.31 > 0.25", "81.0 % < 90.0 %", "0 workers". */
export function valueVsThreshold(a: Pick<Alert__Output, 'kind' | 'value' | 'threshold'>): string {
  const percent = (x: number) => `${(x * 100).toFixed(1)} %`;
  switch (a.kind) {
    case 'latency_p99':
      return `${a.value.toFixed(a.value < 10 ? 1 : 0)} ms ${a.value > a.threshold ? '>' : '<='} ${a.threshold} ms`;
    case 'error_rate':
      return `${percent(a.value)} ${a.value > a.threshold ? '>' : '<='} ${percent(a.threshold)}`;
    case 'drift':
      return `PSI ${a.value.toFixed(2)} ${a.value > a.threshold ? '>' : '<='} ${a.threshold}`;
    case 'accuracy':
    case 'shadow_agreement':
      return `${percent(a.value)} ${a.value < a.threshold ? '<' : '>='} ${percent(a.threshold)}`;
    case 'no_worker':
      return `${a.value} worker${a.value === 1 ? '' : 's'}`;
    default:
      return `${a.value} vs ${a.threshold}`;
  }
}

/** "42s ago", "3m12s ago", "2h05m ago". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s ago`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m ago`;
}

type Following = Required<Pick<AlertsOptions, 'print' | 'note' | 'client' | 'now'>> & AlertsOptions;

/**
 * The table, then each transition. The stream is opened before the list is read, so no
 * transition falls between them (one may show in both). When the stream ends (the monitor
 * stopped or cannot be reached), it is opened again with send_firing, after a wait that
 * doubles up to maxRetryMs; firing alerts already shown are not shown again.
 */
async function follow(options: Following): Promise<void> {
  const { print, note, signal } = options;
  const format = (a: Alert__Output) => (options.json ? JSON.stringify(a) : alertLine(a));
  /** Alerts shown firing and not yet resolved, by fingerprint: their start time. */
  const shownFiring = new Map<string, string>();
  const seen = {
    /** Whether `a` is news, remembering it: a firing alert already shown (the same start) is not. */
    remember(a: Alert__Output): boolean {
      if (a.state !== 'firing') return shownFiring.delete(a.fingerprint) || true;
      if (shownFiring.get(a.fingerprint) === a.startedMs) return false;
      shownFiring.set(a.fingerprint, a.startedMs);
      return true;
    },
    show(a: Alert__Output): void {
      if (this.remember(a)) print(format(a));
    },
  };
  const firstWaitMs = options.retryMs ?? 1000;
  let waitMs = firstWaitMs;
  let first = true;
  while (!signal?.aborted) {
    const client = options.client(options.address);
    try {
      const ended = await watchOnce(client, first, options, seen, () => {
        waitMs = firstWaitMs;
        first = false;
      });
      if (signal?.aborted) return;
      note(ended.code === grpc.status.OK ? 'infermesh: the monitor closed the stream (stopping?); reconnecting' : `infermesh: ${grpc.status[ended.code]}: ${ended.details}; reconnecting`);
    } finally {
      client.close();
    }
    await sleep(waitMs, signal);
    waitMs = Math.min(waitMs * 2, options.maxRetryMs ?? 10_000);
  }
}

/**
 * One stream, until it ends; resolves how. The first one prints the table before the
 * transitions; a later one asks for the alerts firing (send_firing). `connected` is called
 * once the monitor answered.
 */
function watchOnce(
  client: MonitorClient, first: boolean, options: Following, seen: { remember(a: Alert__Output): boolean; show(a: Alert__Output): void }, connected: () => void,
): Promise<{ code: grpc.status; details: string }> {
  return new Promise((resolve, reject) => {
    const stream = client.WatchAlerts({ sendFiring: !first });
    const early: Alert__Output[] = [];
    let listed = !first;
    let settled = false;
    const settle = (outcome: { code: grpc.status; details: string } | Error) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', cancel);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const cancel = () => stream.cancel();
    options.signal?.addEventListener('abort', cancel, { once: true });
    stream.on('metadata', connected);
    stream.on('data', (alert: Alert__Output) => {
      connected();
      if (listed) seen.show(alert);
      else early.push(alert);
    });
    stream.on('error', (error: grpc.ServiceError) => {
      if (FATAL.has(error.code)) settle(Object.assign(new Error(error.details), { code: error.code, details: error.details }));
      else settle({ code: error.code, details: error.details });
    });
    stream.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) settle({ code: status.code, details: status.details });
    });
    if (first) {
      call<{ includeResolved: boolean }, ListAlertsResponse__Output>(client, client.ListAlerts, { includeResolved: options.all }).then(
        ({ alerts: list }) => {
          connected();
          // The table shows them: a stream opened later with send_firing does not show them again.
          for (const a of list) if (a.state === 'firing') seen.remember(a);
          for (const line of options.json ? list.map((a) => JSON.stringify(a)) : alertTable(list, options.now(), options.all)) options.print(line);
          listed = true;
          for (const alert of early.splice(0)) seen.show(alert);
        },
        (error: grpc.ServiceError) => {
          stream.cancel();
          if (FATAL.has(error.code)) settle(Object.assign(new Error(error.details), { code: error.code, details: error.details }));
          else settle({ code: error.code, details: error.details });
        },
      );
    }
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
