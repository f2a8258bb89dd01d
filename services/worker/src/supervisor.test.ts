/** The supervisor's restart delay: doubling in a crash loop, back to the first delay after a worker stayed up. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '@infermesh/log';
import { RestartBackoff, Supervisor } from './supervisor.js';

describe('RestartBackoff', () => {
  const options = { initialMs: 1000, maxMs: 30_000, resetAfterMs: 30_000 };

  it('doubles the delay while the worker dies soon after each start, up to the maximum', () => {
    let now = 0;
    const backoff = new RestartBackoff(options, () => now);
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      backoff.started();
      now += 100;
      delays.push(backoff.exited());
      now += delays.at(-1)!;
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });

  it('starts over at the first delay once a worker has stayed up for resetAfterMs', () => {
    let now = 0;
    const backoff = new RestartBackoff(options, () => now);
    for (let i = 0; i < 5; i++) {
      backoff.started();
      backoff.exited();
    }
    backoff.started();
    now += 30_000;
    expect(backoff.exited()).toBe(1000);
    backoff.started();
    expect(backoff.exited()).toBe(2000);
  });
});

describe('Supervisor', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  it('waits the first delay again after a worker that had stayed up, and doubles it in a crash loop (a stand-in worker, short settings)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'supervisor-test-'));
    dirs.push(dir);
    // Exits at once on its first three starts, stays up 3.5 s on the fourth (node starting counts as up: the margins are wide), then exits at once again.
    const script = join(dir, 'worker.mjs');
    writeFileSync(script, `
      import { appendFileSync, readFileSync } from 'node:fs';
      const starts = '${join(dir, 'starts')}';
      appendFileSync(starts, 'x');
      const n = readFileSync(starts, 'utf8').length;
      setTimeout(() => process.exit(1), n === 4 ? 3500 : 0);
    `);
    const delays: number[] = [];
    const logger = {
      info: () => {},
      error: (fields: { restart_in_ms?: number }) => void (fields.restart_in_ms !== undefined && delays.push(fields.restart_in_ms)),
    } as unknown as Logger;
    const supervisor = new Supervisor({
      slots: [{ id: 'cpu0', device: 'cpu' }], idPrefix: 'test', gpuProviders: [], basePort: 0, logger,
      backoff: { initialMs: 20, maxMs: 1000, resetAfterMs: 3000 }, workerMain: script,
    });
    supervisor.start();
    for (let i = 0; i < 200 && delays.length < 5; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    await supervisor.stop(1000);
    expect(delays.slice(0, 5)).toEqual([20, 40, 80, 20, 40]);
  });
});
