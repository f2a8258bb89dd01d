/**
 * The id an answered request is known by (BatchedResponse.request_id, ModelInferResponse.id):
 * the client's own, or a UUIDv7 made here when the client sent none, so that every answered
 * prediction can be labelled later through the router's Feedback call.
 */
import { uuidv7 } from '@infermesh/contracts';

export { uuidv7 };

/**
 * A client's id longer than this (UTF-8 bytes) is echoed in the response as always, but not
 * recorded as the request id: prediction records and the monitor's join keys stay small.
 */
export const MAX_REQUEST_ID_BYTES = 256;

/** The id a request is answered with, and the one recorded for it ('' when the client's is over the bound). */
export function requestIdOf(clientId: string): { responseId: string; recordedId: string } {
  if (clientId === '') {
    const made = uuidv7();
    return { responseId: made, recordedId: made };
  }
  return { responseId: clientId, recordedId: Buffer.byteLength(clientId) <= MAX_REQUEST_ID_BYTES ? clientId : '' };
}
