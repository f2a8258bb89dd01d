/** NATS subjects and stream names of the mesh, under a configurable prefix. */

/** A subject token: NATS forbids '.', '*', '>' and whitespace inside one. */
export function token(value: string): string {
  return value.replace(/[.*>\s]/g, '_') || '_';
}

export function subjects(prefix: string) {
  return {
    heartbeat: (workerId: string) => `${prefix}.worker.heartbeat.${token(workerId)}`,
    heartbeats: `${prefix}.worker.heartbeat.*`,
    prediction: (model: string) => `${prefix}.predictions.${token(model)}`,
    predictions: `${prefix}.predictions.>`,
    feedback: (model: string) => `${prefix}.feedback.${token(model)}`,
    feedbacks: `${prefix}.feedback.>`,
    alert: (severity: string) => `${prefix}.alerts.${token(severity)}`,
    alerts: `${prefix}.alerts.>`,
    /** Repository control of one worker (ControlRequest / ControlResponse, request/reply). */
    control: (workerId: string) => `${prefix}.control.${token(workerId)}`,
    controls: `${prefix}.control.>`,
  };
}

export type Subjects = ReturnType<typeof subjects>;

/** The JetStream streams of the mesh: prediction records and feedback, which the monitor must not lose. */
export type StreamKind = 'PREDICTIONS' | 'FEEDBACK';

/**
 * The key-value bucket where the monitor keeps predictions for feedback to join (see
 * KeptPrediction): `<prefix>_predictions`, beside `<prefix>_snapshots`.
 */
export function keptPredictionsBucket(prefix: string): string {
  return `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_predictions`;
}

/**
 * The key-value bucket of the models' traffic policies (TrafficPolicy): `<prefix>_traffic`.
 * Its stream KV_<prefix>_traffic is also the record of each change (libs/bus traffic-policies.ts).
 */
export function trafficBucket(prefix: string): string {
  return `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_traffic`;
}

/** Stream names: PREDICTIONS for the default prefix, <PREFIX>_PREDICTIONS otherwise, so meshes can share a server. */
export function streamName(prefix: string, kind: StreamKind): string {
  return prefix === 'infermesh' ? kind : `${prefix.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_${kind}`;
}
