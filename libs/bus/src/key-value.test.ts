/** expiringBucket against a real nats-server: one value per key, forgotten after the bucket's max age. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { connectBus, expiringBucket, type Bus } from './index.js';

const logger = createLogger('key-value-test', { level: 'silent' });
let nats: NatsServer;
let bus: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'key-value-test', prefix: 'infermesh', logger });
}, 30_000);

afterAll(async () => {
  await bus?.drain();
  await nats?.stop();
}, 30_000);

describe('expiringBucket', () => {
  it('gives back the last value put under a key, and nothing for a key never put', async () => {
    const bucket = await expiringBucket(bus, 'kv_values', { maxAgeMs: 60_000 });
    await bucket.put('k1', Uint8Array.of(1));
    await bucket.put('k1', Uint8Array.of(2));
    expect(await bucket.get('k1')).toEqual(Uint8Array.of(2));
    expect(await bucket.get('never')).toBeUndefined();
  });

  it('creates the bucket with the max age asked for, and keeps an existing bucket\'s own', async () => {
    const created = await expiringBucket(bus, 'kv_ages', { maxAgeMs: 3_600_000 });
    const again = await expiringBucket(bus, 'kv_ages', { maxAgeMs: 60_000 });
    const info = await (await bus.js.jetstreamManager()).streams.info('KV_kv_ages');
    expect([created.maxAgeMs, again.maxAgeMs, info.config.max_age]).toEqual([3_600_000, 3_600_000, 3_600_000 * 1e6]);
  });

  it('creates a value only under a key that holds none, leaving the one there', async () => {
    const bucket = await expiringBucket(bus, 'kv_create', { maxAgeMs: 60_000 });
    expect(await bucket.create('k', Uint8Array.of(1))).toBe(true);
    expect(await bucket.create('k', Uint8Array.of(2))).toBe(false);
    expect(await bucket.get('k')).toEqual(Uint8Array.of(1));
  });

  it('lets one of two creates of a key racing each other win', async () => {
    const bucket = await expiringBucket(bus, 'kv_race', { maxAgeMs: 60_000 });
    const won = await Promise.all([1, 2, 3, 4].map((n) => bucket.create('k', Uint8Array.of(n))));
    expect(won.filter(Boolean)).toHaveLength(1);
    expect(await bucket.get('k')).toEqual(Uint8Array.of(won.indexOf(true) + 1));
  });

  it('creates a value again under a key whose value expired', async () => {
    const bucket = await expiringBucket(bus, 'kv_recreate', { maxAgeMs: 1000 });
    expect(await bucket.create('k', Uint8Array.of(1))).toBe(true);
    const until = Date.now() + 15_000;
    while ((await bucket.get('k')) !== undefined && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await bucket.create('k', Uint8Array.of(2))).toBe(true);
    expect(await bucket.get('k')).toEqual(Uint8Array.of(2));
  });

  it('forgets a value once it is older than the max age', async () => {
    const bucket = await expiringBucket(bus, 'kv_expiry', { maxAgeMs: 1000 });
    await bucket.put('k', Uint8Array.of(7));
    expect(await bucket.get('k')).toEqual(Uint8Array.of(7));
    const until = Date.now() + 15_000;
    while ((await bucket.get('k')) !== undefined && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await bucket.get('k')).toBeUndefined();
  });
});
