import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsConnectOptions } from '@infermesh/bus';
import { startNatsServer, type NatsServer } from '@infermesh/testing';
import { applyTraffic, changedPolicy, describePolicy, parseShadows, parseWeights } from './traffic.js';

describe('infermesh traffic options', () => {
  it('reads --weights as versions and weights', () => {
    expect(parseWeights('1=90, 2=10')).toEqual([{ version: '1', weight: 90 }, { version: '2', weight: 10 }]);
  });

  it.each([['1:90', /not VERSION=WEIGHT/], ['latest=1', /not a version number/], ['1=0.5', /integer/], ['1=1,1=2', /named twice/], ['1=0', /every weight is 0/]])(
    'refuses --weights %s, saying why',
    (text, why) => expect(() => parseWeights(text)).toThrow(why),
  );

  it('reads --shadow as versions, and none as no shadow', () => {
    expect([parseShadows('2,3'), parseShadows('none')]).toEqual([['2', '3'], []]);
    expect(() => parseShadows('2,x')).toThrow(/not a version number/);
  });

  it('replaces only the parts of the policy an option names, and --clear empties it', () => {
    const current = { model: 'iris', weights: [{ version: '1', weight: 1 }], shadowVersions: ['2'], setBy: 'a', setAtMs: '1', reason: '' };
    expect(changedPolicy('iris', current, { shadows: ['3'] }, 'bob@host', 'try 3', 5)).toEqual({ model: 'iris', weights: [{ version: '1', weight: 1 }], shadowVersions: ['3'], setBy: 'bob@host', setAtMs: '5', reason: 'try 3' });
    expect(changedPolicy('iris', current, { clear: true }, 'bob@host', '', 5)).toMatchObject({ weights: [], shadowVersions: [] });
  });

  it('describes a policy in percentages, with who set it', () => {
    expect(describePolicy('iris', { model: 'iris', weights: [{ version: '1', weight: 9 }, { version: '2', weight: 1 }], shadowVersions: ['3'], setBy: 'bob@host', setAtMs: '0', reason: '' })).toEqual([
      'iris: version 1 90.0 %, version 2 10.0 %', '  shadow versions: 3', '  set by bob@host at unknown',
    ]);
  });
});

describe('infermesh traffic against NATS, as the operator', () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await startNatsServer({ auth: true });
  }, 30_000);
  afterAll(async () => {
    await nats?.stop();
  });

  it('shows no policy at first, then the one it set, with who set it', async () => {
    const target = { natsUrl: nats.url, connectOptions: natsConnectOptions(nats.credentials('operator')) };
    expect(await applyTraffic(target, 'iris', undefined, 'bob@host')).toBeUndefined();
    await applyTraffic(target, 'iris', { weights: parseWeights('1=90,2=10') }, 'bob@host', 'canary');
    const shown = await applyTraffic(target, 'iris', { shadows: ['3'] }, 'alice@host');
    expect(shown).toMatchObject({ weights: [{ version: '1', weight: 90 }, { version: '2', weight: 10 }], shadowVersions: ['3'], setBy: 'alice@host' });
  });
});
