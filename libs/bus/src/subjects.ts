/** NATS subjects and stream names of the mesh, under a configurable prefix. */

/** A subject token: NATS forbids '.', '*', '>' and whitespace inside one. */
export function token(value: string): string {
  return value.replace(/[.*>\s]/g, '_') || '_';
}

export function subjects(prefix: string) {
  return {
    heartbeat: (workerId: string) => `${prefix}.worker.heartbeat.${token(workerId)}`,
    heartbeats: `${prefix}.worker.heartbeat.*`,
    modelState: (model: string) => `${prefix}.model.state.${token(model)}`,
    modelStates: `${prefix}.model.state.*`,
    control: (workerId: string) => `${prefix}.control.${token(workerId)}`,
    prediction: (model: string) => `${prefix}.predictions.${token(model)}`,
    predictions: `${prefix}.predictions.>`,
    feedback: (model: string) => `${prefix}.feedback.${token(model)}`,
    feedbacks: `${prefix}.feedback.>`,
    alert: (severity: string) => `${prefix}.alerts.${token(severity)}`,
    alerts: `${prefix}.alerts.>`,
  };
}

export type Subjects = ReturnType<typeof subjects>;

/** Stream names: PREDICTIONS for the default prefix, <PREFIX>_PREDICTIONS otherwise, so meshes can share a server. */
export function streamName(prefix: string, kind: 'PREDICTIONS' | 'FEEDBACK' | 'ALERTS'): string {
  return prefix === 'infermesh' ? kind : `${prefix.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_${kind}`;
}
