/**
 * UUIDv7 ids (RFC 9562) for answered requests a client sent without an id: the worker's for a
 * model's requests, the router's for a pipeline's. Time-ordered, so the monitor can tell an id's
 * age (feedback past the retention is "expired").
 */
import { randomFillSync } from 'node:crypto';

/** Random bytes are drawn 10 per id from a pool refilled 409 ids at a time, not per call. */
const POOL_BYTES = 4090;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolAt = POOL_BYTES;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version, 74 random bits and the variant. */
export function uuidv7(now = Date.now()): string {
  if (poolAt + 10 > POOL_BYTES) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const r = poolAt;
  poolAt += 10;
  const time = now.toString(16).padStart(12, '0').slice(-12);
  const version = HEX[0x70 | (pool[r] & 0x0f)];
  const variant = HEX[0x80 | (pool[r + 2] & 0x3f)];
  return `${time.slice(0, 8)}-${time.slice(8)}-${version}${HEX[pool[r + 1]]}-${variant}${HEX[pool[r + 3]]}-${HEX[pool[r + 4]]}${HEX[pool[r + 5]]}${HEX[pool[r + 6]]}${HEX[pool[r + 7]]}${HEX[pool[r + 8]]}${HEX[pool[r + 9]]}`;
}
