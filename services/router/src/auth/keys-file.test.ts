/** The keys file: what a valid one gives, and how a wrong entry stops the router. */
import { describe, expect, it } from 'vitest';
import { thrownBy } from '@infermesh/testing';
import { KeysFileError, parseKeysFile } from './keys-file.js';

const DIGEST = 'ab'.repeat(32);

describe('parseKeysFile', () => {
  it('reads every field of a YAML entry', () => {
    const [key] = parseKeysFile(
      `keys:
  - id: reports
    sha256: ${DIGEST}
    models: [iris, text-direction]
    admin: true
    rate: { per_second: 100, burst: 200 }
    quota: { requests: 1000, items: 5000, period: day }
`,
      'keys.yaml',
    );
    expect(key).toEqual({
      id: 'reports',
      digest: Buffer.from(DIGEST, 'hex'),
      models: new Set(['iris', 'text-direction']),
      admin: true,
      rate: { perSecond: 100, burst: 200 },
      quota: { requests: 1000, items: 5000, period: 'day' },
    });
  });

  it('reads JSON, with "*" for every model, no admin and no limits by default', () => {
    const keys = parseKeysFile(JSON.stringify({ keys: [{ id: 'all', sha256: DIGEST, models: '*' }] }), 'keys.json');
    expect(keys).toEqual([{ id: 'all', digest: Buffer.from(DIGEST, 'hex'), models: '*', admin: false }]);
  });

  it('gives a rate without a burst a burst of one second of requests', () => {
    const [key] = parseKeysFile(JSON.stringify({ keys: [{ id: 'a', sha256: DIGEST, models: '*', rate: { per_second: 2.5 } }] }), 'keys.json');
    expect(key.rate).toEqual({ perSecond: 2.5, burst: 3 });
  });

  it('names the entry, its id and the field of a wrong entry, without quoting the digest', () => {
    const text = JSON.stringify({ keys: [{ id: 'ok', sha256: DIGEST, models: '*' }, { id: 'bad', sha256: 'AB'.repeat(32), models: '*' }] });
    const error = thrownBy(() => parseKeysFile(text, 'keys.json'), KeysFileError);
    expect(error.message).toMatch(/^keys\.json entry 2 \(id 'bad'\): sha256: must be 64 lowercase hex digits/);
    expect(error.message).not.toContain('AB'.repeat(32));
  });

  it('refuses a quota that limits neither requests nor items', () => {
    const text = JSON.stringify({ keys: [{ id: 'q', sha256: DIGEST, models: '*', quota: { period: 'day' } }] });
    expect(thrownBy(() => parseKeysFile(text, 'keys.json'), KeysFileError).message).toMatch(/entry 1 \(id 'q'\): quota: needs requests, items or both/);
  });

  it('refuses a field it does not know, so a misspelt limit is not silently ignored', () => {
    const text = JSON.stringify({ keys: [{ id: 'r', sha256: DIGEST, models: '*', rate: { per_sec: 5 } }] });
    expect(thrownBy(() => parseKeysFile(text, 'keys.json'), KeysFileError).message).toMatch(/entry 1 \(id 'r'\): rate/);
  });

  it('refuses two entries with one id', () => {
    const entry = { id: 'twice', sha256: DIGEST, models: '*' };
    expect(thrownBy(() => parseKeysFile(JSON.stringify({ keys: [entry, entry] }), 'k.json'), KeysFileError).message).toBe("k.json entry 2 (id 'twice'): the id is used by an earlier entry");
  });

  it('refuses a file without a keys list', () => {
    expect(thrownBy(() => parseKeysFile('- id: a\n', 'k.yaml'), KeysFileError).message).toMatch(/^k\.yaml must hold 'keys:'/);
  });

  it('refuses text that is not YAML', () => {
    expect(thrownBy(() => parseKeysFile('keys: [\n', 'k.yaml'), KeysFileError).message).toMatch(/^k\.yaml is neither YAML nor JSON/);
  });
});
