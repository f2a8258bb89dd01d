/**
 * The monitor's alerting: evaluates the rules every `intervalMs`, and sends each transition
 * (firing, resolved) everywhere it goes: NATS (`<prefix>.alerts.<severity>`, core pub/sub),
 * the log, the alert book (ListAlerts, the status page, the firing gauge), every WatchAlerts
 * stream, and the webhook when there is one. Nothing it sends to can hold up an evaluation.
 */
import type { Alert, Alert__Output } from '@infermesh/contracts';
import { events, type Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import type { PrometheusText } from '../prometheus-text.js';
import type { AlertEvent } from './alert.js';
import { AlertBook } from './alert-book.js';
import { AlertEvaluator } from './evaluator.js';
import { AlertWatchers, type AlertSink } from './alert-watchers.js';
import type { AlertRule } from './rules.js';
import type { AlertSignals } from './signals.js';
import type { AlertWebhook } from './webhook.js';

/**
 * Alertmanager forgets a firing alert not sent again within its resolve_timeout (5 min by
 * default), as Prometheus sends its firing alerts again every minute: so does the monitor.
 */
export const WEBHOOK_RESEND_MS = 60_000;

export interface AlertingOptions {
  rules: readonly AlertRule[];
  signals: AlertSignals;
  logger: Logger;
  intervalMs: number;
  /** Where transitions are published; none in tests that do not need NATS. */
  bus?: Pick<Bus, 'publish' | 'subjects'>;
  webhook?: Pick<AlertWebhook, 'send' | 'stop' | 'writePrometheus'>;
  now?: () => number;
  maxInstances?: number;
  keptResolved?: number;
  maxWatchBuffered?: number;
}

/** The contract's shape as a client receives it (int64 as decimal strings): what the status page reads. */
export function alertOutput(event: AlertEvent): Alert__Output {
  return { ...event, startedMs: String(event.startedMs), resolvedMs: String(event.resolvedMs), atMs: String(event.atMs) };
}

export class Alerting {
  readonly book: AlertBook;
  readonly watchers: AlertWatchers;
  private readonly evaluator: AlertEvaluator;
  private readonly transitions = new Map<string, { firing: number; resolved: number }>();
  private readonly listeners = new Set<(alert: Alert__Output) => void>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastResendMs = 0;

  constructor(private readonly options: AlertingOptions) {
    const { logger } = options;
    this.now = options.now ?? Date.now;
    this.book = new AlertBook(options.keptResolved);
    this.watchers = new AlertWatchers(options.maxWatchBuffered);
    this.evaluator = new AlertEvaluator(options.rules, options.signals, {
      maxInstances: options.maxInstances,
      onProblem(problem) {
        if (problem.kind === 'instances_full') logger.warn({ max_instances: problem.maxInstances }, 'alerts at their bound; further alerts are not started until some resolve (infermesh_alert_instances_dropped_total)');
        else if (problem.kind === 'rule_failed') logger.error({ err: problem.error, rule: problem.rule }, 'reading an alert rule\'s signals failed; its alerts keep their state');
        else logger.info({ rule: problem.rule }, 'alert rule readable again');
      },
    });
    for (const rule of options.rules) this.transitions.set(rule.name, { firing: 0, resolved: 0 });
  }

  get rules(): readonly AlertRule[] {
    return this.options.rules;
  }

  /** Evaluates every `intervalMs` from now on (nothing to do without rules, nor once stopped). */
  start(): void {
    if (this.timer || this.stopped || this.options.rules.length === 0) return;
    this.timer = setInterval(() => this.evaluate(), this.options.intervalMs);
    this.timer.unref();
  }

  /** One evaluation at `nowMs`; returns its transitions, already sent. */
  evaluate(nowMs: number = this.now()): AlertEvent[] {
    let transitions: AlertEvent[];
    try {
      transitions = this.evaluator.evaluate(nowMs);
    } catch (error) {
      this.options.logger.error({ err: error }, 'alert evaluation failed');
      return [];
    }
    for (const event of transitions) this.dispatch(event);
    const webhook = this.options.webhook;
    if (webhook) {
      const resend = nowMs - this.lastResendMs >= WEBHOOK_RESEND_MS;
      const firingAgain = resend ? this.book.firing().filter((a) => !transitions.includes(a)) : [];
      if (resend) this.lastResendMs = nowMs;
      if (transitions.length > 0 || firingAgain.length > 0) webhook.send([...transitions, ...firingAgain]);
    }
    return transitions;
  }

  /** ListAlerts: firing first, then (when asked) the last resolved; each by start time. */
  list(includeResolved: boolean): Alert[] {
    return this.book.list(includeResolved);
  }

  /** The alerts firing now (the status page's AlertSource). */
  firing(): Alert__Output[] {
    return this.book.firing().map(alertOutput);
  }

  /** Calls `listener` on each transition; returns how to stop. */
  onTransition(listener: (alert: Alert__Output) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Serves one WatchAlerts stream (see AlertWatchers.serve): the alerts firing now first when asked, then each transition. */
  watch(sink: AlertSink, signal: AbortSignal, sendFiring: boolean): Promise<void> {
    return this.watchers.serve(sink, signal, sendFiring ? this.book.firing() : []);
  }

  writePrometheus(out: PrometheusText): void {
    this.book.writePrometheus(out);
    out.family('infermesh_alert_transitions_total', 'counter', 'Alert transitions by rule: firing, resolved.');
    for (const [rule, counts] of [...this.transitions].sort(([a], [b]) => (a < b ? -1 : 1))) {
      out.sample('infermesh_alert_transitions_total', [['alertname', rule], ['state', 'firing']], counts.firing);
      out.sample('infermesh_alert_transitions_total', [['alertname', rule], ['state', 'resolved']], counts.resolved);
    }
    out.family('infermesh_alert_instances_dropped_total', 'counter', 'Alerts not started because the monitor held its bound of pending and firing alerts.');
    out.sample('infermesh_alert_instances_dropped_total', [], this.evaluator.droppedInstances);
    this.options.webhook?.writePrometheus(out);
  }

  /** Stops evaluating, ends every WatchAlerts stream (OK) and stops the webhook. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.watchers.close();
    await this.options.webhook?.stop();
  }

  private dispatch(event: AlertEvent): void {
    const { logger, bus } = this.options;
    const counts = this.transitions.get(event.rule);
    if (counts) counts[event.state] += 1;
    this.book.apply(event);
    const fields = {
      alert: event.rule, kind: event.kind, state: event.state, severity: event.severity, model: event.model, version: event.version,
      feature: event.feature || undefined, value: event.value, threshold: event.threshold, fingerprint: event.fingerprint, started_ms: event.startedMs, summary: event.summary,
    };
    if (event.state === 'firing') logger.warn(fields, 'alert firing');
    else logger.info(fields, 'alert resolved');
    if (bus) {
      try {
        bus.publish(bus.subjects.alert(event.severity), events.alert, event);
      } catch (error) {
        // A closed or draining connection: the transition is still logged, listed and streamed.
        logger.warn({ err: error, alert: event.rule, fingerprint: event.fingerprint }, 'publishing an alert transition on NATS failed');
      }
    }
    this.watchers.send(event);
    const output = alertOutput(event);
    for (const listener of this.listeners) {
      try {
        listener(output);
      } catch (error) {
        logger.error({ err: error }, 'an alert transition listener failed');
      }
    }
  }
}
