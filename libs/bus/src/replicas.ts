/**
 * How many replicas the mesh creates its JetStream streams and KV buckets with:
 * NATS_STREAM_REPLICAS, 1 to 5, default 1. On a three-server JetStream cluster, 3 keeps every
 * stream through the loss of a server; a single server refuses more than 1 (so a wrong setting
 * fails at start, naming the stream). Read where the streams are created, so that every service
 * follows the deployment's setting without one of its own. It applies to streams created from
 * then on; an existing stream keeps its replicas (`nats stream edit <stream> --replicas 3`).
 */
export function streamReplicas(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.NATS_STREAM_REPLICAS?.trim();
  if (raw === undefined || raw === '') return 1;
  if (!/^[1-5]$/.test(raw)) throw new Error(`NATS_STREAM_REPLICAS must be an integer from 1 to 5, got ${JSON.stringify(raw.slice(0, 20))}`);
  return Number(raw);
}
