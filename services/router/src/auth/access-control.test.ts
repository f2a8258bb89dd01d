/** Who may call what: keys read from call metadata, checked against their policies. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { ServiceError, Status } from '@infermesh/grpc';
import { thrownBy } from '@infermesh/testing';
import type { Logger } from '@infermesh/log';
import { ApiKeyAccess, accessControlFor, presentedKey } from './access-control.js';
import { createApiKey } from './api-key.js';
import { KeysFileError, type KeyPolicy } from './keys-file.js';

function policy(id: string, fields: Partial<KeyPolicy> = {}): { key: string; policy: KeyPolicy } {
  const { key, sha256 } = createApiKey(id);
  return { key, policy: { id, digest: Buffer.from(sha256, 'hex'), models: '*', admin: false, ...fields } };
}

function bearer(key: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  return metadata;
}

const refusal = (run: () => unknown) => {
  const error = thrownBy(run, ServiceError);
  return { code: Status[error.code], message: error.message };
};

describe('presentedKey', () => {
  it('reads a bearer token, whatever the scheme\'s case', () => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', 'bearer  imk_a_x');
    expect(presentedKey(metadata)).toBe('imk_a_x');
  });

  it('reads x-api-key', () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-api-key', 'imk_a_x');
    expect(presentedKey(metadata)).toBe('imk_a_x');
  });

  it('takes no key from another authorization scheme', () => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', 'Basic dXNlcjpwYXNz');
    expect(presentedKey(metadata)).toBeUndefined();
  });

  it('reads x-api-key beside another authorization scheme (a proxy\'s credentials)', () => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', 'Basic dXNlcjpwYXNz');
    metadata.set('x-api-key', 'imk_a_x');
    expect(presentedKey(metadata)).toBe('imk_a_x');
  });
});

describe('ApiKeyAccess.authorize', () => {
  const reader = policy('reader', { models: new Set(['iris']) });
  const admin = policy('ops', { admin: true });
  const access = new ApiKeyAccess([reader.policy, admin.policy]);

  it('lets the probes through without a key', () => {
    expect(access.authorize('ServerLive', new grpc.Metadata()).keyId).toBe('');
    expect(access.authorize('ServerReady', new grpc.Metadata()).keyId).toBe('');
  });

  it('refuses a call without a key as UNAUTHENTICATED, saying how to send one', () => {
    expect(refusal(() => access.authorize('ModelInfer', new grpc.Metadata()))).toEqual({ code: 'UNAUTHENTICATED', message: "missing API key: send 'authorization: Bearer <key>'" });
  });

  it('refuses a key whose secret does not match its id\'s digest, without echoing it', () => {
    const forged = `imk_reader_${'A'.repeat(43)}`;
    expect(refusal(() => access.authorize('ModelInfer', bearer(forged)))).toEqual({ code: 'UNAUTHENTICATED', message: 'unknown API key' });
  });

  it('refuses a well-formed key of an id not in the file', () => {
    expect(refusal(() => access.authorize('ServerMetadata', bearer(createApiKey('stranger').key)))).toEqual({ code: 'UNAUTHENTICATED', message: 'unknown API key' });
  });

  it('names the caller by its key id', () => {
    expect(access.authorize('ModelInfer', bearer(reader.key)).keyId).toBe('reader');
  });

  it('refuses an admin call by a key that is not an admin key', () => {
    expect(refusal(() => access.authorize('ModelStatistics', bearer(reader.key)))).toEqual({ code: 'PERMISSION_DENIED', message: 'key reader may not call ModelStatistics: it is not an admin key' });
    expect(access.authorize('RepositoryIndex', bearer(admin.key)).keyId).toBe('ops');
  });

  it('lets only admin keys load and unload models', () => {
    for (const method of ['RepositoryModelLoad', 'RepositoryModelUnload']) {
      expect(refusal(() => access.authorize(method, bearer(reader.key))).code).toBe('PERMISSION_DENIED');
      expect(access.authorize(method, bearer(admin.key)).keyId).toBe('ops');
    }
  });

  it('refuses a model outside the key\'s list, naming the model (bounded) and the key', () => {
    const caller = access.authorize('ModelInfer', bearer(reader.key));
    expect(() => caller.admitInference('iris', 1)).not.toThrow();
    expect(refusal(() => caller.admitInference('text-direction', 1))).toEqual({ code: 'PERMISSION_DENIED', message: "key reader may not call model 'text-direction'" });
    expect(refusal(() => caller.admitInference('m'.repeat(100_000), 1)).message.length).toBeLessThan(200);
  });
});

describe('rate limits and quotas', () => {
  it('refuses a key over its rate as RESOURCE_EXHAUSTED, and serves it again once the bucket refills', () => {
    let now = 0;
    const limited = policy('bursty', { rate: { perSecond: 2, burst: 2 } });
    const caller = new ApiKeyAccess([limited.policy], { monotonic: () => now }).authorize('ModelInfer', bearer(limited.key));
    caller.admitInference('iris', 1);
    caller.admitInference('iris', 1);
    expect(refusal(() => caller.admitInference('iris', 1))).toEqual({ code: 'RESOURCE_EXHAUSTED', message: 'key bursty is over its rate limit of 2 requests/s' });
    now = 500;
    expect(() => caller.admitInference('iris', 1)).not.toThrow();
  });

  it('takes from the rate for calls other than inference, when the call is made', () => {
    const limited = policy('meta', { rate: { perSecond: 1, burst: 1 } });
    const access = new ApiKeyAccess([limited.policy], { monotonic: () => 0 });
    access.authorize('ServerMetadata', bearer(limited.key));
    expect(refusal(() => access.authorize('ModelMetadata', bearer(limited.key))).code).toBe('RESOURCE_EXHAUSTED');
  });

  it('refuses a key past its quota, naming the quota and when it resets', () => {
    const capped = policy('trial', { quota: { items: 3, period: 'day' } });
    const caller = new ApiKeyAccess([capped.policy], { wall: () => Date.UTC(2026, 10, 27, 9) }).authorize('ModelInfer', bearer(capped.key));
    caller.admitInference('iris', 3);
    expect(refusal(() => caller.admitInference('iris', 1))).toEqual({ code: 'RESOURCE_EXHAUSTED', message: 'key trial has used its quota of 3 items per day; it resets at 2026-11-28T00:00:00Z' });
  });

  it('keeps one rate per key across calls, so a stream or new connection does not start a fresh bucket', () => {
    const limited = policy('shared', { rate: { perSecond: 1, burst: 1 } });
    const access = new ApiKeyAccess([limited.policy], { monotonic: () => 0 });
    access.authorize('ModelInfer', bearer(limited.key)).admitInference('iris', 1);
    expect(refusal(() => access.authorize('ModelStreamInfer', bearer(limited.key)).admitInference('iris', 1)).code).toBe('RESOURCE_EXHAUSTED');
  });
});

describe('accessControlFor', () => {
  it('serves every call without a key when no keys file is set, and warns that the API is open', async () => {
    const warnings: unknown[][] = [];
    const logger = { warn: (...args: unknown[]) => warnings.push(args), info: () => {} } as unknown as Logger;
    const access = await accessControlFor(undefined, logger);
    expect(access.required).toBe(false);
    expect(access.authorize('ModelStatistics', new grpc.Metadata()).keyId).toBe('');
    expect(String(warnings[0]?.at(-1))).toMatch(/^the API is open: ROUTER_API_KEYS_FILE is not set/);
  });

  it('stops the start with the file\'s name when the keys file cannot be read', async () => {
    const logger = { warn: () => {}, info: () => {} } as unknown as Logger;
    await expect(accessControlFor('/nonexistent/keys.yaml', logger)).rejects.toThrow(new KeysFileError('cannot read the keys file /nonexistent/keys.yaml: ENOENT'));
  });
});

describe('reloading the keys', () => {
  it('keeps a key\'s quota counts across a reload that leaves its limits as they were', () => {
    const trial = policy('trial', { quota: { requests: 1, period: 'day' } });
    const access = new ApiKeyAccess([trial.policy]);
    access.authorize('ModelInfer', bearer(trial.key)).admitInference('iris', 1);
    access.replace([{ ...trial.policy, models: new Set(['iris']) }]);
    expect(refusal(() => access.authorize('ModelInfer', bearer(trial.key)).admitInference('iris', 1)).code).toBe('RESOURCE_EXHAUSTED');
  });

  it('counts afresh for a key whose quota changed', () => {
    const trial = policy('trial', { quota: { requests: 1, period: 'day' } });
    const access = new ApiKeyAccess([trial.policy]);
    access.authorize('ModelInfer', bearer(trial.key)).admitInference('iris', 1);
    access.replace([{ ...trial.policy, quota: { requests: 2, period: 'day' } }]);
    expect(() => access.authorize('ModelInfer', bearer(trial.key)).admitInference('iris', 1)).not.toThrow();
  });

  it('refuses the next request of a caller whose key was removed, such as an open stream\'s', () => {
    const gone = policy('gone');
    const access = new ApiKeyAccess([gone.policy]);
    const stream = access.authorize('ModelStreamInfer', bearer(gone.key));
    access.replace([]);
    expect(refusal(() => stream.admitInference('iris', 1))).toEqual({ code: 'UNAUTHENTICATED', message: 'API key gone was revoked' });
    expect(refusal(() => access.authorize('ModelInfer', bearer(gone.key))).message).toBe('unknown API key');
  });

  it('applies a reloaded policy to a caller that was admitted before the reload', () => {
    const narrowed = policy('narrowed');
    const access = new ApiKeyAccess([narrowed.policy]);
    const stream = access.authorize('ModelStreamInfer', bearer(narrowed.key));
    access.replace([{ ...narrowed.policy, models: new Set(['iris']) }]);
    expect(refusal(() => stream.admitInference('text-direction', 1)).code).toBe('PERMISSION_DENIED');
  });

  it('keeps the keys in force when the reloaded file is wrong, and logs why without the digests', async () => {
    const kept = policy('kept');
    const access = new ApiKeyAccess([kept.policy]);
    const dir = await mkdtemp(join(tmpdir(), 'keys-'));
    const file = join(dir, 'keys.yaml');
    await writeFile(file, `keys:\n  - id: broken\n    sha256: ${'F'.repeat(64)}\n    models: "*"\n`);
    const errors: unknown[][] = [];
    const logger = { error: (...args: unknown[]) => errors.push(args), info: () => {} } as unknown as Logger;
    await access.reload(file, logger);
    await rm(dir, { recursive: true });
    expect(access.authorize('ModelInfer', bearer(kept.key)).keyId).toBe('kept');
    expect(errors).toHaveLength(1);
    expect(JSON.stringify(errors[0])).toMatch(/entry 1 \(id 'broken'\): sha256/);
    expect(JSON.stringify(errors[0])).not.toContain('F'.repeat(64));
  });
});
