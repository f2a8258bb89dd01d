import { describe, expect, it } from 'vitest';
import { WeightedSplit } from './traffic-split.js';

const everyVersion = () => true;

function countPicks(split: WeightedSplit, picks: number, served: (v: string) => boolean = everyVersion): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < picks; i++) {
    const version = split.next(served) ?? 'none';
    counts[version] = (counts[version] ?? 0) + 1;
  }
  return counts;
}

describe('WeightedSplit', () => {
  it('shares 2,000 picks within 5 % of the weights (90/10: 1,800 and 200)', () => {
    const counts = countPicks(new WeightedSplit([{ version: '1', weight: 90 }, { version: '2', weight: 10 }]), 2000);
    expect(Math.abs(counts['1'] / 2000 - 0.9)).toBeLessThanOrEqual(0.05);
    expect(Math.abs(counts['2'] / 2000 - 0.1)).toBeLessThanOrEqual(0.05);
    expect(counts).toEqual({ '1': 1800, '2': 200 });
  });

  it('keeps every prefix of the picks within one request of each share (no runs of one version)', () => {
    const split = new WeightedSplit([{ version: '1', weight: 3 }, { version: '2', weight: 2 }, { version: '3', weight: 5 }]);
    const counts: Record<string, number> = { '1': 0, '2': 0, '3': 0 };
    for (let n = 1; n <= 1000; n++) {
      counts[split.next(everyVersion)!] += 1;
      for (const [version, share] of [['1', 0.3], ['2', 0.2], ['3', 0.5]] as const) expect(Math.abs(counts[version] - share * n)).toBeLessThan(1 + 1e-9);
    }
  });

  it('leaves out a version that is not served: the others share its weight', () => {
    const counts = countPicks(new WeightedSplit([{ version: '1', weight: 50 }, { version: '2', weight: 25 }, { version: '3', weight: 25 }]), 300, (v) => v !== '3');
    expect(counts).toEqual({ '1': 200, '2': 100 });
  });

  it('picks nothing when no weighted version is served, and never a version of weight 0', () => {
    expect(new WeightedSplit([{ version: '1', weight: 1 }]).next(() => false)).toBeUndefined();
    expect(countPicks(new WeightedSplit([{ version: '1', weight: 0 }, { version: '2', weight: 1 }]), 10)).toEqual({ '2': 10 });
  });
});
