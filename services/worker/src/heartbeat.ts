/** Announces the worker and its models on NATS; the router's routing table is built from these alone. */
import { events, type Bus } from '@infermesh/bus';
import type { WorkerHeartbeat } from '@infermesh/contracts';
import type { ModelRegistry } from './model-registry.js';
import { clientInputs, type ModelConfig } from './model-config.js';
import { pipelineStepsMessage, placementMessage } from './pipeline-config.js';
import type { WorkerState } from './inference-service.js';

export interface HeartbeatOptions {
  bus: Bus;
  registry: ModelRegistry;
  state: WorkerState;
  address: string;
  device: string;
  intervalMs: number;
}

export function heartbeatOf(options: Omit<HeartbeatOptions, 'bus' | 'intervalMs'>): WorkerHeartbeat {
  const { registry, state } = options;
  const ready = registry.ready();
  return {
    workerId: state.workerId,
    address: options.address,
    device: options.device,
    draining: state.draining,
    sentAtMs: String(Date.now()),
    queueDepth: ready.reduce((sum, m) => sum + m.queueDepth, 0),
    inFlight: ready.reduce((sum, m) => sum + m.inFlight, 0),
    executionProvider: [...new Set(ready.map((m) => m.provider))].join(','),
    // The whole process (runtime, every session it holds), not one model; rss() alone is cheap (no heap walk).
    rssBytes: String(process.memoryUsage.rss()),
    // Every version with its state: routers route to the READY ones (and to UNLOADING ones
    // the requests they pinned before), RepositoryIndex shows them all; a version without a
    // session is announced by its name, state and reason alone.
    models: registry.list().map((entry) => {
      const m = entry.model;
      if (entry.pipeline) return pipelineStatus(entry.pipeline, entry.version, !state.draining && entry.state === 'READY', entry.state, entry.reason);
      if (!m) return { name: entry.name, version: entry.version, ready: false, state: entry.state, reason: entry.reason };
      const batching = m.config.dynamic_batching;
      // A loaded version whose session can run nothing any more is not offered to routers.
      const failed = entry.state === 'READY' ? m.failure : undefined;
      return {
        name: m.name,
        version: m.version,
        ready: !state.draining && entry.state === 'READY' && !failed,
        state: failed ? 'UNAVAILABLE' : entry.state,
        reason: failed ? `its onnxruntime session failed: ${failed.message}` : entry.reason,
        platform: m.config.platform,
        inputs: clientInputs(m.config),
        outputs: m.outputMetadata(),
        maxBatchSize: m.config.max_batch_size,
        dynamicBatching: batching
          ? { preferredBatchSize: batching.preferred_batch_size, maxQueueDelayUs: String(batching.max_queue_delay_microseconds), maxQueueSize: batching.max_queue_size }
          : null,
        instances: m.config.instance_group.count,
        // Built once when the model loaded; the monitor compares records' bins with it.
        driftReference: m.drift?.reference ?? null,
        classLabels: m.classifier ? [...m.classifier.labels] : [],
        placement: placementMessage(m.config.placement),
      };
    }),
  };
}

/**
 * A pipeline as a heartbeat announces it: like a model (its declared inputs and outputs, what
 * ModelMetadata answers), with its steps; it batches nothing itself (its steps' models do).
 */
function pipelineStatus(config: ModelConfig, version: string, ready: boolean, state: string, reason: string): NonNullable<WorkerHeartbeat['models']>[number] {
  return {
    name: config.name,
    version,
    ready,
    state,
    reason,
    platform: 'pipeline',
    inputs: config.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) })),
    outputs: config.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) })),
    maxBatchSize: 0,
    dynamicBatching: null,
    instances: 1,
    pipelineSteps: pipelineStepsMessage(config.pipeline),
    placement: placementMessage(config.placement),
  };
}

/** Thrown by a publish larger than the server's max_payload (its INFO), before anything is sent. */
const isTooLarge = (error: unknown) => /max_payload/i.test((error as Error)?.message ?? '');

/** The heartbeat without what watches its models: routers need the rest, the monitor can do without these. */
function withoutMonitoring(heartbeat: WorkerHeartbeat): WorkerHeartbeat {
  return { ...heartbeat, models: heartbeat.models?.map((m) => ({ ...m, driftReference: null, classLabels: [] })) };
}

export interface HeartbeatHooks {
  /** A beat not sent (the connection closed or closing). */
  onError?: (error: unknown) => void;
  /**
   * The heartbeat (of `bytes`) is larger than the server takes in one message: it goes without
   * its models' profiles and class labels. Called once, until a whole one fits again.
   */
  onTooLarge?: (bytes: number) => void;
}

export function startHeartbeat(options: HeartbeatOptions & HeartbeatHooks): { beat(): void; stop(): void } {
  const subject = options.bus.subjects.heartbeat(options.state.workerId);
  let cut = false;
  const beat = () => {
    try {
      const heartbeat = heartbeatOf(options);
      try {
        options.bus.publish(subject, events.heartbeat, heartbeat);
        cut = false;
      } catch (error) {
        if (!isTooLarge(error)) throw error;
        // Profiles and labels (up to 4096 of 128 bytes a model) can outgrow max_payload; the
        // worker must not vanish from routing for them.
        options.bus.publish(subject, events.heartbeat, withoutMonitoring(heartbeat));
        if (!cut) options.onTooLarge?.(events.heartbeat.encode(heartbeat).length);
        cut = true;
      }
    } catch (error) {
      // The NATS connection is closed or closing: the next beat tries again; never crash the worker from a timer.
      options.onError?.(error);
    }
  };
  beat();
  const timer = setInterval(beat, options.intervalMs);
  return {
    beat,
    stop: () => clearInterval(timer),
  };
}
