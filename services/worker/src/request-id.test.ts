/** The id an answered request is known by: the client's, or a UUIDv7 made for it. */
import { describe, expect, it } from 'vitest';
import { MAX_REQUEST_ID_BYTES, requestIdOf, uuidv7 } from './request-id.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidv7', () => {
  it('is a UUID of version 7 and the RFC 9562 variant', () => {
    for (let i = 0; i < 1000; i++) expect(uuidv7()).toMatch(UUID_V7);
  });

  it('begins with the time in milliseconds, so ids sort by when they were made', () => {
    const at = Date.UTC(2026, 10, 27, 3, 0, 0);
    const id = uuidv7(at);
    expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at);
    expect(uuidv7(at + 1) > id).toBe(true);
  });

  it('differs from call to call', () => {
    const ids = new Set(Array.from({ length: 5000 }, () => uuidv7(0)));
    expect(ids.size).toBe(5000);
  });
});

describe('requestIdOf', () => {
  it('keeps the client\'s id', () => {
    expect(requestIdOf('order-17')).toEqual({ responseId: 'order-17', recordedId: 'order-17' });
  });

  it('makes a UUIDv7 when the client sent none, and records it', () => {
    const { responseId, recordedId } = requestIdOf('');
    expect(responseId).toMatch(UUID_V7);
    expect(recordedId).toBe(responseId);
  });

  it('echoes a client id over the bound but does not record it', () => {
    const long = 'é'.repeat(MAX_REQUEST_ID_BYTES / 2 + 1);
    expect(requestIdOf(long)).toEqual({ responseId: long, recordedId: '' });
    const fits = 'x'.repeat(MAX_REQUEST_ID_BYTES);
    expect(requestIdOf(fits).recordedId).toBe(fits);
  });
});
