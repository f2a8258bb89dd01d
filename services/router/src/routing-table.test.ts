/** The routing table built from worker heartbeats: membership, expiry, picking, model versions. */
import { mulberry32 } from '@infermesh/testing';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '@infermesh/log';
import type { ModelStatus__Output, WorkerHeartbeat__Output } from '@infermesh/contracts';
import { MAX_KNOWN_MODELS, MAX_MODELS_PER_HEARTBEAT, RoutingTable, type TableChange } from './routing-table.js';

const STALE_MS = 3000;

function status(name: string, version: string, ready = true): ModelStatus__Output {
  return { name, version, ready, state: ready ? 'READY' : 'UNAVAILABLE', platform: 'onnxruntime_onnx', inputs: [], outputs: [], maxBatchSize: 8, reason: ready ? '' : 'failed', dynamicBatching: null, instances: 1, driftReference: null, classLabels: [], pipelineSteps: [], placement: null };
}

function heartbeat(workerId: string, models: ModelStatus__Output[], overrides: Partial<WorkerHeartbeat__Output> = {}): WorkerHeartbeat__Output {
  return {
    workerId, address: `${workerId}.local:9000`, device: 'cpu', models, queueDepth: 0, inFlight: 0,
    sentAtMs: '0', draining: false, executionProvider: 'cpu', rssBytes: '0', ...overrides,
  };
}

/** No requests of this router in flight anywhere. */
const none = () => 0;

/** A seeded PRNG, so picks are reproducible. */
const seeded = mulberry32;

function recording(table: RoutingTable): TableChange[] {
  const changes: TableChange[] = [];
  table.onChange((change) => changes.push(change));
  return changes;
}

const summary = (changes: TableChange[]) => changes.map((c) => [c.kind, c.worker.id]);

describe('membership', () => {
  it('adds a worker on its first heartbeat and emits joined', () => {
    const table = new RoutingTable(STALE_MS);
    const changes = recording(table);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    expect(table.get('w1')).toMatchObject({ id: 'w1', address: 'w1.local:9000', device: 'cpu', lastSeen: 1000 });
    expect(summary(changes)).toEqual([['joined', 'w1']]);
  });

  it('emits nothing for later heartbeats from the same address', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    const changes = recording(table);
    table.update(heartbeat('w1', [status('iris', '1')]), 2000);
    expect(changes).toEqual([]);
    expect(table.get('w1')?.lastSeen).toBe(2000);
  });

  it('emits left then joined when a worker comes back at another address', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    const changes = recording(table);
    table.update(heartbeat('w1', [status('iris', '1')], { address: 'elsewhere:9000' }), 2000);
    expect(changes.map((c) => [c.kind, c.worker.address])).toEqual([['left', 'w1.local:9000'], ['joined', 'elsewhere:9000']]);
  });

  it('takes the reported load as queue depth plus in flight', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [], { queueDepth: 3, inFlight: 2 }), 1000);
    expect(table.get('w1')?.reportedLoad).toBe(5);
  });

  it('removes a worker whose heartbeat says it is draining and emits left', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    const changes = recording(table);
    table.update(heartbeat('w1', [status('iris', '1')], { draining: true }), 2000);
    expect(table.get('w1')).toBeUndefined();
    expect(changes.map((c) => [c.kind, c.worker.id, c.reason])).toEqual([['left', 'w1', 'draining']]);
  });

  it('ignores a draining heartbeat from a worker it does not know', () => {
    const table = new RoutingTable(STALE_MS);
    const changes = recording(table);
    table.update(heartbeat('w1', [status('iris', '1')], { draining: true }), 1000);
    expect(table.list()).toEqual([]);
    expect(changes).toEqual([]);
  });

  it('keeps a worker silent for exactly staleMs', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', []), 1000);
    table.expire(1000 + STALE_MS);
    expect(table.get('w1')).toBeDefined();
  });

  it('expires workers silent for longer than staleMs and emits left with the silence', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('old', []), 1000);
    table.update(heartbeat('fresh', []), 3000);
    const changes = recording(table);
    table.expire(1000 + STALE_MS + 1);
    expect(table.list().map((w) => w.id)).toEqual(['fresh']);
    expect(changes.map((c) => [c.kind, c.worker.id, c.reason])).toEqual([['left', 'old', `no heartbeat for ${STALE_MS + 1} ms`]]);
  });
});

describe('holders and pick', () => {
  it('returns undefined when no worker holds the model', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    expect(table.pick('mnist', '', none)).toBeUndefined();
  });

  it('returns undefined when the only holder is excluded', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    expect(table.pick('iris', '', none, new Set(['w1']))).toBeUndefined();
  });

  it('never picks an excluded worker', () => {
    const table = new RoutingTable(STALE_MS, seeded(1));
    for (const id of ['w1', 'w2', 'w3']) table.update(heartbeat(id, [status('iris', '1')]), 1000);
    for (let i = 0; i < 50; i++) expect(table.pick('iris', '', none, new Set(['w1', 'w3']))?.id).toBe('w2');
  });

  it('picks only workers holding the requested version', () => {
    const table = new RoutingTable(STALE_MS, seeded(2));
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    table.update(heartbeat('w2', [status('iris', '2')]), 1000);
    for (let i = 0; i < 20; i++) expect(table.pick('iris', '2', none)?.id).toBe('w2');
  });

  it('does not count a worker as a holder of a model it announces as not ready', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1', false)]), 1000);
    expect(table.holders('iris')).toEqual([]);
    expect(table.pick('iris', '', none)).toBeUndefined();
  });

  it('picks the less loaded of two holders by reported load', () => {
    const table = new RoutingTable(STALE_MS, seeded(3));
    table.update(heartbeat('busy', [status('iris', '1')], { queueDepth: 4, inFlight: 2 }), 1000);
    table.update(heartbeat('idle', [status('iris', '1')], { queueDepth: 1 }), 1000);
    for (let i = 0; i < 50; i++) expect(table.pick('iris', '', none)?.id).toBe('idle');
  });

  it('adds the router\'s own requests in flight to the reported load', () => {
    const table = new RoutingTable(STALE_MS, seeded(4));
    table.update(heartbeat('a', [status('iris', '1')], { queueDepth: 1 }), 1000);
    table.update(heartbeat('b', [status('iris', '1')], { queueDepth: 3 }), 1000);
    const inFlight = (id: string) => (id === 'a' ? 5 : 0);
    for (let i = 0; i < 50; i++) expect(table.pick('iris', '', inFlight)?.id).toBe('b');
  });

  it('never picks the busiest of three holders', () => {
    const table = new RoutingTable(STALE_MS, seeded(5));
    table.update(heartbeat('a', [status('iris', '1')], { queueDepth: 1 }), 1000);
    table.update(heartbeat('b', [status('iris', '1')], { queueDepth: 2 }), 1000);
    table.update(heartbeat('c', [status('iris', '1')], { queueDepth: 9 }), 1000);
    const picked = new Set(Array.from({ length: 200 }, () => table.pick('iris', '', none)?.id));
    expect(picked).toEqual(new Set(['a', 'b']));
  });
});

describe('models and versions', () => {
  it('lists the versions served anywhere in numeric order', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '2'), status('iris', '10')]), 1000);
    table.update(heartbeat('w2', [status('iris', '9'), status('mnist', '1')]), 1000);
    expect(table.versions('iris')).toEqual(['2', '9', '10']);
  });

  it('returns the newest version\'s status when no version is given', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '2')]), 1000);
    table.update(heartbeat('w2', [status('iris', '10')]), 1000);
    expect(table.model('iris')?.version).toBe('10');
  });

  it('returns the status of the version asked for', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '2'), status('iris', '10')]), 1000);
    expect(table.model('iris', '2')?.version).toBe('2');
  });

  it('returns undefined for a model no worker serves', () => {
    const table = new RoutingTable(STALE_MS);
    expect(table.model('iris')).toBeUndefined();
  });

  it('still knows a model after its last holder leaves', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    table.update(heartbeat('w1', [status('iris', '1')], { draining: true }), 2000);
    expect(table.holders('iris')).toEqual([]);
    expect(table.isKnown('iris')).toBe(true);
  });

  it('knows a model announced as not ready', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1', false)]), 1000);
    expect(table.isKnown('iris')).toBe(true);
  });

  it('lists every model ever announced, by name', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('text-direction', '1'), status('iris', '1')]), 1000);
    table.update(heartbeat('w1', [], { draining: true }), 2000);
    expect(table.knownModels()).toEqual(['iris', 'text-direction']);
  });

  it('says whether a version is served right now', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '2')]), 1000);
    expect(table.hasVersion('iris', '2')).toBe(true);
    expect(table.hasVersion('iris', '1')).toBe(false);
  });

  it('does not know a model never announced', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    expect(table.isKnown('mnist')).toBe(false);
  });
});

describe('expiry after the router was paused', () => {
  /** Calls expire every tick from `from` to `to`, as the router's interval does while it runs. */
  function tick(table: RoutingTable, from: number, to: number): void {
    for (let now = from; now <= to; now += table.tickMs) table.expire(now);
  }

  it('keeps a worker whose heartbeats were queued while the router was paused longer than staleMs', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', []), 1000);
    tick(table, 1000, 1500);
    // Paused 5 s: the first thing to run on resume is the expiry timer, before the queued heartbeats.
    table.expire(1500 + 5000);
    expect(table.get('w1')).toBeDefined();
    table.update(heartbeat('w1', []), 6501);
    expect(table.get('w1')?.lastSeen).toBe(6501);
  });

  it('still expires a worker silent for staleMs of the router\'s running time after a pause', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', []), 1000);
    table.expire(1000);
    table.expire(6000);
    const changes = recording(table);
    tick(table, 6000 + table.tickMs, 6000 + STALE_MS + table.tickMs);
    expect(table.get('w1')).toBeUndefined();
    expect(summary(changes)).toEqual([['left', 'w1']]);
  });

  it('credits nothing when the checks run on time', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', []), 1000);
    tick(table, 1000, 1000 + STALE_MS + table.tickMs);
    expect(table.get('w1')).toBeUndefined();
  });
});

describe('expiry while heartbeats cannot arrive (NATS down)', () => {
  it('keeps every worker however long the heartbeats are missing', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', []), 1000);
    table.suspendExpiry();
    for (let now = 1000; now <= 60_000; now += table.tickMs) table.expire(now);
    expect(table.get('w1')).toBeDefined();
  });

  it('still removes a worker explicitly (a failed direct check) while suspended', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', []), 1000);
    table.suspendExpiry();
    table.remove('w1', 'health check failed');
    expect(table.get('w1')).toBeUndefined();
  });

  it('gives each worker one stale period from the moment heartbeats resume', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', []), 1000);
    table.suspendExpiry();
    table.expire(30_000);
    table.resumeExpiry(30_000);
    table.expire(30_000 + table.tickMs);
    expect(table.get('w1')).toBeDefined();
    for (let now = 30_000; now <= 30_000 + STALE_MS + table.tickMs; now += table.tickMs) table.expire(now);
    expect(table.get('w1')).toBeUndefined();
  });
});

describe('filled', () => {
  it('is not filled until marked, whatever heartbeats arrived', () => {
    const table = new RoutingTable(STALE_MS);
    table.update(heartbeat('w1', [status('iris', '1')]), 1000);
    expect(table.filled).toBe(false);
    table.markFilled();
    expect(table.filled).toBe(true);
  });
});

describe('bounds on announced models', () => {
  const named = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => status(`${prefix}${i}`, '1'));

  it('takes at most MAX_MODELS_PER_HEARTBEAT models from one heartbeat and logs that once', () => {
    const logger = createLogger('test', { level: 'silent' });
    const warn = vi.spyOn(logger, 'warn');
    const table = new RoutingTable(STALE_MS, Math.random, logger);
    table.update(heartbeat('w1', named('m', MAX_MODELS_PER_HEARTBEAT + 500)));
    table.update(heartbeat('w2', named('m', MAX_MODELS_PER_HEARTBEAT + 500)));
    expect(table.knownModels()).toHaveLength(MAX_MODELS_PER_HEARTBEAT);
    expect(table.holders(`m${MAX_MODELS_PER_HEARTBEAT - 1}`)).toHaveLength(2);
    expect(table.isKnown(`m${MAX_MODELS_PER_HEARTBEAT}`)).toBe(false);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatchObject({ announced: MAX_MODELS_PER_HEARTBEAT + 500, taken: MAX_MODELS_PER_HEARTBEAT });
  });

  it('remembers at most MAX_KNOWN_MODELS names, forgetting first the oldest no worker serves', () => {
    const table = new RoutingTable(STALE_MS);
    // The oldest names, and still served.
    table.update(heartbeat('w1', named('s', 1000)));
    table.update(heartbeat('w2', named('gone', 1000)));
    // w2 now serves other models: the "gone" ones are known but served by no one.
    for (const worker of ['w2', 'w3', 'w4']) table.update(heartbeat(worker, named(worker, 1000)));
    expect(table.knownModels()).toHaveLength(MAX_KNOWN_MODELS);
    expect(table.isKnown('gone0')).toBe(false);
    expect(table.isKnown('gone999')).toBe(true);
    for (const name of ['s0', 's999', 'w20', 'w4999']) expect(table.isKnown(name)).toBe(true);
  });

  it('remembers at most MAX_KNOWN_MODELS names even when workers serve more', () => {
    const table = new RoutingTable(STALE_MS);
    for (const worker of ['w1', 'w2', 'w3', 'w4', 'w5']) table.update(heartbeat(worker, named(worker, 1000)));
    expect(table.knownModels()).toHaveLength(MAX_KNOWN_MODELS);
    expect(table.isKnown('w5999')).toBe(true);
  });
});

describe('placement by device', () => {
  const placed = (devices: string[], fallback = true) => ({ ...status('ocr-recognition', '1'), placement: { devices, fallback } });

  function table(models: ModelStatus__Output[], devices: Record<string, string>, logger = createLogger('test', { level: 'silent' })): RoutingTable {
    const t = new RoutingTable(STALE_MS, seeded(7), logger);
    for (const [id, device] of Object.entries(devices)) t.update(heartbeat(id, models, { device }));
    return t;
  }

  it('picks only the workers whose device kind the placement lists', () => {
    const t = table([placed(['gpu'])], { c1: 'cpu', g1: 'gpu0', c2: 'cpu', g2: 'gpu1' });
    const picked = new Set(Array.from({ length: 50 }, () => t.pick('ocr-recognition', '1', none)!.id));
    expect([...picked].sort()).toEqual(['g1', 'g2']);
  });

  it('falls back to any holder when no worker of the kind holds the model, warning once a minute per model', () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const logger = createLogger('test', { level: 'silent' });
      const warn = vi.spyOn(logger, 'warn');
      const t = table([placed(['gpu'])], { c1: 'cpu', c2: 'cpu' }, logger);
      for (let i = 0; i < 10; i++) expect(t.pick('ocr-recognition', '1', none)?.id).toMatch(/^c/);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatchObject({ model: 'ocr-recognition', placement: ['gpu'], holders: 'cpu' });
      vi.setSystemTime(59_000);
      t.pick('ocr-recognition', '1', none);
      expect(warn).toHaveBeenCalledTimes(1);
      vi.setSystemTime(60_000);
      t.pick('ocr-recognition', '1', none);
      expect(warn).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses with UNAVAILABLE naming the placement when fallback is false', () => {
    const t = table([placed(['gpu'], false)], { c1: 'cpu' });
    expect(() => t.pick('ocr-recognition', '1', none)).toThrow("model 'ocr-recognition' is placed on gpu without fallback (placement.fallback: false), and no worker of that kind holds it (holders: cpu)");
    try {
      t.pick('ocr-recognition', '1', none);
    } catch (error) {
      expect((error as { code: number }).code).toBe(14);
    }
  });

  it('picks among every holder for a model without placement', () => {
    const t = table([status('ocr-recognition', '1')], { c1: 'cpu', g1: 'gpu0' });
    const picked = new Set(Array.from({ length: 50 }, () => t.pick('ocr-recognition', '1', none)!.id));
    expect([...picked].sort()).toEqual(['c1', 'g1']);
  });
});
