import { describe, expect, it } from 'vitest';
import type { Alert__Output, ModelStats__Output } from '@infermesh/contracts';
import { formatMonitorFigures, monitorFigures } from './monitor-figures.js';

const stats = (version: string, requests: number, errors: number, p99Ms: number) =>
  ({ model: 'iris', version, requestCount: String(requests), errorCount: String(errors), latency: { p50Ms: 1, p90Ms: 2, p99Ms }, items: String(requests), lastRequestMs: '0' }) as ModelStats__Output;

describe('the monitor figures of a rollout status', () => {
  it('shows requests, errors and p99 per version, and the alerts firing for the model', () => {
    const firing = [{ rule: 'canary-errors', model: 'iris', state: 'firing', summary: 'error rate of iris 2 over 2m is 40.0 %, above 10.0 % for 30s' }, { rule: 'other', model: 'resnet', state: 'firing', summary: 'x' }] as Alert__Output[];
    expect(formatMonitorFigures('iris', [stats('2', 50, 20, 4.5), stats('1', 450, 0, 3.25)], firing)).toEqual([
      '  version 1: 450 requests, 0 errors (0.0 %), p99 3.25 ms',
      '  version 2: 50 requests, 20 errors (40.0 %), p99 4.50 ms',
      '  firing: canary-errors: error rate of iris 2 over 2m is 40.0 %, above 10.0 % for 30s',
    ]);
  });

  it('says in one line that a monitor cannot be reached', async () => {
    const [line] = await monitorFigures('127.0.0.1:1', 'iris');
    expect(line).toMatch(/^monitor at 127\.0\.0\.1:1: no figures \(/);
  });
});
