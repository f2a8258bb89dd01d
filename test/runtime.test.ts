/**
 * The project runs on Node.js 24 LTS: `npm install` brings it into node_modules/.bin (the
 * `node` package), which npm scripts put first on PATH, so the tests, and the services they
 * start with process.execPath, run on it even where the system Node.js is older.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const major = (version: string) => Number(version.replace(/^v/, '').split('.')[0]);

describe('the runtime', () => {
  it('is Node.js 24 or newer', () => {
    expect(major(process.versions.node)).toBeGreaterThanOrEqual(24);
  });

  it('is what the services are started with', () => {
    const version = execFileSync(process.execPath, ['--version'], { encoding: 'utf8' }).trim();
    expect(major(version)).toBeGreaterThanOrEqual(24);
  });
});
