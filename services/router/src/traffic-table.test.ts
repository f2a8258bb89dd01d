import { describe, expect, it } from 'vitest';
import type { TrafficPolicy__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { MAX_SHADOW_VERSIONS, MAX_WEIGHTED_VERSIONS, TrafficTable, policyProblem } from './traffic-table.js';

const logger = createLogger('traffic-table-test', { level: 'silent' });

function policy(overrides: Partial<TrafficPolicy__Output> = {}): TrafficPolicy__Output {
  return { model: 'iris', weights: [], shadowVersions: [], setBy: 'alice@laptop', setAtMs: '1', reason: '', ...overrides };
}

describe('TrafficTable', () => {
  it('picks versions by the weights of the model\'s policy, and none for a model without one', () => {
    const table = new TrafficTable(logger);
    table.apply(policy({ weights: [{ version: '1', weight: 1 }, { version: '2', weight: 1 }] }));
    expect([table.versionFor('iris', () => true), table.versionFor('iris', () => true), table.versionFor('other', () => true)]).toEqual(['1', '2', undefined]);
  });

  it('applies a changed policy in place of the old one, and a cleared one removes it', () => {
    const table = new TrafficTable(logger);
    table.apply(policy({ weights: [{ version: '1', weight: 1 }], shadowVersions: ['2'] }));
    table.apply(policy({ weights: [{ version: '2', weight: 1 }] }));
    expect([table.versionFor('iris', () => true), table.shadowsOf('iris')]).toEqual(['2', []]);
    table.apply(policy());
    expect([table.versionFor('iris', () => true), table.shadowsOf('iris')]).toEqual([undefined, []]);
  });

  it('refuses a malformed policy whole, keeping the one the model had', () => {
    const table = new TrafficTable(logger);
    table.apply(policy({ weights: [{ version: '1', weight: 1 }] }));
    expect(table.apply(policy({ weights: [{ version: '2', weight: 1 }, { version: 'latest', weight: 1 }] }))).toBe(false);
    expect(table.versionFor('iris', () => true)).toBe('1');
  });

  it.each([
    ['no model', policy({ model: '' }), /names no model/],
    ['too many versions', policy({ weights: Array.from({ length: MAX_WEIGHTED_VERSIONS + 1 }, (_, i) => ({ version: String(i + 1), weight: 1 })) }), /weighs 17 versions/],
    ['too many shadows', policy({ shadowVersions: Array.from({ length: MAX_SHADOW_VERSIONS + 1 }, (_, i) => String(i + 1)) }), /shadow versions \(at most/],
    ['a version weighed twice', policy({ weights: [{ version: '1', weight: 1 }, { version: '1', weight: 2 }] }), /weighed twice/],
    ['an absurd weight', policy({ weights: [{ version: '1', weight: 2_000_000 }] }), /weight 2000000/],
    ['only zero weights', policy({ weights: [{ version: '1', weight: 0 }] }), /every weight is 0/],
    ['a shadow that is not a version', policy({ shadowVersions: ['../2'] }), /not a version number/],
  ])('says what is wrong with a policy with %s', (_name, bad, why) => {
    expect(policyProblem(bad)).toMatch(why);
  });
});
