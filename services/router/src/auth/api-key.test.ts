/** The key format: what a key looks like, what is stored of it, and which presented strings match. */
import { describe, expect, it } from 'vitest';
import { createApiKey, keyIdOf, matchesDigest, sha256Of, MAX_KEY_LENGTH } from './api-key.js';

describe('createApiKey', () => {
  it('makes imk_<id>_<43 base64url characters> (256 random bits)', () => {
    const { key } = createApiKey('reports-1');
    expect(key).toMatch(/^imk_reports-1_[A-Za-z0-9_-]{43}$/);
    expect(createApiKey('reports-1').key).not.toBe(key);
  });

  it('gives the hex SHA-256 of the whole key as the digest to store', () => {
    const { key, sha256 } = createApiKey('a');
    expect(sha256).toBe(sha256Of(key));
    expect(sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(sha256).not.toContain(key.slice(6));
  });

  it('refuses an id with an underscore, which would end the id early', () => {
    expect(() => createApiKey('my_key')).toThrow(/letters, digits and dashes/);
  });
});

describe('keyIdOf', () => {
  it('reads the id of a well-formed key, whatever the secret holds', () => {
    const { key } = createApiKey('team-7');
    expect(keyIdOf(key)).toBe('team-7');
    expect(keyIdOf(`imk_x_${'_'.repeat(43)}`)).toBe('x');
  });

  it.each([
    ['no prefix', `key_a_${'A'.repeat(43)}`],
    ['no secret', 'imk_a'],
    ['a short secret', `imk_a_${'A'.repeat(42)}`],
    ['a secret outside base64url', `imk_a_${'A'.repeat(42)}=`],
    ['an empty id', `imk__${'A'.repeat(43)}`],
    ['more than the longest key', `imk_a_${'A'.repeat(MAX_KEY_LENGTH)}`],
  ])('finds no id in a string with %s', (_, presented) => {
    expect(keyIdOf(presented)).toBeUndefined();
  });
});

describe('matchesDigest', () => {
  it('matches the key the digest was made from, and no key differing in one character', () => {
    const { key, sha256 } = createApiKey('a');
    const digest = Buffer.from(sha256, 'hex');
    expect(matchesDigest(key, digest)).toBe(true);
    const last = key.at(-1) === 'A' ? 'B' : 'A';
    expect(matchesDigest(key.slice(0, -1) + last, digest)).toBe(false);
  });
});
