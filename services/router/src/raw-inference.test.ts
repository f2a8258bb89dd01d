/** What the router's raw ModelInfer codec makes of a client's bytes, before any handler runs. */
import { describe, expect, it } from 'vitest';
import type { MethodDefinition } from '@grpc/grpc-js';
import { inferenceService, RequestLimitError, WireFormatError, type ModelInferRequest } from '@infermesh/contracts';
import { rawInferenceService, type RawInferRequest } from './raw-inference.js';

type Codec = MethodDefinition<unknown, unknown>;
const encode = (request: ModelInferRequest) => (inferenceService().ModelInfer as Codec).requestSerialize(request);
const read = (bytes: Buffer) => (rawInferenceService().ModelInfer as Codec).requestDeserialize(bytes) as RawInferRequest;

describe('the raw ModelInfer codec', () => {
  it('reads the routing fields and keeps the bytes as sent', () => {
    const bytes = encode({ modelName: 'iris', id: 'r1' });
    const request = read(bytes);
    expect(request.header).toMatchObject({ modelName: 'iris', id: 'r1' });
    expect(request.bytes).toBe(bytes);
  });

  it('marks a 100 KB model name as over the limit, naming the field and the limit, not the name', () => {
    const request = read(encode({ modelName: 'x'.repeat(100_000) }));
    expect(request.header).toBeUndefined();
    expect(request.malformed).toBe('model_name is 100000 bytes, over the limit of 256');
  });

  it('marks bytes that are not a ModelInferRequest as such, saying why', () => {
    expect(read(Buffer.from([0x0a, 0x05, 0x61])).malformed).toBe('the request is not a ModelInferRequest: a field of 5 bytes runs past the end of its message');
  });
});

describe('the other methods\' codecs', () => {
  const decode = (method: string, bytes: Buffer) => (rawInferenceService()[method] as Codec).requestDeserialize(bytes) as Record<string, unknown>;
  const encodeFor = (method: string, request: object) => (inferenceService()[method] as Codec).requestSerialize(request);

  it('decode a request within the limits as generated', () => {
    expect(decode('ModelMetadata', encodeFor('ModelMetadata', { name: 'iris', version: '1' }))).toMatchObject({ name: 'iris', version: '1' });
  });

  it('hand the handler a request that refuses to be read when the bytes are not the message (grpc-js would answer INTERNAL)', () => {
    const request = decode('ModelReady', Buffer.from([0xff, 0xff, 0xff])); // a tag whose varint never ends
    expect(() => request.name).toThrow(WireFormatError);
    expect(() => request.name).toThrow(/^the request is not a ModelReady request: /);
  });

  it.each([
    ['ModelMetadata', { name: 'm'.repeat(100_000) }, 'name is 100000 bytes, over the limit of 256'],
    ['ModelReady', { name: 'iris', version: '9'.repeat(65) }, 'version is 65 bytes, over the limit of 64'],
    ['ModelStatistics', { name: 's'.repeat(257) }, 'name is 257 bytes, over the limit of 256'],
    ['RepositoryIndex', { repositoryName: 'r'.repeat(300) }, 'repository_name is 300 bytes, over the limit of 256'],
  ] as const)('refuse a %s request whose name or version is over the limits, naming the field', (method, request, message) => {
    const decoded = decode(method, encodeFor(method, request));
    expect(() => decoded.name).toThrow(RequestLimitError);
    expect(() => decoded.name).toThrow(message);
  });
});
