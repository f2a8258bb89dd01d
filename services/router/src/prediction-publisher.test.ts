/** The router's prediction records against a real nats-server: batched, each with its request's trace context, none lost, none stored twice. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectBus, events, streamName, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import type { PredictionBatch__Output, PredictionRecord } from '@infermesh/contracts';
import { PredictionPublisher } from './prediction-publisher.js';
import { RecordSpool } from './record-spool.js';

const logger = createLogger('test', { level: 'silent' });
let nats: NatsServer;
let bus: Bus;
const dirs: string[] = [];

function spoolFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'publisher-test-spool-'));
  dirs.push(dir);
  return dir;
}

const spool = (dir = spoolFolder(), maxBytes = 1 << 24) => RecordSpool.open({ dir, maxBytes }, logger);

afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'publisher test', prefix: 'infermesh', logger });
  await bus.ensureStreams();
});

afterAll(async () => {
  await bus?.drain();
  await nats?.stop();
});

async function storedBatches(on = bus): Promise<PredictionBatch__Output[]> {
  const jsm = await on.js.jetstreamManager();
  const info = await jsm.streams.info(streamName('infermesh', 'PREDICTIONS'));
  const batches: PredictionBatch__Output[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const stored = await jsm.streams.getMessage(streamName('infermesh', 'PREDICTIONS'), { seq });
    if (stored) batches.push(events.predictionBatch.decode(stored.data));
  }
  return batches;
}

describe('PredictionPublisher', () => {
  it('stores the records of many requests as few batches, each record with its own traceparent', async () => {
    const publisher = new PredictionPublisher(bus, logger, { capacity: 1000, batchSize: 50, lingerMs: 20, spool: spool() });
    const traceparent = (i: number) => `00-${i.toString(16).padStart(32, '0')}-${'1'.repeat(16)}-01`;
    for (let i = 0; i < 120; i++) publisher.publish({ requestId: `r${i}`, model: 'iris', version: '1', statusCode: 0, traceparent: traceparent(i) });
    await publisher.flush(5000);
    const batches = await storedBatches();
    const records = batches.flatMap((b) => b.records);
    expect(records.map((r) => r.requestId)).toEqual(Array.from({ length: 120 }, (_, i) => `r${i}`));
    expect(batches.length).toBeLessThanOrEqual(3);
    expect(records.map((r) => r.traceparent)).toEqual(Array.from({ length: 120 }, (_, i) => traceparent(i)));
  });

  it('splits a batch larger than the NATS server\'s max_payload and stores every record', async () => {
    const before = (await storedBatches()).flatMap((b) => b.records).length;
    const publisher = new PredictionPublisher(bus, logger, { capacity: 1000, batchSize: 200, lingerMs: 20, spool: spool() });
    // 200 records of 10 kB: 2 MB, twice the server's default max_payload of 1 MB.
    for (let i = 0; i < 200; i++) publisher.publish({ requestId: `big-${i}-${'x'.repeat(10_000)}`, model: 'iris', version: '1', statusCode: 0 });
    publisher.publish({ requestId: 'after', model: 'iris', version: '1', statusCode: 0 });
    await publisher.flush(10_000);
    const stored = (await storedBatches()).flatMap((b) => b.records).slice(before).map((r) => r.requestId.split('-x')[0]);
    // Each once; batches are stored concurrently, so 'after' may come first.
    expect(stored.sort()).toEqual([...Array.from({ length: 200 }, (_, i) => `big-${i}`), 'after'].sort());
  });
});

describe('PredictionPublisher with a spool that cannot be read or updated', () => {
  const record = (id: string): PredictionRecord => ({ requestId: id, model: 'iris', version: '1', statusCode: 0 });
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(() => process.on('unhandledRejection', onUnhandled));
  afterAll(() => process.off('unhandledRejection', onUnhandled));

  /** A spool holding `count` batches of one record each, left by a router stopped during an outage. */
  function spoolWith(prefix: string, count: number, segmentBytes?: number): RecordSpool {
    const filled = RecordSpool.open({ dir: spoolFolder(), maxBytes: 1 << 24, segmentBytes }, logger);
    for (let n = 0; n < count; n++) filled.append({ id: `${prefix}-batch-${n}`, model: 'iris', records: [record(`${prefix}${n}`)] });
    return filled;
  }

  async function storedIds(prefix: string): Promise<string[]> {
    return (await storedBatches()).flatMap((b) => b.records.map((r) => r.requestId)).filter((id) => id.startsWith(prefix));
  }

  it('logs a disk error during delivery, keeps the spooled batches and delivers each once when the disk works again', async () => {
    const errors = vi.spyOn(logger, 'error');
    const spoolErrors = () => errors.mock.calls.filter(([, message]) => String(message).startsWith('the prediction record spool cannot be read or updated'));
    // Several segments: delivery reads the cursor again at the second one.
    const failing = spoolWith('g', 6, 100);
    const publisher = new PredictionPublisher(bus, logger, { capacity: 1000, lingerMs: 10, retryMs: 50, spool: failing });
    // The first segment is read already; the cursor can be neither written nor read from now on (EISDIR, as root too).
    const cursor = join(failing.dir, 'cursor');
    mkdirSync(cursor);
    await vi.waitFor(() => expect(spoolErrors()).toHaveLength(1), { timeout: 20_000 });
    expect((spoolErrors()[0][0] as unknown as { err: Error }).err.message).toMatch(/EISDIR/);
    rmSync(cursor, { recursive: true });
    await vi.waitFor(async () => expect((await storedIds('g')).sort()).toEqual(['g0', 'g1', 'g2', 'g3', 'g4', 'g5']), { timeout: 20_000 });
    await publisher.flush(10_000);
    expect(spoolErrors()).toHaveLength(1);
    errors.mockRestore();
    expect(unhandled).toEqual([]);
  });

  it('starts although the spool left by the last router cannot be read, and delivers it once it can', async () => {
    const failing = spoolWith('h', 3);
    vi.spyOn(failing, 'head').mockImplementationOnce(() => {
      throw Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' });
    });
    const publisher = new PredictionPublisher(bus, logger, { capacity: 1000, lingerMs: 10, retryMs: 50, spool: failing });
    publisher.publish(record('h-live'));
    await vi.waitFor(async () => expect((await storedIds('h')).sort()).toEqual(['h-live', 'h0', 'h1', 'h2']), { timeout: 20_000 });
    await publisher.flush(10_000);
    expect(unhandled).toEqual([]);
  });
});

describe('PredictionPublisher while NATS is down', () => {
  let down: NatsServer;
  let downBus: Bus;
  const record = (id: string): PredictionRecord => ({ requestId: id, model: 'iris', version: '1', statusCode: 0 });
  const ids = (from: number, to: number, prefix = 'r') => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

  beforeAll(async () => {
    down = await startNatsServer();
    downBus = await connectBus({ url: down.url, name: 'publisher outage test', prefix: 'infermesh', logger });
    await downBus.ensureStreams();
  });

  afterAll(async () => {
    await downBus?.drain().catch(() => {});
    await down?.stop();
  });

  it('stores every record published before, during and after an outage once NATS is back, each once', async () => {
    const publisher = new PredictionPublisher(downBus, logger, { capacity: 100, batchSize: 20, lingerMs: 10, retryMs: 100, spool: spool() });
    ids(0, 200, 'a').forEach((id) => publisher.publish(record(id)));
    await down.kill();
    // More than `capacity`: the outage's records wait on disk, not in memory, and none is dropped.
    // Longer than a JetStream publish waits (5 s): publishes fail and are spooled, while the
    // client still holds their bytes and sends them when it reconnects; stored twice but for
    // their message ids.
    for (const id of ids(0, 1000, 'b')) {
      publisher.publish(record(id));
      if (Number(id.slice(1)) % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 650));
    }
    await down.restart();
    ids(0, 200, 'c').forEach((id) => publisher.publish(record(id)));
    await publisher.flush(30_000);
    const stored = (await storedBatches(downBus)).flatMap((b) => b.records.map((r) => r.requestId));
    expect(stored.length).toBe(1400);
    expect(new Set(stored)).toEqual(new Set([...ids(0, 200, 'a'), ...ids(0, 1000, 'b'), ...ids(0, 200, 'c')]));
  });

  it('keeps what it could not store at shutdown in the spool, and the next router on the folder delivers it', async () => {
    const dir = spoolFolder();
    const before = (await storedBatches(downBus)).length;
    await down.kill();
    const first = new PredictionPublisher(downBus, logger, { capacity: 1000, batchSize: 20, lingerMs: 10, retryMs: 100, spool: spool(dir) });
    ids(0, 100, 'd').forEach((id) => first.publish(record(id)));
    await first.flush(1000);
    await down.restart();
    const second = new PredictionPublisher(downBus, logger, { capacity: 1000, batchSize: 20, lingerMs: 10, retryMs: 100, spool: spool(dir) });
    await second.flush(30_000);
    const stored = (await storedBatches(downBus)).slice(before).flatMap((b) => b.records.map((r) => r.requestId));
    expect(stored.sort()).toEqual(ids(0, 100, 'd').sort());
  });

  it('stores once a batch that was spooled at shutdown while its publish was already on the way', async () => {
    const dir = spoolFolder();
    const before = (await storedBatches(downBus)).length;
    const first = new PredictionPublisher(downBus, logger, { capacity: 1000, batchSize: 20, lingerMs: 10, spool: spool(dir) });
    ids(0, 100, 'f').forEach((id) => first.publish(record(id)));
    // No time to wait: the batches being published are spooled too, and still reach the server.
    await first.flush(0);
    const second = new PredictionPublisher(downBus, logger, { capacity: 1000, batchSize: 20, lingerMs: 10, spool: spool(dir) });
    await second.flush(30_000);
    const stored = (await storedBatches(downBus)).slice(before).flatMap((b) => b.records.map((r) => r.requestId));
    expect(stored.sort()).toEqual(ids(0, 100, 'f').sort());
  });

  it('counts in its log the records it drops once the spool is full', async () => {
    const errors = vi.spyOn(logger, 'error');
    await down.kill();
    // Room for a few batches of 20 records, not for 50.
    const publisher = new PredictionPublisher(downBus, logger, { capacity: 10, batchSize: 20, lingerMs: 10, retryMs: 100, spool: spool(spoolFolder(), 4096) });
    ids(0, 1000, 'e').forEach((id) => publisher.publish(record(id)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await publisher.flush(100);
    await down.restart();
    const drops = errors.mock.calls.filter(([, message]) => String(message).startsWith('prediction records dropped'));
    errors.mockRestore();
    expect(drops.length).toBeGreaterThan(0);
    const last = drops.at(-1)![0] as unknown as { dropped_total: number };
    expect(last.dropped_total).toBeGreaterThan(500);
    expect(last.dropped_total).toBeLessThan(1000);
  });
});
