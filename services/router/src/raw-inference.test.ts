/** What the router's raw ModelInfer codec makes of a client's bytes, before any handler runs. */
import { describe, expect, it } from 'vitest';
import type { MethodDefinition } from '@grpc/grpc-js';
import { inferenceService, type ModelInferRequest } from '@infermesh/contracts';
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
