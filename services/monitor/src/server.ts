/** The monitor as a pure factory: tests build one in-process, main.ts runs one. */
import { createGrpcServer, http2LimitsOf, meshServerCredentials, meshTlsFromConfig, type GrpcServer } from '@infermesh/grpc';
import { monitorService } from '@infermesh/contracts';
import { events, snapshotStore, streamPosition, trafficPolicies, type Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import { MonitorState } from './monitor-state.js';
import { monitorHandlers } from './monitor-service.js';
import { startPredictionConsumer, type PredictionConsumer } from './prediction-consumer.js';
import { openKeptPredictions } from './kept-predictions.js';
import { startFeedbackConsumer, type FeedbackConsumer } from './feedback-consumer.js';
import { createMetricsHttpServer } from './metrics-http.js';
import { PrometheusText } from './prometheus-text.js';
import { WorkerRoster } from './workers.js';
import { processMetricsRegistry } from './process-metrics.js';
import { createStatusPage, type StatusPage } from './status-page/status-page.js';
import { TIMELINE_BUCKET_MS } from './timeline.js';
import { loadAlertRules } from './alerts/rules.js';
import { Alerting } from './alerts/alerting.js';
import { monitorAlertSignals } from './alerts/signals.js';
import { AlertWebhook } from './alerts/webhook.js';
import { AutomaticRollback } from './rollback.js';
import type { MonitorConfig } from './config.js';

export interface Monitor {
  readonly grpc: GrpcServer;
  readonly state: MonitorState;
  /** The workers heard from in the last seconds (heartbeats): the status page's roster, the no_worker rule's count. */
  readonly workers: WorkerRoster;
  /**
   * Binds both servers, loads the snapshot and starts reading records; returns the bound
   * ports (useful with port 0). Health says SERVING once the records stored before the
   * start are counted, so a SERVING monitor shows the counts it showed before a restart.
   */
  start(): Promise<{ grpcPort: number; metricsPort: number }>;
  /** Resolves once health says SERVING. */
  readonly caughtUp: Promise<void>;
  /** Health NOT_SERVING, stop reading, save a last snapshot, close both servers. */
  stop(): Promise<void>;
}

export interface MonitorDeps {
  config: MonitorConfig;
  logger: Logger;
  bus: Bus;
}

export async function createMonitor({ config, logger, bus }: MonitorDeps): Promise<Monitor> {
  // First: a wrong alert rule stops the monitor before it binds or reads anything.
  const rules = config.MONITOR_ALERT_RULES_FILE ? await loadAlertRules(config.MONITOR_ALERT_RULES_FILE, { accuracyWindow: config.MONITOR_ACCURACY_WINDOW }) : [];
  // The monitor may start before any router: the stream must exist to read it.
  await bus.ensureStreams();
  const state = new MonitorState({
    maxSeries: config.MONITOR_MAX_SERIES, maxClients: config.MONITOR_MAX_CLIENTS, maxClientSeries: config.MONITOR_MAX_CLIENT_SERIES,
    driftWindowMs: config.MONITOR_DRIFT_WINDOW_MS, driftMinInputs: config.MONITOR_DRIFT_MIN_INPUTS, accuracyWindow: config.MONITOR_ACCURACY_WINDOW,
  });
  const store = await snapshotStore(bus, config.MONITOR_SNAPSHOT_KEY);
  const kept = await openKeptPredictions({ bus, retentionMs: config.MONITOR_FEEDBACK_RETENTION_MS, logger, models: config.MONITOR_FEEDBACK_MODELS });
  const registry = processMetricsRegistry();
  const workers = new WorkerRoster();
  const alerting = new Alerting({
    rules, logger, bus, intervalMs: config.MONITOR_ALERT_INTERVAL_MS,
    signals: monitorAlertSignals({ timeline: state.timeline, workers, drift: state.drift, accuracy: state.accuracy, shadows: state.shadows }),
    webhook: config.MONITOR_ALERT_WEBHOOK_URL === undefined ? undefined : new AlertWebhook({
      url: config.MONITOR_ALERT_WEBHOOK_URL, timeoutMs: config.MONITOR_ALERT_WEBHOOK_TIMEOUT_MS, logger,
      generatorUrl: config.MONITOR_ALERT_GENERATOR_URL ?? `http://${config.MONITOR_HOST}:${config.MONITOR_METRICS_PORT}/status`,
    }),
  });
  // Only rules with rollback: true write traffic policies; without one the bucket is never opened.
  const rollback = rules.some((r) => r.rollback) ? new AutomaticRollback({ rules, policies: await trafficPolicies(bus), logger }) : undefined;
  const stopRollback = rollback ? alerting.onTransition((alert) => void rollback.handle(alert)) : undefined;
  const statusPage: StatusPage = createStatusPage({
    sources: { counts: state.models, workers, timeline: state.timeline, drift: state.drift, accuracy: state.accuracy, alerts: alerting, shadows: state.shadows },
    logger, maxClients: config.MONITOR_STATUS_MAX_CLIENTS, timelineStepMs: TIMELINE_BUCKET_MS,
  });
  const http = createMetricsHttpServer(async () => state.prometheus() + kept.prometheus() + workersPrometheus(workers) + alertingPrometheus(alerting) + (await registry.metrics()), registry.contentType, logger, [statusPage.handle]);
  const grpc = createGrpcServer({ name: 'infermesh-monitor', logger, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES, http2: http2LimitsOf(config), healthPort: config.GRPC_HEALTH_PORT, credentials: meshServerCredentials(meshTlsFromConfig(config)) });
  grpc.addService('infermesh.v1.Monitor', monitorService(), monitorHandlers(state, alerting), { callers: ['operator'] });
  let consumer: PredictionConsumer | undefined;
  let feedback: Promise<FeedbackConsumer | undefined> | undefined;
  let heartbeats: { unsubscribe(): void } | undefined;
  let caughtUp: () => void = () => undefined;
  const serving = new Promise<void>((resolve) => (caughtUp = resolve));

  return {
    grpc,
    state,
    workers,
    caughtUp: serving,
    async start() {
      const grpcPort = await grpc.listen(config.MONITOR_HOST, config.MONITOR_PORT);
      const metricsPort = await http.listen(config.MONITOR_HOST, config.MONITOR_METRICS_PORT);
      heartbeats = subscribeWorkerRoster(bus, workers, logger);
      statusPage.start();
      const started = await startPredictionConsumer({
        bus, state, store, logger, snapshotIntervalMs: config.MONITOR_SNAPSHOT_INTERVAL_MS, heartbeatWaitMs: config.MONITOR_HEARTBEAT_WAIT_MS, kept,
      });
      consumer = started;
      void started.caughtUp.then(async () => {
        if (consumer !== started) return;
        grpc.setServing(true);
        caughtUp();
        logger.info({ sequence: state.mark.sequence }, 'monitor caught up');
        // Once the records stored before the start are counted: rules read whole windows, not a replay half done.
        alerting.start();
        if (rules.length > 0) logger.info({ rules: rules.length, file: config.MONITOR_ALERT_RULES_FILE, interval_ms: config.MONITOR_ALERT_INTERVAL_MS }, 'evaluating alert rules');
        // Feedback sent while the monitor was down finds the predictions of the records just counted.
        await kept.settled();
        if (consumer !== started) return;
        feedback = startFeedbackConsumer({ bus, state, kept, logger, graceMs: config.MONITOR_FEEDBACK_GRACE_MS, predictionsRead: () => predictionsRead(bus, state, kept, logger) }).catch((error: unknown) => {
          logger.error({ err: error }, 'reading the FEEDBACK stream could not start; accuracy stays as it is');
          return undefined;
        });
      });
      logger.info({ grpc_port: grpcPort, metrics_port: metricsPort, snapshot_key: config.MONITOR_SNAPSHOT_KEY }, 'monitor serving');
      return { grpcPort, metricsPort };
    },
    async stop() {
      // Cleared before anything is awaited: a catch-up that ends now says SERVING to no one and starts nothing.
      const stopping = consumer;
      consumer = undefined;
      grpc.setServing(false);
      heartbeats?.unsubscribe();
      heartbeats = undefined;
      statusPage.stop();
      // Ends every WatchAlerts stream (OK), so the gRPC shutdown below does not wait for them.
      await alerting.stop();
      stopRollback?.();
      await rollback?.settled();
      // Before the last snapshot: it covers the feedback joined up to here.
      await (await feedback)?.stop();
      feedback = undefined;
      await stopping?.stop();
      await http.close();
      await grpc.shutdown(5000);
    },
  };
}

function alertingPrometheus(alerting: Alerting): string {
  const out = new PrometheusText();
  alerting.writePrometheus(out);
  return out.toString();
}

function workersPrometheus(workers: WorkerRoster): string {
  const out = new PrometheusText();
  workers.writePrometheus(out);
  return out.toString();
}

/** Every heartbeat into the roster; the first one refused for a full roster is logged (the counter tells how many after). */
function subscribeWorkerRoster(bus: Bus, workers: WorkerRoster, logger: Logger): { unsubscribe(): void } {
  let warned = false;
  return bus.subscribe(bus.subjects.heartbeats, events.heartbeat, ({ message }) => {
    if (workers.observe(message) === 'roster_full' && !warned) {
      warned = true;
      logger.warn({ max_workers: workers.maxWorkers, worker_id: message.workerId.slice(0, 128) }, 'the worker roster is full; heartbeats of further workers are not listed');
    }
  });
}

/** The longest a feedback waits for a lagging monitor to read the records stored before it is called unknown. */
const PREDICTIONS_READ_MAX_WAIT_MS = 120_000;

/**
 * Resolves once the records stored in PREDICTIONS until now are counted and their
 * predictions kept, or after PREDICTIONS_READ_MAX_WAIT_MS (a stream whose last message was
 * deleted is never "reached"), or at once when NATS cannot say where the stream ends.
 */
async function predictionsRead(bus: Bus, state: MonitorState, kept: { settled(): Promise<void> }, logger: Logger): Promise<void> {
  let target: number;
  try {
    target = (await streamPosition(bus, 'PREDICTIONS')).lastSequence;
  } catch (error) {
    logger.debug({ err: error }, 'the PREDICTIONS stream\'s end is unknown; judging feedback without waiting for the records');
    return;
  }
  const until = Date.now() + PREDICTIONS_READ_MAX_WAIT_MS;
  while (state.mark.sequence < target && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
  await kept.settled();
}
