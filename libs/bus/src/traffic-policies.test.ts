/** trafficPolicies against a real nats-server with the mesh's users: operators write, routers watch. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrafficPolicy__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { connectBus, natsConnectOptions, trafficPolicies, type Bus } from './index.js';

const logger = createLogger('traffic-test', { level: 'silent' });
let nats: NatsServer;
let operator: Bus;
let router: Bus;

const connectAs = (role: 'operator' | 'router') =>
  connectBus({ url: nats.url, name: `traffic-test-${role}`, prefix: 'infermesh', logger, connectOptions: natsConnectOptions(nats.credentials(role)) });

beforeAll(async () => {
  nats = await startNatsServer({ auth: true });
  operator = await connectAs('operator');
  router = await connectAs('router');
}, 30_000);

afterAll(async () => {
  await operator?.drain();
  await router?.drain();
  await nats?.stop();
}, 30_000);

const policy = (model: string, weights: Record<string, number>, shadows: string[] = []) => ({
  model, weights: Object.entries(weights).map(([version, weight]) => ({ version, weight })), shadowVersions: shadows, setBy: 'tester@host', setAtMs: String(Date.now()), reason: '',
});

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('traffic policies', () => {
  it('gives back the last policy an operator put for a model, and nothing for a model without one', async () => {
    const store = await trafficPolicies(operator);
    await store.put(policy('iris', { '1': 100 }));
    await store.put(policy('iris', { '1': 90, '2': 10 }, ['3']));
    const got = await store.get('iris');
    expect([got?.weights, got?.shadowVersions, got?.setBy]).toEqual([[{ version: '1', weight: 90 }, { version: '2', weight: 10 }], ['3'], 'tester@host']);
    expect(await store.get('never-set')).toBeUndefined();
  });

  it('replaces a policy only at the revision it was read at: a change in between makes it refuse', async () => {
    const store = await trafficPolicies(operator);
    const empty = await store.read('cas');
    expect(empty).toEqual({ revision: 0 });
    expect(await store.replace(policy('cas', { '1': 90, '2': 10 }), empty.revision)).toBe(true);
    const read = await store.read('cas');
    await store.put(policy('cas', { '1': 100 }));
    expect(await store.replace(policy('cas', { '2': 100 }), read.revision)).toBe(false);
    expect((await store.get('cas'))?.weights).toEqual([{ version: '1', weight: 100 }]);
  });

  it('a router watching reads the current policy of each model first, then each change as it is put', async () => {
    const store = await trafficPolicies(operator);
    await store.put(policy('watched-a', { '1': 50, '2': 50 }));
    await store.put(policy('watched-b', { '2': 1 }));
    const seen: TrafficPolicy__Output[] = [];
    const watch = await (await trafficPolicies(router)).watch((p) => seen.push(p), () => undefined);
    await watch.current;
    expect(seen.filter((p) => p.model.startsWith('watched-')).map((p) => p.model).sort()).toEqual(['watched-a', 'watched-b']);
    await store.put(policy('watched-a', { '1': 10, '2': 90 }));
    await until(() => seen.some((p) => p.model === 'watched-a' && p.weights[0]?.weight === 10));
    await watch.stop();
  });

  it('a router may watch the policies but not change them', async () => {
    const store = await trafficPolicies(router);
    await expect(store.put(policy('iris', { '2': 100 }))).rejects.toThrow();
    expect((await (await trafficPolicies(operator)).get('iris'))?.weights).not.toEqual([{ version: '2', weight: 100 }]);
  });
});
