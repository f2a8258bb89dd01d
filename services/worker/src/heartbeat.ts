/** Announces the worker and its models on NATS; the router's routing table is built from these alone. */
import { events, type Bus } from '@infermesh/bus';
import type { WorkerHeartbeat } from '@infermesh/contracts';
import type { ModelRegistry } from './model-registry.js';
import { clientInputs, fullShape } from './model-config.js';
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
    models: ready.map((m) => {
      const batching = m.config.dynamic_batching;
      return {
        name: m.name,
        version: m.version,
        ready: !state.draining,
        platform: m.config.platform,
        inputs: clientInputs(m.config),
        outputs: m.config.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: fullShape(m.config, t).map(String) })),
        maxBatchSize: m.config.max_batch_size,
        dynamicBatching: batching
          ? { preferredBatchSize: batching.preferred_batch_size, maxQueueDelayUs: String(batching.max_queue_delay_microseconds), maxQueueSize: batching.max_queue_size }
          : null,
        instances: m.config.instance_group.count,
        // Built once when the model loaded; the monitor compares records' bins with it.
        driftReference: m.drift?.reference ?? null,
        classLabels: m.classifier ? [...m.classifier.labels] : [],
      };
    }),
  };
}

export function startHeartbeat(options: HeartbeatOptions & { onError?: (error: unknown) => void }): { beat(): void; stop(): void } {
  const beat = () => {
    try {
      options.bus.publish(options.bus.subjects.heartbeat(options.state.workerId), events.heartbeat, heartbeatOf(options));
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
