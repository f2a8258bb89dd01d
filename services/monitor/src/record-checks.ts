/**
 * What a prediction record must hold to be counted. A record is a claim by whoever
 * published it: one absurd latency (9,000,000 ms) is enough to move a p99, so a record a
 * router cannot have written is counted as invalid instead of folded into the figures.
 */
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import type { Observation } from './model-metrics.js';

/** No request the mesh serves takes an hour: a duration beyond it is not a measurement. */
export const MAX_DURATION_US = 3600 * 1e6;
/** Rows in one request: far above any batch a worker takes in one message. */
export const MAX_ITEMS = 1_000_000;

export type Checked = { valid: true; observation: Observation } | { valid: false; why: string };

/** int64 fields arrive as decimal strings (loader option longs: String). */
function micros(value: string, name: string): number | string {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) return `${name} is negative or not a number`;
  if (n > MAX_DURATION_US) return `${name} is over an hour`;
  return n;
}

export function checkRecord(record: PredictionRecord__Output, nowMs: number): Checked {
  if (!record.model) return { valid: false, why: 'no model' };
  if (!Number.isInteger(record.statusCode) || Status[record.statusCode] === undefined) return { valid: false, why: 'status code is not a gRPC status' };
  const latencyUs = micros(record.latencyUs, 'latency');
  if (typeof latencyUs === 'string') return { valid: false, why: latencyUs };
  const queueUs = micros(record.queueUs, 'queue time');
  if (typeof queueUs === 'string') return { valid: false, why: queueUs };
  const computeUs = micros(record.computeUs, 'compute time');
  if (typeof computeUs === 'string') return { valid: false, why: computeUs };
  if (record.items > MAX_ITEMS) return { valid: false, why: `items over ${MAX_ITEMS}` };
  const atMs = recordTime(record, nowMs);
  return {
    valid: true,
    observation: { statusCode: record.statusCode, items: record.items, latencyUs, queueUs, computeUs, batchSize: record.batchSize, atMs },
  };
}

/**
 * When the router answered, as the monitor takes it: never later than now (a record from
 * the future, a skewed or forged clock, would stay in the windows and be the "last
 * request" for ever), and now when the record has no time.
 */
export function recordTime(record: Pick<PredictionRecord__Output, 'timestampMs'>, nowMs: number): number {
  const stamped = Number(record.timestampMs);
  return Number.isFinite(stamped) && stamped > 0 ? Math.min(stamped, nowMs) : nowMs;
}
