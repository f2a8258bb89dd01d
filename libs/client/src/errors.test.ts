import { describe, expect, it } from 'vitest';
import { streamItemError } from './errors.js';

describe('streamItemError', () => {
  it('takes the status a server names at the start of a stream item\'s message', () => {
    expect(streamItemError("INVALID_ARGUMENT: input 'image': element 0 is not a known image format")).toMatchObject({
      code: 'INVALID_ARGUMENT', grpcCode: 3, message: "input 'image': element 0 is not a known image format",
    });
    expect(streamItemError('RESOURCE_EXHAUSTED: over the key\'s rate')).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
  });

  it('leaves any other message whole, as UNKNOWN (Triton and others send a message only)', () => {
    for (const message of ['failed to run model', 'OK: not an error code', 'NOT_A_STATUS: text', 'invalid_argument: lower case', '']) {
      expect(streamItemError(message)).toMatchObject({ code: 'UNKNOWN', message });
    }
  });
});
