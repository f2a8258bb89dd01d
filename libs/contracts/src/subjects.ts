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
  };
}

export type Subjects = ReturnType<typeof subjects>;

/** The JetStream streams of the mesh: prediction records, which the monitor must not lose. */
export type StreamKind = 'PREDICTIONS';

/** Stream names: PREDICTIONS for the default prefix, <PREFIX>_PREDICTIONS otherwise, so meshes can share a server. */
export function streamName(prefix: string, kind: StreamKind): string {
  return prefix === 'infermesh' ? kind : `${prefix.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_${kind}`;
}
