/** The worker roster: the latest heartbeat per worker, forgotten after 5 s of silence, bounded whatever arrives. */
import { describe, expect, it } from 'vitest';
import { PrometheusText } from './prometheus-text.js';
import { WorkerRoster, type RosterHeartbeat } from './workers.js';

function heartbeat(overrides: Partial<RosterHeartbeat> = {}): RosterHeartbeat {
  return { workerId: 'worker-a', device: 'cpu', executionProvider: 'cpu', queueDepth: 0, inFlight: 0, draining: false, models: [{ name: 'iris', version: '1', ready: true }], ...overrides };
}

function clock(start = 1_000_000) {
  const c = { ms: start, now: () => c.ms };
  return c;
}

describe('WorkerRoster', () => {
  it('keeps the latest heartbeat of each worker: device, provider, models, queue depth, in-flight, last seen', () => {
    const time = clock();
    const roster = new WorkerRoster({ now: time.now });
    roster.observe(heartbeat({ queueDepth: 1 }));
    time.ms += 1000;
    roster.observe(heartbeat({ queueDepth: 7, inFlight: 2, device: 'gpu0', executionProvider: 'cuda' }));
    expect(roster.workers()).toEqual([{
      id: 'worker-a', device: 'gpu0', provider: 'cuda', models: [{ name: 'iris', version: '1', ready: true }],
      queueDepth: 7, inFlight: 2, draining: false, rssBytes: null, lastSeenMs: time.ms,
    }]);
  });

  it('keeps the resident memory the worker reports, and none where it reports 0, nothing or a figure that is no byte count', () => {
    const roster = new WorkerRoster();
    roster.observe(heartbeat({ workerId: 'reports', rssBytes: '222703616' }));
    roster.observe(heartbeat({ workerId: 'zero', rssBytes: '0' }));
    roster.observe(heartbeat({ workerId: 'older' }));
    roster.observe(heartbeat({ workerId: 'absurd', rssBytes: '99999999999999999999' }));
    expect(Object.fromEntries(roster.workers().map((w) => [w.id, w.rssBytes]))).toEqual({ reports: 222703616, zero: null, older: null, absurd: null });
  });

  it('forgets a worker silent for 5 s', () => {
    const time = clock();
    const roster = new WorkerRoster({ now: time.now });
    roster.observe(heartbeat());
    time.ms += 4999;
    expect(roster.workers()).toHaveLength(1);
    time.ms += 1;
    expect(roster.workers()).toEqual([]);
    expect(roster.servingWorkers('iris')).toBe(0);
  });

  it('counts as serving a model only the fresh workers with a ready version of it that are not draining', () => {
    const roster = new WorkerRoster();
    roster.observe(heartbeat({ workerId: 'a' }));
    roster.observe(heartbeat({ workerId: 'b', models: [{ name: 'iris', version: '1', ready: true }, { name: 'iris', version: '2', ready: true }] }));
    roster.observe(heartbeat({ workerId: 'loading', models: [{ name: 'iris', version: '1', ready: false }] }));
    roster.observe(heartbeat({ workerId: 'leaving', draining: true }));
    expect(roster.servingWorkers('iris')).toBe(2);
    expect(roster.servingWorkers('resnet')).toBe(0);
    expect(roster.workers().find((w) => w.id === 'leaving')?.draining).toBe(true);
  });

  it('holds at most maxWorkers workers, taking a new one once a listed one has gone silent', () => {
    const time = clock();
    const roster = new WorkerRoster({ maxWorkers: 2, now: time.now });
    expect(roster.observe(heartbeat({ workerId: 'a' }))).toBe('taken');
    expect(roster.observe(heartbeat({ workerId: 'b' }))).toBe('taken');
    expect(roster.observe(heartbeat({ workerId: 'c' }))).toBe('roster_full');
    expect(roster.observe(heartbeat({ workerId: 'a', queueDepth: 3 }))).toBe('taken');
    time.ms += 5000;
    expect(roster.observe(heartbeat({ workerId: 'c' }))).toBe('taken');
    expect(roster.workers().map((w) => w.id)).toEqual(['c']);
    expect(roster.ignoredCounts()).toEqual({ roster_full: 1, bad_id: 0 });
  });

  it('takes no worker id that cannot be a label, nor model names longer than one, and cuts long device names', () => {
    const roster = new WorkerRoster({ maxModelsPerWorker: 2 });
    expect(roster.observe(heartbeat({ workerId: '' }))).toBe('bad_id');
    expect(roster.observe(heartbeat({ workerId: 'w'.repeat(129) }))).toBe('bad_id');
    roster.observe(heartbeat({
      device: 'd'.repeat(1000),
      models: [{ name: 'm'.repeat(129), version: '1', ready: true }, { name: 'a', version: '1', ready: true }, { name: 'b', version: '1', ready: true }, { name: 'c', version: '1', ready: true }],
    }));
    const [worker] = roster.workers();
    expect(worker.models.map((m) => m.name)).toEqual(['a', 'b']);
    expect(worker.device).toHaveLength(64);
  });

  it('writes the gauges an autoscaler reads, and a model whose workers left as serving 0', () => {
    const time = clock();
    const roster = new WorkerRoster({ now: time.now });
    roster.observe(heartbeat({ workerId: 'gone', models: [{ name: 'resnet', version: '3', ready: true }] }));
    time.ms += 3000;
    roster.observe(heartbeat({ workerId: 'w"1', device: 'gpu0', executionProvider: 'cuda', queueDepth: 4, inFlight: 2, rssBytes: '222703616' }));
    time.ms += 3000;
    const out = new PrometheusText();
    roster.writePrometheus(out);
    const text = out.toString();
    expect(text).toContain('infermesh_worker_up{worker="w\\"1",device="gpu0",provider="cuda"} 1\n');
    expect(text).toContain('infermesh_worker_queue_depth{worker="w\\"1",device="gpu0"} 4\n');
    expect(text).toContain('infermesh_worker_in_flight{worker="w\\"1",device="gpu0"} 2\n');
    expect(text).toContain('infermesh_worker_resident_memory_bytes{worker="w\\"1",device="gpu0"} 222703616\n');
    expect(text).toContain('infermesh_model_serving_workers{model="iris"} 1\n');
    expect(text).toContain('infermesh_model_serving_workers{model="resnet"} 0\n');
    expect(text).not.toContain('worker="gone"');
  });

  it('makes room past maxModels for a newly served model by forgetting the one longest without a worker', () => {
    const time = clock();
    const roster = new WorkerRoster({ now: time.now, maxModels: 2 });
    const serving = (workerId: string, name: string) => heartbeat({ workerId, models: [{ name, version: '1', ready: true }] });
    roster.observe(serving('w1', 'retired'));
    roster.observe(serving('w2', 'kept'));
    time.ms += 6000;
    roster.observe(serving('w2', 'kept'));
    roster.observe(serving('w3', 'new'));
    const out = new PrometheusText();
    roster.writePrometheus(out);
    const gauge = out.toString().split('\n').filter((line) => line.startsWith('infermesh_model_serving_workers{'));
    expect(gauge).toEqual(['infermesh_model_serving_workers{model="kept"} 1', 'infermesh_model_serving_workers{model="new"} 1']);
  });

  it('keeps the models served now when maxModels of them are, and lists no further one', () => {
    const roster = new WorkerRoster({ maxModels: 1 });
    roster.observe(heartbeat({ workerId: 'w1', models: [{ name: 'first', version: '1', ready: true }] }));
    roster.observe(heartbeat({ workerId: 'w2', models: [{ name: 'second', version: '1', ready: true }] }));
    const out = new PrometheusText();
    roster.writePrometheus(out);
    expect(out.toString()).toContain('infermesh_model_serving_workers{model="first"} 1\n');
    expect(out.toString()).not.toContain('model="second"');
  });

  it('writes a draining worker as down', () => {
    const roster = new WorkerRoster();
    roster.observe(heartbeat({ draining: true }));
    const out = new PrometheusText();
    roster.writePrometheus(out);
    expect(out.toString()).toContain('infermesh_worker_up{worker="worker-a",device="cpu",provider="cpu"} 0\n');
  });
});
