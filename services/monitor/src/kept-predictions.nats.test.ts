/**
 * Kept predictions against a real nats-server: what is kept (successful requests with an
 * id and predicted labels), under which key (a digest, never the client's strings), for how
 * long (the bucket's max age), and that `settled` waits for every put started.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, keptPredictionsBucket, type Bus } from '@infermesh/bus';
import type { PredictionRecord__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { AMBIGUOUS, keptPredictionKey, MAX_KEPT_LABELS, openKeptPredictions } from './kept-predictions.js';
import { record as fixture } from './records.fixture.js';

const logger = createLogger('kept-predictions-test', { level: 'silent' });
let nats: NatsServer;
const buses: Bus[] = [];
let prefixes = 0;

beforeAll(async () => {
  nats = await startNatsServer();
}, 30_000);

afterAll(async () => {
  for (const bus of buses) await bus.drain();
  await nats?.stop();
}, 30_000);

/** A bus under a prefix of its own: a bucket of its own. */
async function bus(): Promise<Bus> {
  const connected = await connectBus({ url: nats.url, name: 'kept-predictions-test', prefix: `kept${++prefixes}`, logger });
  buses.push(connected);
  return connected;
}

function record(overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  return fixture({ requestId: 'r1', clientId: 'key-a', predictedLabels: ['setosa', 'virginica'], timestampMs: String(Date.now()), ...overrides });
}

describe('kept predictions', () => {
  it('are keyed by the hex SHA-256 of client id, model and request id joined by NUL', () => {
    const key = keptPredictionKey('key-a', 'iris', 'r/1 ü');
    expect(key).toBe(createHash('sha256').update('key-a\0iris\0r/1 ü').digest('hex'));
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(keptPredictionKey('key-b', 'iris', 'r/1 ü')).not.toBe(key);
  });

  it('keep the model, version, predicted labels and time of a successful request, under its key', async () => {
    const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger });
    const r = record();
    expect(kept.keep(r)).toBe(true);
    await kept.settled();
    expect(await kept.get(keptPredictionKey('key-a', 'iris', 'r1'))).toEqual({ model: 'iris', version: '1', predictedLabels: ['setosa', 'virginica'], timestampMs: r.timestampMs });
    expect(await kept.get(keptPredictionKey('key-b', 'iris', 'r1'))).toBeUndefined();
  });

  const notKept: [string, Partial<PredictionRecord__Output>][] = [
    ['a failed request', { statusCode: 14 }],
    ['a request without an id', { requestId: '' }],
    ['a request without predicted labels', { predictedLabels: [] }],
    ['a request older than the retention', { timestampMs: String(Date.now() - 7_200_000) }],
  ];
  for (const [what, overrides] of notKept) {
    it(`do not keep ${what}`, async () => {
      const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger });
      expect(kept.keep(record(overrides))).toBe(false);
      await kept.settled();
      expect(await kept.get(keptPredictionKey('key-a', 'iris', overrides.requestId ?? 'r1'))).toBeUndefined();
    });
  }

  it('keep only the predictions of the models named, when models are named (MONITOR_FEEDBACK_MODELS)', async () => {
    const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger, models: new Set(['text-direction']) });
    expect(kept.keep(record())).toBe(false);
    expect(kept.keep(record({ model: 'text-direction' }))).toBe(true);
    await kept.settled();
    expect(await kept.get(keptPredictionKey('key-a', 'iris', 'r1'))).toBeUndefined();
    expect(await kept.get(keptPredictionKey('key-a', 'text-direction', 'r1'))).toMatchObject({ model: 'text-direction' });
  });

  it('do not keep more labels than a kept prediction holds, and count it', async () => {
    const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger });
    expect(kept.keep(record({ predictedLabels: Array.from({ length: MAX_KEPT_LABELS + 1 }, () => 'a') }))).toBe(false);
    expect(kept.prometheus()).toContain('infermesh_monitor_kept_predictions_total{outcome="too_large"} 1');
  });

  it('settle once every put started is stored', async () => {
    const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger });
    for (let i = 0; i < 200; i++) kept.keep(record({ requestId: `r${i}` }));
    await kept.settled();
    expect(kept.prometheus()).toContain('infermesh_monitor_kept_predictions_total{outcome="stored"} 200');
    expect(await kept.get(keptPredictionKey('key-a', 'iris', 'r199'))).toBeDefined();
  });

  it('mark a request id its client used for another prediction as ambiguous: feedback joins neither', async () => {
    const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger });
    kept.keep(record({ requestId: '1', predictedLabels: ['setosa'], timestampMs: String(Date.now() - 2000) }));
    await kept.settled();
    kept.keep(record({ requestId: '1', predictedLabels: ['virginica'], timestampMs: String(Date.now() - 1000) }));
    await kept.settled();
    expect(await kept.get(keptPredictionKey('key-a', 'iris', '1'))).toBe(AMBIGUOUS);
    expect(kept.prometheus()).toContain('infermesh_monitor_kept_predictions_total{outcome="ambiguous"} 1');
  });

  it('mark a request id ambiguous when its predictions differ only in version or time', async () => {
    const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger });
    const at = String(Date.now() - 5000);
    for (const overrides of [{ requestId: 'v', timestampMs: at }, { requestId: 'v', timestampMs: at, version: '2' }, { requestId: 't', timestampMs: at }, { requestId: 't', timestampMs: String(Date.now()) }]) {
      kept.keep(record(overrides));
      await kept.settled();
    }
    expect(await kept.get(keptPredictionKey('key-a', 'iris', 'v'))).toBe(AMBIGUOUS);
    expect(await kept.get(keptPredictionKey('key-a', 'iris', 't'))).toBe(AMBIGUOUS);
  });

  it('mark a request id ambiguous when its predictions are stored at once', async () => {
    const kept = await openKeptPredictions({ bus: await bus(), retentionMs: 3_600_000, logger });
    for (let i = 0; i < 20; i++) kept.keep(record({ requestId: '1', predictedLabels: [i % 2 ? 'setosa' : 'virginica'], timestampMs: String(Date.now() - 20_000 + i) }));
    await kept.settled();
    expect(await kept.get(keptPredictionKey('key-a', 'iris', '1'))).toBe(AMBIGUOUS);
  });

  it('put the mark again on each further reuse, so it outlives the last prediction made with the id', async () => {
    const b = await bus();
    const kept = await openKeptPredictions({ bus: b, retentionMs: 3_600_000, logger });
    const jsm = await b.js.jetstreamManager();
    const stored = async () => (await jsm.streams.getMessage(`KV_${keptPredictionsBucket(b.prefix)}`, { last_by_subj: `$KV.${keptPredictionsBucket(b.prefix)}.${keptPredictionKey('key-a', 'iris', '1')}` }))!;
    for (const labels of [['a'], ['b']]) {
      kept.keep(record({ requestId: '1', predictedLabels: labels, timestampMs: String(Date.now()) }));
      await kept.settled();
    }
    const marked = await stored();
    kept.keep(record({ requestId: '1', predictedLabels: ['c'], timestampMs: String(Date.now() + 1) }));
    await kept.settled();
    expect((await stored()).seq).toBeGreaterThan(marked.seq);
    expect(await kept.get(keptPredictionKey('key-a', 'iris', '1'))).toBe(AMBIGUOUS);
  });

  it('leave a prediction as it is when its record is read again (a restart, another replica)', async () => {
    const b = await bus();
    const r = record();
    const first = await openKeptPredictions({ bus: b, retentionMs: 3_600_000, logger });
    first.keep(r);
    await first.settled();
    const restarted = await openKeptPredictions({ bus: b, retentionMs: 3_600_000, logger });
    restarted.keep(r);
    await restarted.settled();
    expect(await restarted.get(keptPredictionKey('key-a', 'iris', 'r1'))).toEqual({ model: 'iris', version: '1', predictedLabels: ['setosa', 'virginica'], timestampMs: r.timestampMs });
    expect(restarted.prometheus()).toContain('infermesh_monitor_kept_predictions_total{outcome="replayed"} 1');
  });

  it('leave a prediction stamped ahead of the monitor\'s clock as it is when its record is read again later', async () => {
    const b = await bus();
    const start = Date.now();
    const r = record({ timestampMs: String(start + 10_000) });
    const first = await openKeptPredictions({ bus: b, retentionMs: 3_600_000, logger, now: () => start });
    first.keep(r);
    await first.settled();
    const later = await openKeptPredictions({ bus: b, retentionMs: 3_600_000, logger, now: () => start + 60_000 });
    later.keep(r);
    await later.settled();
    expect(await later.get(keptPredictionKey('key-a', 'iris', 'r1'))).toMatchObject({ predictedLabels: ['setosa', 'virginica'] });
  });

  it('are kept as long as an existing bucket says when it was made with another max age', async () => {
    const b = await bus();
    await openKeptPredictions({ bus: b, retentionMs: 7_200_000, logger });
    const reopened = await openKeptPredictions({ bus: b, retentionMs: 3_600_000, logger });
    expect(reopened.retentionMs).toBe(7_200_000);
    const info = await (await b.js.jetstreamManager()).streams.info(`KV_${keptPredictionsBucket(b.prefix)}`);
    expect(info.config.max_age).toBe(7_200_000 * 1e6);
  });
});
