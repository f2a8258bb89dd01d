/**
 * Alert transitions POSTed to a webhook (MONITOR_ALERT_WEBHOOK_URL) in the shape of
 * Alertmanager's v2 API (`POST /api/v2/alerts`: a JSON array of alerts with labels,
 * annotations, startsAt, endsAt for a resolved one, generatorURL), so the URL may be an
 * Alertmanager's, or any receiver that reads that shape.
 *
 * Evaluation never waits for it: transitions join a bounded queue, one POST at a time takes
 * up to `maxBatch` of them, with a timeout, retried with backoff on a network error, a
 * timeout, a 5xx or a 429. An alert that cannot join the queue, or that every try failed to
 * deliver, is logged and counted (infermesh_alert_webhook_failures_total).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@infermesh/log';
import type { AlertEvent } from './alert.js';
import type { PrometheusText } from '../prometheus-text.js';

/** One alert of Alertmanager's v2 API (PostableAlert). */
export interface AlertmanagerAlert {
  labels: Record<string, string>;
  annotations: { summary: string };
  startsAt: string;
  endsAt?: string;
  generatorURL: string;
}

export interface AlertWebhookOptions {
  url: string;
  /** Where a person reads more about the alert (the monitor's status page). */
  generatorUrl: string;
  logger: Logger;
  timeoutMs?: number;
  /** Tries after the first. */
  retries?: number;
  /** The wait before the first retry, doubled before each next one. */
  backoffMs?: number;
  /** Alerts waiting at most; more are dropped (counted). */
  maxQueued?: number;
  /** Alerts in one POST at most. */
  maxBatch?: number;
}

export type WebhookFailure = 'queue_full' | 'undelivered';

/** Labels with empty values are left out: Alertmanager reads an empty label as an absent one. */
export function alertmanagerAlert(alert: AlertEvent, generatorUrl: string): AlertmanagerAlert {
  const labels: Record<string, string> = { alertname: alert.rule, severity: alert.severity, model: alert.model };
  if (alert.version) labels.version = alert.version;
  if (alert.feature) labels.feature = alert.feature;
  return {
    labels,
    annotations: { summary: alert.summary },
    startsAt: new Date(alert.startedMs).toISOString(),
    ...(alert.state === 'resolved' ? { endsAt: new Date(alert.resolvedMs).toISOString() } : {}),
    generatorURL: generatorUrl,
  };
}

class RetryableError extends Error {
  override readonly name = 'RetryableError';
}

export class AlertWebhook {
  private readonly queue: AlertEvent[] = [];
  private readonly failures: Record<WebhookFailure, number> = { queue_full: 0, undelivered: 0 };
  private readonly stopping = new AbortController();
  private sending: Promise<void> | undefined;
  private dropping = false;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxQueued: number;
  private readonly maxBatch: number;

  constructor(private readonly options: AlertWebhookOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 500;
    this.maxQueued = options.maxQueued ?? 1000;
    this.maxBatch = options.maxBatch ?? 64;
  }

  /** Queues alerts for the webhook; returns at once. */
  send(alerts: readonly AlertEvent[]): void {
    if (this.stopping.signal.aborted) return;
    for (const alert of alerts) {
      if (this.queue.length >= this.maxQueued) {
        this.failures.queue_full += 1;
        // Once per overflow, not once per alert: a webhook down for an hour must not flood the log.
        if (!this.dropping) this.options.logger.warn({ max_queued: this.maxQueued }, 'alert webhook queue full; dropping alerts until it drains');
        this.dropping = true;
        continue;
      }
      this.queue.push(alert);
    }
    this.kick();
  }

  private kick(): void {
    if (this.sending || this.queue.length === 0 || this.stopping.signal.aborted) return;
    this.sending = this.drain().finally(() => {
      this.sending = undefined;
      this.kick();
    });
  }

  /** Resolves once the alerts queued so far are delivered or given up on. */
  async idle(): Promise<void> {
    while (this.sending) await this.sending;
  }

  /** Stops sending: the POST in progress is aborted, the alerts waiting are dropped. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.queue.length = 0;
    await this.idle();
  }

  failureCounts(): Readonly<Record<WebhookFailure, number>> {
    return { ...this.failures };
  }

  writePrometheus(out: PrometheusText): void {
    out.family('infermesh_alert_webhook_failures_total', 'counter', 'Alert transitions not delivered to the webhook: queue_full (dropped before sending), undelivered (every try failed).');
    for (const [reason, n] of Object.entries(this.failures)) out.sample('infermesh_alert_webhook_failures_total', [['reason', reason]], n);
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stopping.signal.aborted) {
      const batch = this.queue.splice(0, this.maxBatch);
      if (this.queue.length < this.maxQueued) this.dropping = false;
      await this.deliver(batch);
    }
  }

  private async deliver(batch: AlertEvent[]): Promise<void> {
    const body = JSON.stringify(batch.map((alert) => alertmanagerAlert(alert, this.options.generatorUrl)));
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        try {
          await sleep(this.backoffMs * 2 ** (attempt - 1), undefined, { signal: this.stopping.signal });
        } catch {
          break;
        }
      }
      try {
        await this.post(body);
        return;
      } catch (error) {
        lastError = error;
        if (!(error instanceof RetryableError) || this.stopping.signal.aborted) break;
        this.options.logger.debug({ err: error, attempt: attempt + 1 }, 'alert webhook POST failed; retrying');
      }
    }
    this.failures.undelivered += batch.length;
    this.options.logger.warn(
      { err: lastError, alerts: batch.length, fingerprints: batch.slice(0, 10).map((a) => a.fingerprint) },
      this.stopping.signal.aborted ? 'alert webhook stopped before delivering alerts' : 'alert webhook did not take alerts; given up',
    );
  }

  private async post(body: string): Promise<void> {
    let response: Response;
    try {
      response = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stopping.signal]),
        redirect: 'error',
      });
    } catch (error) {
      // A network error or the timeout: the receiver may be back in a moment.
      throw new RetryableError(`POST failed: ${(error as Error).message}`, { cause: error });
    }
    // The answer's body says nothing the monitor acts on (and may be of any size): not read.
    await response.body?.cancel().catch(() => undefined);
    if (response.ok) return;
    const message = `the webhook answered ${response.status}`;
    if (response.status >= 500 || response.status === 429) throw new RetryableError(message);
    throw new Error(message);
  }
}
